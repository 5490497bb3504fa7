package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/starling-xmpp/starling/storage"
)

// InTx implements storage.Store: f gets a Store whose every statement runs
// in one write transaction (SQLite: BEGIN IMMEDIATE on the one writer;
// PostgreSQL: READ COMMITTED, so that statements after a wait for a lock
// see what its holder committed). Inside a transaction, InTx runs f in it.
func (s *Store) InTx(ctx context.Context, f func(tx storage.Tx) error) error {
	if s.tx != nil {
		return f(s)
	}
	tx, err := s.w.Begin(ctx, false)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := f(&Store{core: s.core, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// LockAccount implements storage.Tx by the account's row (SELECT … FOR NO
// KEY UPDATE, which writers of the account's offline messages and
// subscription requests take too; under SQLite the transaction excludes
// every other writer already).
func (s *Store) LockAccount(ctx context.Context, host, username string) error {
	err := errors.New("not in a transaction")
	if s.tx != nil {
		err = lockAccount(ctx, conn{s.core, s.tx}, host, username, LockWrite)
	}
	if err != nil {
		return fmt.Errorf("lock account %s@%s: %w", username, host, err)
	}
	return nil
}
