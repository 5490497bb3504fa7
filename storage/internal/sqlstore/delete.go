package sqlstore

import (
	"context"
	"fmt"
)

// accountData lists, per aggregate, the statements that remove an
// account's rows (parameters host, username). Each aggregate's file adds
// its own in init, so DeleteAccount covers a new aggregate's tables
// without being edited.
var accountData []struct {
	aggregate  string
	statements []string
}

// onDeleteAccount registers an aggregate's statements for DeleteAccount.
func onDeleteAccount(aggregate string, statements ...string) {
	accountData = append(accountData, struct {
		aggregate  string
		statements []string
	}{aggregate, statements})
}

// DeleteAccount implements storage.Accounts: with the account's row locked
// first (the order every writer of the account keeps), each aggregate's
// registered statements remove its rows, then the account goes. The
// tables' ON DELETE CASCADE remains as a second guard.
func (s *Store) DeleteAccount(ctx context.Context, host, username string) error {
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockExclusive); err != nil {
			return err
		}
		for _, a := range accountData {
			for _, q := range a.statements {
				if _, err := c.exec(ctx, q, host, username); err != nil {
					return fmt.Errorf("%s: %w", a.aggregate, err)
				}
			}
		}
		for _, q := range []string{
			`DELETE FROM credentials WHERE host = ? AND username = ?`,
			`DELETE FROM accounts WHERE host = ? AND username = ?`,
		} {
			if _, err := c.exec(ctx, q, host, username); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete account %s@%s: %w", username, host, err)
	}
	return nil
}
