package sqlstore

// The last activity aggregate (storage.LastActivity): when each account's
// last session ended, and its last unavailable status (XEP-0012).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("lastactivity", `DELETE FROM last_activity WHERE host = ? AND username = ?`)
}

// SetLastActivity implements storage.LastActivity. The time is kept to the
// millisecond. It returns ErrNotFound if there is no such account.
func (s *Store) SetLastActivity(ctx context.Context, host, username string, at time.Time, status string) error {
	_, err := s.writer().exec(ctx,
		`INSERT INTO last_activity (host, username, at, status) VALUES (?, ?, ?, ?)
		ON CONFLICT (host, username) DO UPDATE SET at = excluded.at, status = excluded.status`,
		host, username, s.d.Time(at, time.Millisecond), status)
	if err = s.notFoundIfNoAccount(err); err != nil {
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
	err := s.reader().queryRow(ctx,
		`SELECT at, status FROM last_activity WHERE host = ? AND username = ?`, host, username).
		Scan(s.d.ScanTime(&at, time.Millisecond), &status)
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("last activity of %s@%s: %w", username, host, err)
	}
	return at, status, nil
}
