// Package postgres is the PostgreSQL storage backend, on a pgx connection
// pool. Tables live in the first schema of the DSN's search_path.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/starling-xmpp/starling/storage"
)

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database at dsn (a URL or keyword/value string) and
// applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func isUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func isForeignKeyViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}

// lockAccount locks an account's row for the rest of tx (mode "KEY SHARE"
// or "NO KEY UPDATE"); ErrNotFound if there is no such account. Write
// transactions that take more than one lock take this one first, so that
// they and DeleteAccount (whose cascade locks the rows they write) always
// lock in the same order and cannot deadlock.
func lockAccount(ctx context.Context, tx pgx.Tx, host, username, mode string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE host = $1 AND username = $2 FOR `+mode, host, username).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// readTx runs f in a read-only transaction whose statements all see one
// snapshot.
func (s *Store) readTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
}

func insertKeys(ctx context.Context, tx pgx.Tx, host, username string, keys map[storage.Hash]storage.SCRAMKeys) error {
	for h, k := range keys {
		_, err := tx.Exec(ctx,
			`INSERT INTO credentials (host, username, hash, salt, iterations, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			host, username, string(h), k.Salt, k.Iterations, k.StoredKey, k.ServerKey)
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts (host, username, created) VALUES ($1, $2, $3)`,
			a.Host, a.Username, a.Created.Truncate(time.Second))
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
	rows, err := s.pool.Query(ctx,
		`SELECT a.created, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
		FROM accounts a LEFT JOIN credentials c ON c.host = a.host AND c.username = a.username
		WHERE a.host = $1 AND a.username = $2`, host, username)
	if err != nil {
		return storage.Account{}, err
	}
	defer rows.Close()
	a := storage.Account{Host: host, Username: username, Keys: map[storage.Hash]storage.SCRAMKeys{}}
	found := false
	for rows.Next() {
		var (
			created    time.Time
			hash       *string
			iterations *int
			k          storage.SCRAMKeys
		)
		if err := rows.Scan(&created, &hash, &k.Salt, &iterations, &k.StoredKey, &k.ServerKey); err != nil {
			return storage.Account{}, err
		}
		found = true
		a.Created = created.UTC()
		if hash != nil {
			k.Iterations = *iterations
			a.Keys[storage.Hash(*hash)] = k
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock serializes SetKeys and DeleteAccount of one account.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE host = $1 AND username = $2 FOR UPDATE`, host, username).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM credentials WHERE host = $1 AND username = $2`, host, username); err != nil {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM accounts WHERE host = $1 AND username = $2`, host, username)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete account %s@%s: %w", username, host, err)
	}
	return nil
}

// ListAccounts implements storage.Accounts.
func (s *Store) ListAccounts(ctx context.Context, host string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT username FROM accounts WHERE host = $1 ORDER BY username`, host)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list accounts of %s: %w", host, err)
	}
	return names, nil
}
