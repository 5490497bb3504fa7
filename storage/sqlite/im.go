package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// StoreOffline implements storage.Offline. The one writer connection
// serializes writers, so the count and the insert see the same messages.
func (s *Store) StoreOffline(ctx context.Context, host, username string, stanza []byte, stored time.Time, max int) error {
	if stanza == nil {
		stanza = []byte{}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if max > 0 {
			var n int
			err := tx.QueryRowContext(ctx,
				`SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?`, host, username).Scan(&n)
			if err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuota
			}
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO offline_messages (host, username, stanza, stored) VALUES (?, ?, ?, ?)`,
			host, username, stanza, stored.UnixMilli())
		if isForeignKeyViolation(err) {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store offline message for %s@%s: %w", username, host, err)
	}
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, host, username string) ([]storage.OfflineMessage, error) {
	msgs, err := s.offlineMessages(ctx, host, username)
	if err != nil {
		return nil, fmt.Errorf("offline messages of %s@%s: %w", username, host, err)
	}
	return msgs, nil
}

func (s *Store) offlineMessages(ctx context.Context, host, username string) ([]storage.OfflineMessage, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT id, stanza, stored FROM offline_messages WHERE host = ? AND username = ? ORDER BY id`, host, username)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		var (
			m      storage.OfflineMessage
			stored int64
		)
		if err := rows.Scan(&m.ID, &m.Stanza, &stored); err != nil {
			return nil, err
		}
		m.Stored = time.UnixMilli(stored).UTC()
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, host, username string, through int64) error {
	_, err := s.w.ExecContext(ctx,
		`DELETE FROM offline_messages WHERE host = ? AND username = ? AND id <= ?`, host, username, through)
	if err != nil {
		return fmt.Errorf("delete offline messages of %s@%s through %d: %w", username, host, through, err)
	}
	return nil
}

// BlockedJIDs implements storage.Blocklist.
func (s *Store) BlockedJIDs(ctx context.Context, host, username string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT jid FROM blocklist WHERE host = ? AND username = ? ORDER BY jid`, host, username)
	var jids []string
	if err == nil {
		jids, err = collectStrings(rows)
	}
	if err != nil {
		return nil, fmt.Errorf("blocklist of %s@%s: %w", username, host, err)
	}
	return jids, nil
}

// Block implements storage.Blocklist. It returns ErrNotFound if there is
// no such account.
func (s *Store) Block(ctx context.Context, host, username string, jids []string) error {
	if len(jids) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, j := range jids {
			if _, err := stmt.ExecContext(ctx, host, username, j); err != nil {
				if isForeignKeyViolation(err) {
					err = storage.ErrNotFound
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("block for %s@%s: %w", username, host, err)
	}
	return nil
}

// Unblock implements storage.Blocklist.
func (s *Store) Unblock(ctx context.Context, host, username string, jids []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if len(jids) == 0 {
			_, err := tx.ExecContext(ctx, `DELETE FROM blocklist WHERE host = ? AND username = ?`, host, username)
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, j := range jids {
			if _, err := stmt.ExecContext(ctx, host, username, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unblock for %s@%s: %w", username, host, err)
	}
	return nil
}

// Document implements storage.Documents.
func (s *Store) Document(ctx context.Context, host, username, key string) ([]byte, error) {
	var doc []byte
	err := s.r.QueryRowContext(ctx,
		`SELECT doc FROM documents WHERE host = ? AND username = ? AND key = ?`, host, username, key).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO documents (host, username, key, doc) VALUES (?, ?, ?, ?)
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
	_, err := s.w.ExecContext(ctx,
		`DELETE FROM documents WHERE host = ? AND username = ? AND key = ?`, host, username, key)
	if err != nil {
		return fmt.Errorf("delete document %q of %s@%s: %w", key, username, host, err)
	}
	return nil
}

// SetLastActivity implements storage.LastActivity. The time is kept to the
// millisecond. It returns ErrNotFound if there is no such account.
func (s *Store) SetLastActivity(ctx context.Context, host, username string, at time.Time, status string) error {
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO last_activity (host, username, at, status) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
		host, username, at.UnixMilli(), status)
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
		at     int64
		status string
	)
	err := s.r.QueryRowContext(ctx,
		`SELECT at, status FROM last_activity WHERE host = ? AND username = ?`, host, username).Scan(&at, &status)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("last activity of %s@%s: %w", username, host, err)
	}
	return time.UnixMilli(at).UTC(), status, nil
}
