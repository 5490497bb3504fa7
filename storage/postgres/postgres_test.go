package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/postgres"
	"github.com/starling-xmpp/starling/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) func() (storage.Store, error) {
		dsn := pgtest.DSN(t)
		return func() (storage.Store, error) { return postgres.Open(t.Context(), dsn) }
	})
}

func BenchmarkStore(b *testing.B) {
	dsn := pgtest.DSN(b)
	storagetest.Bench(b, func() (storage.Store, error) { return postgres.Open(b.Context(), dsn) })
}

func BenchmarkArchive(b *testing.B) {
	dsn := pgtest.DSN(b)
	storagetest.BenchArchive(b, func() (storage.Store, error) { return postgres.Open(b.Context(), dsn) }, func(b *testing.B) {
		// What autovacuum does to a table that grew by 10%: without it
		// the planner takes the archive for a few rows and sorts them.
		conn, err := pgx.Connect(b.Context(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(b.Context())
		if _, err := conn.Exec(b.Context(), "ANALYZE archive"); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkMUC(b *testing.B) {
	dsn := pgtest.DSN(b)
	storagetest.BenchMUC(b, func() (storage.Store, error) { return postgres.Open(b.Context(), dsn) }, func(b *testing.B) {
		// As for BenchmarkArchive.
		conn, err := pgx.Connect(b.Context(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(b.Context())
		if _, err := conn.Exec(b.Context(), "ANALYZE muc_archive"); err != nil {
			b.Fatal(err)
		}
	})
}
