package sqlstore

// The accounts aggregate (storage.Accounts): accounts and their SCRAM
// credentials, one row per hash family.

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func insertKeys(ctx context.Context, c conn, host, username string, keys map[storage.Hash]storage.SCRAMKeys) error {
	for h, k := range keys {
		_, err := c.exec(ctx,
			`INSERT INTO credentials (host, username, hash, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			host, username, string(h), k.Salt, k.Iterations, k.StoredKey, k.ServerKey)
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateAccount implements storage.Accounts. Created is kept to the second.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	err := s.write(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO accounts (host, username, created, disabled) VALUES (?, ?, ?, ?)`,
			a.Host, a.Username, s.d.Time(a.Created, time.Second), a.Disabled)
		if err != nil {
			return err
		}
		return insertKeys(ctx, c, a.Host, a.Username, a.Keys)
	})
	if err != nil && s.d.IsConflict(err) {
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
	rows, err := s.reader().query(ctx,
		`SELECT a.created, a.disabled, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
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
			hash       sql.NullString
			iterations sql.NullInt64
			k          storage.SCRAMKeys
		)
		if err := rows.Scan(s.d.ScanTime(&a.Created, time.Second), &a.Disabled, &hash, &k.Salt, &iterations, &k.StoredKey, &k.ServerKey); err != nil {
			return storage.Account{}, err
		}
		found = true
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
	err := s.write(ctx, func(c conn) error {
		// The row lock serialises SetKeys and DeleteAccount of one account.
		if err := lockAccount(ctx, c, host, username, LockExclusive); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM credentials WHERE host = ? AND username = ?`, host, username); err != nil {
			return err
		}
		return insertKeys(ctx, c, host, username, keys)
	})
	if err != nil {
		return fmt.Errorf("set keys of %s@%s: %w", username, host, err)
	}
	return nil
}

// SetDisabled implements storage.Accounts.
func (s *Store) SetDisabled(ctx context.Context, host, username string, disabled bool) error {
	err := s.write(ctx, func(c conn) error {
		n, err := c.exec(ctx, `UPDATE accounts SET disabled = ? WHERE host = ? AND username = ?`, disabled, host, username)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set disabled of %s@%s: %w", username, host, err)
	}
	return nil
}

// ListDisabled implements storage.Accounts.
func (s *Store) ListDisabled(ctx context.Context, host string) ([]string, error) {
	names, err := collectStrings(s.reader().query(ctx, `SELECT username FROM accounts WHERE host = ? AND disabled = ? ORDER BY username`, host, true))
	if err != nil {
		return nil, fmt.Errorf("list disabled accounts of %s: %w", host, err)
	}
	return names, nil
}

// ListAccounts implements storage.Accounts.
func (s *Store) ListAccounts(ctx context.Context, host string) ([]string, error) {
	names, err := collectStrings(s.reader().query(ctx, `SELECT username FROM accounts WHERE host = ? ORDER BY username`, host))
	if err != nil {
		return nil, fmt.Errorf("list accounts of %s: %w", host, err)
	}
	return names, nil
}
