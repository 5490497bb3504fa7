package postgres

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/storage/internal/migration"
)

func TestMigrate(t *testing.T) {
	ms, err := migration.Load(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	for _, m := range ms {
		all = append(all, m.Version)
	}
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

	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	rows, _ := s.pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || !slices.Equal(got, all) {
		t.Errorf("recorded versions %v (%v), want %v", got, err, all)
	}
	// The tables went into the DSN's schema, not public.
	var schema string
	if err := s.pool.QueryRow(t.Context(), `SELECT table_schema FROM information_schema.tables WHERE table_name = 'accounts' AND table_schema = current_schema()`).Scan(&schema); err != nil || !strings.HasPrefix(schema, "starling_test_") {
		t.Errorf("accounts table in schema %q (%v), want the test schema", schema, err)
	}
	// A version from a newer build.
	future := len(ms) + 1
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES ($1)`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a future schema version succeeded")
	}
	if !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), fmt.Sprintf("version %d,", future)) {
		t.Errorf("Open: %v; want it to name the newer version", err)
	}
	t.Log(err)
}
