package sqlite

import (
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
	"github.com/starling-xmpp/starling/storage/storagetest"
)

// recorded returns the newest version schema_versions records per
// aggregate, and the versions in schema_migrations.
func recorded(t *testing.T, db *sql.DB) (map[string]int, []int) {
	t.Helper()
	got := make(map[string]int)
	rows, err := db.QueryContext(t.Context(), `SELECT aggregate, max(version), count(*) FROM schema_versions GROUP BY aggregate`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			v, n int
		)
		if err := rows.Scan(&name, &v, &n); err != nil {
			t.Fatal(err)
		}
		if n != v {
			t.Errorf("%s: %d versions recorded, up to %d", name, n, v)
		}
		got[name] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var legacy []int
	rows2, err := db.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows2.Close()
	for rows2.Next() {
		var v int
		rows2.Scan(&v)
		legacy = append(legacy, v)
	}
	return got, legacy
}

func latest(t *testing.T) map[string]int {
	t.Helper()
	l, err := sqlstore.Latest("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"accounts", "roster", "offline", "blocklist", "documents", "lastactivity"} {
		if l[name] < 1 {
			t.Fatalf("no migrations of %s: %v", name, l)
		}
	}
	return l
}

func TestMigrate(t *testing.T) {
	want := latest(t)
	path := filepath.Join(t.TempDir(), "new", "dir", "starling.db")

	// Fresh database, opened by several starters at once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Errorf("concurrent Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	got, legacy := recorded(t, s.r)
	if !maps.Equal(got, want) || !slices.Equal(legacy, []int{3}) {
		t.Errorf("recorded %v and legacy %v, want %v and [3]", got, legacy, want)
	}
	var mode string
	var fk int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d (%v), want 1", fk, err)
	}
	s.Close()

	// Versions from a newer build: of a known aggregate, of an unknown
	// one, and of the single sequence of before (which the builds of
	// before read).
	for _, c := range []struct{ insert, undo, want string }{
		{fmt.Sprintf(`INSERT INTO schema_versions VALUES ('roster', %d)`, want["roster"]+1), `DELETE FROM schema_versions WHERE aggregate = 'roster' AND version > 1`, fmt.Sprintf("roster schema version %d,", want["roster"]+1)},
		{`INSERT INTO schema_versions VALUES ('telepathy', 1)`, `DELETE FROM schema_versions WHERE aggregate = 'telepathy'`, "version 1 of telepathy"},
		{`INSERT INTO schema_migrations VALUES (4)`, `DELETE FROM schema_migrations WHERE version = 4`, "version 4,"},
	} {
		exec(t, path, c.insert)
		s, err := Open(t.Context(), path)
		if err == nil {
			s.Close()
			t.Fatalf("Open after %s succeeded", c.insert)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open after %s: %v; want it to name %q", c.insert, err, c.want)
		}
		t.Log(err)
		exec(t, path, c.undo)
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
}

// exec runs statements on the file at path outside any Store.
func exec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
}

// legacyDB creates at path the database the build before per-aggregate
// migrations created and migrated through version last (its own steps:
// schema_migrations, then each file and its version), filled with data.
func legacyDB(t *testing.T, path string, last int, data string) {
	t.Helper()
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)`}
	for v, f := range []string{"0001_accounts.sql", "0002_im.sql"}[:last] {
		b, err := os.ReadFile(filepath.Join("testdata", "legacy", f))
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(b), fmt.Sprintf(`INSERT INTO schema_migrations (version) VALUES (%d)`, v+1))
	}
	exec(t, path, append(stmts, data)...)
}

// schema returns the database's tables and indexes as created.
func schema(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'schema_%' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		rows.Scan(&s)
		b.WriteString(s + ";\n")
	}
	return b.String()
}

// TestUpgrade opens databases that the build before per-aggregate
// migrations created: they are upgraded in place, every row kept.
func TestUpgrade(t *testing.T) {
	want := latest(t)
	data, err := os.ReadFile(filepath.Join("testdata", "legacy", "data.sql"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	s, err := Open(t.Context(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	t.Run("both", func(t *testing.T) {
		path := filepath.Join(dir, "both.db")
		legacyDB(t, path, 2, string(data))
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		got, legacy := recorded(t, s.r)
		if !maps.Equal(got, want) || !slices.Equal(legacy, []int{1, 2, 3}) {
			t.Errorf("recorded %v and legacy %v, want %v and [1 2 3]", got, legacy, want)
		}
		if a, b := schema(t, path), schema(t, fresh); a != b {
			t.Errorf("upgraded schema\n%s\ndiffers from a new database's\n%s", a, b)
		}
		storagetest.CheckUpgraded(t, s)
	})
	t.Run("accounts only", func(t *testing.T) {
		path := filepath.Join(dir, "accounts.db")
		legacyDB(t, path, 1, `INSERT INTO accounts VALUES ('example.org', 'alice', 1700000000)`)
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if a, b := schema(t, path), schema(t, fresh); a != b {
			t.Errorf("upgraded schema\n%s\ndiffers from a new database's\n%s", a, b)
		}
		if _, err := s.Account(t.Context(), "example.org", "alice"); err != nil {
			t.Errorf("Account: %v", err)
		}
		if _, err := s.PutRosterItem(t.Context(), "example.org", "alice", storagetestItem); err != nil {
			t.Errorf("PutRosterItem: %v", err)
		}
	})
}

var storagetestItem = storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone}
