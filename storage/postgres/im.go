package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/starling-xmpp/starling/storage"
)

// StoreOffline implements storage.Offline. The stored time is kept to the
// millisecond. Writers of one account hold its accounts row while they
// count and insert, so the quota holds and ids are committed in order: a
// reader never sees a message while one with a smaller id is still to come.
func (s *Store) StoreOffline(ctx context.Context, host, username string, stanza []byte, stored time.Time, max int) error {
	if stanza == nil {
		stanza = []byte{}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, host, username, "NO KEY UPDATE"); err != nil {
			return err
		}
		if max > 0 {
			var n int
			err := tx.QueryRow(ctx,
				`SELECT count(*) FROM offline_messages WHERE host = $1 AND username = $2`, host, username).Scan(&n)
			if err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuota
			}
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO offline_messages (host, username, stanza, stored) VALUES ($1, $2, $3, $4)`,
			host, username, stanza, stored.Truncate(time.Millisecond))
		return err
	})
	if err != nil {
		return fmt.Errorf("store offline message for %s@%s: %w", username, host, err)
	}
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, host, username string) ([]storage.OfflineMessage, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT id, stanza, stored FROM offline_messages WHERE host = $1 AND username = $2 ORDER BY id`, host, username)
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.OfflineMessage, error) {
		var m storage.OfflineMessage
		err := row.Scan(&m.ID, &m.Stanza, &m.Stored)
		m.Stored = m.Stored.UTC()
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("offline messages of %s@%s: %w", username, host, err)
	}
	if len(msgs) == 0 {
		msgs = nil
	}
	return msgs, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, host, username string, through int64) error {
	_, err := s.pool.Exec(ctx,
		`DELETE FROM offline_messages WHERE host = $1 AND username = $2 AND id <= $3`, host, username, through)
	if err != nil {
		return fmt.Errorf("delete offline messages of %s@%s through %d: %w", username, host, through, err)
	}
	return nil
}

// BlockedJIDs implements storage.Blocklist.
func (s *Store) BlockedJIDs(ctx context.Context, host, username string) ([]string, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT jid FROM blocklist WHERE host = $1 AND username = $2 ORDER BY jid`, host, username)
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("blocklist of %s@%s: %w", username, host, err)
	}
	if len(jids) == 0 {
		jids = nil
	}
	return jids, nil
}

// Block implements storage.Blocklist. It returns ErrNotFound if there is
// no such account.
func (s *Store) Block(ctx context.Context, host, username string, jids []string) error {
	if len(jids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO blocklist (host, username, jid) SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`,
		host, username, jids)
	if isForeignKeyViolation(err) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("block for %s@%s: %w", username, host, err)
	}
	return nil
}

// Unblock implements storage.Blocklist.
func (s *Store) Unblock(ctx context.Context, host, username string, jids []string) error {
	var err error
	if len(jids) == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM blocklist WHERE host = $1 AND username = $2`, host, username)
	} else {
		_, err = s.pool.Exec(ctx,
			`DELETE FROM blocklist WHERE host = $1 AND username = $2 AND jid = ANY($3::text[])`, host, username, jids)
	}
	if err != nil {
		return fmt.Errorf("unblock for %s@%s: %w", username, host, err)
	}
	return nil
}

// Document implements storage.Documents.
func (s *Store) Document(ctx context.Context, host, username, key string) ([]byte, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx,
		`SELECT doc FROM documents WHERE host = $1 AND username = $2 AND key = $3`, host, username, key).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("document %q of %s@%s: %w", key, username, host, err)
	}
	if doc == nil {
		doc = []byte{}
	}
	return doc, nil
}

// PutDocument implements storage.Documents. It returns ErrNotFound if there
// is no such account.
func (s *Store) PutDocument(ctx context.Context, host, username, key string, doc []byte) error {
	if doc == nil {
		doc = []byte{}
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO documents (host, username, key, doc) VALUES ($1, $2, $3, $4)
		ON CONFLICT (host, username, key) DO UPDATE SET doc = excluded.doc`,
		host, username, key, doc)
	if isForeignKeyViolation(err) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("put document %q of %s@%s: %w", key, username, host, err)
	}
	return nil
}

// DeleteDocument implements storage.Documents.
func (s *Store) DeleteDocument(ctx context.Context, host, username, key string) error {
	_, err := s.pool.Exec(ctx,
		`DELETE FROM documents WHERE host = $1 AND username = $2 AND key = $3`, host, username, key)
	if err != nil {
		return fmt.Errorf("delete document %q of %s@%s: %w", key, username, host, err)
	}
	return nil
}

// SetLastActivity implements storage.LastActivity. The time is kept to the
// millisecond. It returns ErrNotFound if there is no such account.
func (s *Store) SetLastActivity(ctx context.Context, host, username string, at time.Time, status string) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO last_activity (host, username, at, status) VALUES ($1, $2, $3, $4)
		ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
		host, username, at.Truncate(time.Millisecond), status)
	if isForeignKeyViolation(err) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set last activity of %s@%s: %w", username, host, err)
	}
	return nil
}

// LastActivity implements storage.LastActivity.
func (s *Store) LastActivity(ctx context.Context, host, username string) (time.Time, string, error) {
	var (
		at     time.Time
		status string
	)
	err := s.pool.QueryRow(ctx,
		`SELECT at, status FROM last_activity WHERE host = $1 AND username = $2`, host, username).Scan(&at, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("last activity of %s@%s: %w", username, host, err)
	}
	return at.UTC(), status, nil
}
