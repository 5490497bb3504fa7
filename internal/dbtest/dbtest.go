// Package dbtest gives tests the real storage backends, each able to open
// several Stores on one database, as server nodes sharing it would.
package dbtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/postgres"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// Backend is one storage backend. Open prepares a new database (SQLite in
// a temporary directory; PostgreSQL through pgtest, which skips without
// STARLING_TEST_POSTGRES) and returns a function opening one more Store
// on it, closed when the test ends.
type Backend struct {
	Name string
	Open func(t testing.TB) func() storage.Store
}

// Backends are SQLite and PostgreSQL.
var Backends = []Backend{
	{"sqlite", func(t testing.TB) func() storage.Store {
		path := filepath.Join(t.TempDir(), "starling.db")
		return func() storage.Store {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}},
	{"postgres", func(t testing.TB) func() storage.Store {
		dsn := pgtest.DSN(t)
		return func() storage.Store {
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}},
}
