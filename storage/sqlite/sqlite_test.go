package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
	"github.com/starling-xmpp/starling/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) func() (storage.Store, error) {
		path := filepath.Join(t.TempDir(), "data", "starling.db")
		return func() (storage.Store, error) { return sqlite.Open(t.Context(), path) }
	})
}

func BenchmarkStore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "starling.db")
	storagetest.Bench(b, func() (storage.Store, error) { return sqlite.Open(b.Context(), path) })
}

func BenchmarkArchive(b *testing.B) {
	path := filepath.Join(b.TempDir(), "starling.db")
	storagetest.BenchArchive(b, func() (storage.Store, error) { return sqlite.Open(b.Context(), path) }, nil)
}

func BenchmarkMUC(b *testing.B) {
	path := filepath.Join(b.TempDir(), "starling.db")
	storagetest.BenchMUC(b, func() (storage.Store, error) { return sqlite.Open(b.Context(), path) }, nil)
}
