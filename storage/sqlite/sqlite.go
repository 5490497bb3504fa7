// Package sqlite is the embedded, zero-setup storage backend: one SQLite
// file in WAL mode, pure Go (modernc.org/sqlite).
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
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a storage.Store on one SQLite file.
type Store struct {
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
	s := &Store{w: w, r: r}
	if err := migrate(ctx, w); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	return s, nil
}

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

// inTx runs f in a write transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) &&
		(e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func isForeignKeyViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

func insertKeys(ctx context.Context, tx *sql.Tx, host, username string, keys map[storage.Hash]storage.SCRAMKeys) error {
	for h, k := range keys {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO credentials (host, username, hash, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			host, username, string(h), k.Salt, k.Iterations, k.StoredKey, k.ServerKey)
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (host, username, created) VALUES (?, ?, ?)`,
			a.Host, a.Username, a.Created.Unix())
		if err != nil {
			return err
		}
		return insertKeys(ctx, tx, a.Host, a.Username, a.Keys)
	})
	if isUniqueViolation(err) {
		err = storage.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create account %s@%s: %w", a.Username, a.Host, err)
	}
	return nil
}

// Account implements storage.Accounts.
func (s *Store) Account(ctx context.Context, host, username string) (storage.Account, error) {
	a, err := s.account(ctx, host, username)
	if err != nil {
		return storage.Account{}, fmt.Errorf("account %s@%s: %w", username, host, err)
	}
	return a, nil
}

func (s *Store) account(ctx context.Context, host, username string) (storage.Account, error) {
	// One statement, so account and keys come from one snapshot.
	rows, err := s.r.QueryContext(ctx,
		`SELECT a.created, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
		FROM accounts a LEFT JOIN credentials c ON c.host = a.host AND c.username = a.username
		WHERE a.host = ? AND a.username = ?`, host, username)
	if err != nil {
		return storage.Account{}, err
	}
	defer rows.Close()
	a := storage.Account{Host: host, Username: username, Keys: map[storage.Hash]storage.SCRAMKeys{}}
	found := false
	for rows.Next() {
		var (
			created    int64
			hash       sql.NullString
			iterations sql.NullInt64
			k          storage.SCRAMKeys
		)
		if err := rows.Scan(&created, &hash, &k.Salt, &iterations, &k.StoredKey, &k.ServerKey); err != nil {
			return storage.Account{}, err
		}
		found = true
		a.Created = time.Unix(created, 0).UTC()
		if hash.Valid {
			k.Iterations = int(iterations.Int64)
			a.Keys[storage.Hash(hash.String)] = k
		}
	}
	if err := rows.Err(); err != nil {
		return storage.Account{}, err
	}
	if !found {
		return storage.Account{}, storage.ErrNotFound
	}
	return a, nil
}

// SetKeys implements storage.Accounts.
func (s *Store) SetKeys(ctx context.Context, host, username string, keys map[storage.Hash]storage.SCRAMKeys) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE host = ? AND username = ?`, host, username).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE host = ? AND username = ?`, host, username); err != nil {
			return err
		}
		return insertKeys(ctx, tx, host, username, keys)
	})
	if err != nil {
		return fmt.Errorf("set keys of %s@%s: %w", username, host, err)
	}
	return nil
}

// DeleteAccount implements storage.Accounts. Everything else stored for the
// account goes with it, by ON DELETE CASCADE.
func (s *Store) DeleteAccount(ctx context.Context, host, username string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM accounts WHERE host = ? AND username = ?`, host, username)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete account %s@%s: %w", username, host, err)
	}
	return nil
}

// ListAccounts implements storage.Accounts.
func (s *Store) ListAccounts(ctx context.Context, host string) ([]string, error) {
	names, err := s.listAccounts(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("list accounts of %s: %w", host, err)
	}
	return names, nil
}

func (s *Store) listAccounts(ctx context.Context, host string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT username FROM accounts WHERE host = ? ORDER BY username`, host)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
