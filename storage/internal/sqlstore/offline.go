package sqlstore

// The offline aggregate (storage.Offline): messages stored for accounts with
// no available resource (XEP-0160).

import (
	"context"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("offline", `DELETE FROM offline_messages WHERE host = ? AND username = ?`)
}

// StoreOffline implements storage.Offline. The stored time is kept to the
// millisecond. Writers of one account hold its row while they count and
// insert, so the quota holds and ids are committed in order: a reader never
// sees a message while one with a smaller id is still to come.
func (s *Store) StoreOffline(ctx context.Context, host, username string, stanza []byte, stored time.Time, max int) error {
	if stanza == nil {
		stanza = []byte{}
	}
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		if max > 0 {
			var n int
			err := c.queryRow(ctx,
				`SELECT count(*) FROM offline_messages WHERE host = ? AND username = ?`, host, username).Scan(&n)
			if err != nil {
				return err
			}
			if n >= max {
				return storage.ErrQuota
			}
		}
		_, err := c.exec(ctx,
			`INSERT INTO offline_messages (host, username, stanza, stored) VALUES (?, ?, ?, ?)`,
			host, username, stanza, s.d.Time(stored, time.Millisecond))
		return s.notFoundIfNoAccount(err)
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
	rows, err := s.reader().query(ctx,
		`SELECT id, stanza, stored FROM offline_messages WHERE host = ? AND username = ? ORDER BY id`, host, username)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var msgs []storage.OfflineMessage
	for rows.Next() {
		var m storage.OfflineMessage
		if err := rows.Scan(&m.ID, &m.Stanza, s.d.ScanTime(&m.Stored, time.Millisecond)); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, host, username string, through int64) error {
	_, err := s.writer().exec(ctx,
		`DELETE FROM offline_messages WHERE host = ? AND username = ? AND id <= ?`, host, username, through)
	if err != nil {
		return fmt.Errorf("delete offline messages of %s@%s through %d: %w", username, host, through, err)
	}
	return nil
}
