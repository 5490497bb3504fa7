package sqlstore

// The blocklist aggregate (storage.Blocklist): the JIDs each account blocks
// (XEP-0191).

import (
	"context"
	"fmt"
	"strings"
)

func init() {
	onDeleteAccount("blocklist", `DELETE FROM blocklist WHERE host = ? AND username = ?`)
}

// jidsPerStatement bounds the parameters of one statement (SQLite allows
// 32766).
const jidsPerStatement = 500

// BlockedJIDs implements storage.Blocklist.
func (s *Store) BlockedJIDs(ctx context.Context, host, username string) ([]string, error) {
	jids, err := collectStrings(s.reader().query(ctx,
		`SELECT jid FROM blocklist WHERE host = ? AND username = ? ORDER BY jid`, host, username))
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
	err := s.write(ctx, func(c conn) error {
		for chunk := range chunks(jids) {
			args := make([]any, 0, 3*len(chunk))
			for _, j := range chunk {
				args = append(args, host, username, j)
			}
			_, err := c.exec(ctx,
				`INSERT INTO blocklist (host, username, jid) VALUES `+repeat("(?, ?, ?)", len(chunk))+` ON CONFLICT DO NOTHING`,
				args...)
			if err != nil {
				return s.notFoundIfNoAccount(err)
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
	err := s.write(ctx, func(c conn) error {
		if len(jids) == 0 {
			_, err := c.exec(ctx, `DELETE FROM blocklist WHERE host = ? AND username = ?`, host, username)
			return err
		}
		for chunk := range chunks(jids) {
			args := []any{host, username}
			for _, j := range chunk {
				args = append(args, j)
			}
			_, err := c.exec(ctx,
				`DELETE FROM blocklist WHERE host = ? AND username = ? AND jid IN (`+repeat("?", len(chunk))+`)`,
				args...)
			if err != nil {
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

// chunks yields jids in slices of at most jidsPerStatement.
func chunks(jids []string) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(jids) > 0 {
			n := min(len(jids), jidsPerStatement)
			if !yield(jids[:n]) {
				return
			}
			jids = jids[n:]
		}
	}
}

// repeat returns n copies of s separated by commas.
func repeat(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ")
}
