// Package sqlite is the embedded, zero-setup storage backend: one SQLite
// file in WAL mode, pure Go (modernc.org/sqlite), under the SQL core of
// storage/internal/sqlstore with SQLite's dialect.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/internal/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a storage.Store on one SQLite file.
type Store struct {
	*sqlstore.Store
	w *sql.DB // exactly one connection: SQLite has a single writer
	r *sql.DB // readers, which WAL lets run beside the writer
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating it and its directory if missing) the database at
// path and applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// Create the file ourselves so it (and its -wal, -shm) is private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()

	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	if err := useWAL(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// Keep the readers open: database/sql keeps 2 idle by default, and
	// a login burst then opened and closed a connection for most reads —
	// files opened, schema parsed, page cache empty (a dozen syscalls and
	// page reads per login).
	r.SetMaxIdleConns(readersIdle)
	// A read transaction on the readers sees one snapshot: WAL's.
	core := sqlstore.New(dialect{}, sqlstore.SQLDB(r, &sql.TxOptions{ReadOnly: true}), sqlstore.SQLDB(w, nil))
	s := &Store{Store: core, w: w, r: r}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	return s, nil
}

// readersIdle is how many reader connections stay open between queries:
// enough for the logins and queries in flight at once on a busy server;
// each holds its page cache (up to 2 MB, SQLite's default).
const readersIdle = 16

// useWAL switches a new database to write-ahead logging (readers never
// wait for the writer; the setting stays with the file). The switch needs
// the database to itself and fails at once with SQLITE_BUSY, without
// waiting on busy_timeout, while another process opening the same new file
// holds it, so it is retried for as long as busy_timeout would wait.
func useWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	retry := time.NewTicker(10 * time.Millisecond)
	defer retry.Stop()
	for {
		_, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL")
		var e *sqlite.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-retry.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}
