package postgres

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
	"github.com/starling-xmpp/starling/storage/storagetest"
)

// exec runs statements in the database at dsn outside any Store.
func exec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	for _, q := range stmts {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
}

// recorded returns the newest version schema_versions records per
// aggregate, and the versions in schema_migrations.
func recorded(t *testing.T, dsn string) (map[string]int, []int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	got := make(map[string]int)
	rows, _ := conn.Query(t.Context(), `SELECT aggregate, max(version), count(*) FROM schema_versions GROUP BY aggregate`)
	var (
		name string
		v, n int
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &v, &n}, func() error {
		if n != v {
			t.Errorf("%s: %d versions recorded, up to %d", name, n, v)
		}
		got[name] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ = conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	legacy, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return got, legacy
}

// schema describes the tables, columns, constraints and indexes of the
// DSN's schema, but for the schema tables.
func schema(t *testing.T, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	rows, _ := conn.Query(t.Context(), `
		SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(collation_name, '') || ' ' ||
			is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity || ' ' || coalesce(identity_generation, '')
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE 'schema_%'
		UNION ALL
		SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
		WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text NOT LIKE 'schema_%'
		UNION ALL
		SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename NOT LIKE 'schema_%'
		ORDER BY 1`)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// Index definitions name the schema, which differs between tests.
	return strings.ReplaceAll(strings.Join(lines, "\n"), dsnSchema(t, dsn)+".", "")
}

func dsnSchema(t *testing.T, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	var s string
	if err := conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func latest(t *testing.T) map[string]int {
	t.Helper()
	l, err := sqlstore.Latest("postgres")
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
	dsn := pgtest.DSN(t)

	// Fresh schema, migrated by several starters at once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
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
	got, legacy := recorded(t, dsn)
	if !maps.Equal(got, want) || !slices.Equal(legacy, []int{3}) {
		t.Errorf("recorded %v and legacy %v, want %v and [3]", got, legacy, want)
	}
	// The tables went into the DSN's schema, not public.
	if s := dsnSchema(t, dsn); !strings.HasPrefix(s, "starling_test_") || !strings.Contains(schema(t, dsn), "accounts.") {
		t.Errorf("tables not in the test schema %q", s)
	}

	// Versions from a newer build: of a known aggregate, of an unknown
	// one, and of the single sequence of before (which the builds of
	// before read).
	for _, c := range []struct{ insert, undo, want string }{
		{fmt.Sprintf(`INSERT INTO schema_versions VALUES ('roster', %d)`, want["roster"]+1), `DELETE FROM schema_versions WHERE aggregate = 'roster' AND version > 1`, fmt.Sprintf("roster schema version %d,", want["roster"]+1)},
		{`INSERT INTO schema_versions VALUES ('telepathy', 1)`, `DELETE FROM schema_versions WHERE aggregate = 'telepathy'`, "version 1 of telepathy"},
		{`INSERT INTO schema_migrations VALUES (4)`, `DELETE FROM schema_migrations WHERE version = 4`, "version 4,"},
	} {
		exec(t, dsn, c.insert)
		s, err := Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open after %s succeeded", c.insert)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open after %s: %v; want it to name %q", c.insert, err, c.want)
		}
		t.Log(err)
		exec(t, dsn, c.undo)
	}
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
}

// legacySchema creates in a new schema what the build before per-aggregate
// migrations created and migrated through version last (its own steps:
// schema_migrations, then each file and its version), filled with data.
func legacySchema(t *testing.T, last int, data string) string {
	t.Helper()
	dsn := pgtest.DSN(t)
	stmts := []string{`CREATE TABLE schema_migrations (version integer PRIMARY KEY)`}
	for v, f := range []string{"0001_accounts.sql", "0002_im.sql"}[:last] {
		b, err := os.ReadFile(filepath.Join("testdata", "legacy", f))
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(b), fmt.Sprintf(`INSERT INTO schema_migrations (version) VALUES (%d)`, v+1))
	}
	exec(t, dsn, append(stmts, data)...)
	return dsn
}

// TestUpgrade opens schemas that the build before per-aggregate
// migrations created: they are upgraded in place, every row kept.
func TestUpgrade(t *testing.T) {
	want := latest(t)
	data, err := os.ReadFile(filepath.Join("testdata", "legacy", "data.sql"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := pgtest.DSN(t)
	s, err := Open(t.Context(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	t.Run("both", func(t *testing.T) {
		dsn := legacySchema(t, 2, string(data))
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		got, legacy := recorded(t, dsn)
		if !maps.Equal(got, want) || !slices.Equal(legacy, []int{1, 2, 3}) {
			t.Errorf("recorded %v and legacy %v, want %v and [1 2 3]", got, legacy, want)
		}
		if a, b := schema(t, dsn), schema(t, fresh); a != b {
			t.Errorf("upgraded schema\n%s\ndiffers from a new database's\n%s", a, b)
		}
		storagetest.CheckUpgraded(t, s)
	})
	t.Run("accounts only", func(t *testing.T) {
		dsn := legacySchema(t, 1, `INSERT INTO accounts VALUES ('example.org', 'alice', now())`)
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if a, b := schema(t, dsn), schema(t, fresh); a != b {
			t.Errorf("upgraded schema\n%s\ndiffers from a new database's\n%s", a, b)
		}
		if _, err := s.Account(t.Context(), "example.org", "alice"); err != nil {
			t.Errorf("Account: %v", err)
		}
		if _, err := s.PutRosterItem(t.Context(), "example.org", "alice", storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone}); err != nil {
			t.Errorf("PutRosterItem: %v", err)
		}
	})
}
