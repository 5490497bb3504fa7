package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/starling-xmpp/starling/storage"
)

// normalizeGroups returns a sorted copy of groups without duplicates,
// never nil (a nil slice would be stored as NULL).
func normalizeGroups(groups []string) []string {
	g := slices.Compact(slices.Sorted(slices.Values(groups)))
	if g == nil {
		g = []string{}
	}
	return g
}

// checkSubscription rejects a value that is not one of the four states.
func checkSubscription(sub storage.Subscription) error {
	switch sub {
	case storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth:
		return nil
	}
	return fmt.Errorf("invalid subscription %q", sub)
}

const rosterColumns = `contact, name, groups, subscription, ask, approved, version`

func scanRosterItem(row pgx.Row) (storage.RosterItem, error) {
	var (
		it  storage.RosterItem
		sub string
	)
	if err := row.Scan(&it.Contact, &it.Name, &it.Groups, &sub, &it.Ask, &it.Approved, &it.Version); err != nil {
		return storage.RosterItem{}, err
	}
	it.Subscription = storage.Subscription(sub)
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, nil
}

func queryRosterItems(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]storage.RosterItem, error) {
	rows, _ := tx.Query(ctx, query, args...)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.RosterItem, error) {
		return scanRosterItem(row)
	})
}

func rosterVersion(ctx context.Context, tx pgx.Tx, host, username string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `SELECT version FROM roster_versions WHERE host = $1 AND username = $2`, host, username).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// bumpRosterVersion increments the account's roster version and returns
// it. The counter row stays locked until tx ends, which serializes the
// account's roster writers: versions are distinct and committed in order.
func bumpRosterVersion(ctx context.Context, tx pgx.Tx, host, username string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx,
		`INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, 1)
		ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1
		RETURNING version`, host, username).Scan(&v)
	return v, err
}

// RosterItems implements storage.Roster.
func (s *Store) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	var (
		items []storage.RosterItem
		ver   int64
	)
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		if ver, err = rosterVersion(ctx, tx, host, username); err != nil {
			return err
		}
		items, err = queryRosterItems(ctx, tx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE host = $1 AND username = $2 ORDER BY contact`,
			host, username)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("roster of %s@%s: %w", username, host, err)
	}
	if len(items) == 0 {
		items = nil
	}
	return items, ver, nil
}

// RosterItem implements storage.Roster.
func (s *Store) RosterItem(ctx context.Context, host, username, contact string) (storage.RosterItem, error) {
	it, err := scanRosterItem(s.pool.QueryRow(ctx,
		`SELECT `+rosterColumns+` FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3`,
		host, username, contact))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("roster item %s of %s@%s: %w", contact, username, host, err)
	}
	return it, nil
}

// PutRosterItem implements storage.Roster. The item's groups are stored
// sorted byte-wise and without duplicates.
func (s *Store) PutRosterItem(ctx context.Context, host, username string, item storage.RosterItem) (int64, error) {
	var ver int64
	err := checkSubscription(item.Subscription)
	if err == nil {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lockAccount(ctx, tx, host, username, "KEY SHARE"); err != nil {
				return err
			}
			var err error
			if ver, err = bumpRosterVersion(ctx, tx, host, username); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx,
				`DELETE FROM roster_removed WHERE host = $1 AND username = $2 AND contact = $3`,
				host, username, item.Contact); err != nil {
				return err
			}
			_, err = tx.Exec(ctx,
				`INSERT INTO roster_items (host, username, `+rosterColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (host, username, contact) DO UPDATE SET
					name = excluded.name, groups = excluded.groups, subscription = excluded.subscription,
					ask = excluded.ask, approved = excluded.approved, version = excluded.version`,
				host, username, item.Contact, item.Name, normalizeGroups(item.Groups), string(item.Subscription),
				item.Ask, item.Approved, ver)
			return err
		})
	}
	if err != nil {
		return 0, fmt.Errorf("put roster item %s of %s@%s: %w", item.Contact, username, host, err)
	}
	return ver, nil
}

// DeleteRosterItem implements storage.Roster. It leaves a tombstone for
// RosterChanges.
func (s *Store) DeleteRosterItem(ctx context.Context, host, username, contact string) (int64, error) {
	var ver int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAccount(ctx, tx, host, username, "KEY SHARE"); err != nil {
			return err
		}
		// The counter first, as in PutRosterItem: one lock order.
		var err error
		if ver, err = bumpRosterVersion(ctx, tx, host, username); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`DELETE FROM roster_items WHERE host = $1 AND username = $2 AND contact = $3`, host, username, contact)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound // and the rollback undoes the increment
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO roster_removed (host, username, contact, version) VALUES ($1, $2, $3, $4)
			ON CONFLICT (host, username, contact) DO UPDATE SET version = excluded.version`,
			host, username, contact, ver)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete roster item %s of %s@%s: %w", contact, username, host, err)
	}
	return ver, nil
}

// RosterChanges implements storage.Roster. Tombstones are kept for as long
// as the account, so every version from 0 to the current one can be
// answered.
func (s *Store) RosterChanges(ctx context.Context, host, username string, since int64) (changed []storage.RosterItem, removed []string, current int64, ok bool, err error) {
	err = s.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		if current, err = rosterVersion(ctx, tx, host, username); err != nil {
			return err
		}
		if since < 0 || since > current {
			return nil
		}
		ok = true
		if since == current {
			return nil
		}
		changed, err = queryRosterItems(ctx, tx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE host = $1 AND username = $2 AND version > $3 ORDER BY version`,
			host, username, since)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx,
			`SELECT contact FROM roster_removed WHERE host = $1 AND username = $2 AND version > $3 ORDER BY version`,
			host, username, since)
		removed, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("roster changes of %s@%s since %d: %w", username, host, since, err)
	}
	if len(changed) == 0 {
		changed = nil
	}
	if len(removed) == 0 {
		removed = nil
	}
	return changed, removed, current, ok, nil
}

// RosterCount implements storage.Roster.
func (s *Store) RosterCount(ctx context.Context, host, username string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM roster_items WHERE host = $1 AND username = $2`, host, username).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("roster count of %s@%s: %w", username, host, err)
	}
	return n, nil
}

// PutSubscriptionRequest implements storage.Roster. A replaced request
// moves to the end of the order, as the newest.
func (s *Store) PutSubscriptionRequest(ctx context.Context, host, username string, req storage.SubscriptionRequest) error {
	stanza := req.Stanza
	if stanza == nil {
		stanza = []byte{}
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO subscription_requests (host, username, contact, stanza) VALUES ($1, $2, $3, $4)
		ON CONFLICT (host, username, contact) DO UPDATE SET seq = DEFAULT, stanza = excluded.stanza`,
		host, username, req.Contact, stanza)
	if isForeignKeyViolation(err) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("put subscription request from %s to %s@%s: %w", req.Contact, username, host, err)
	}
	return nil
}

// SubscriptionRequests implements storage.Roster.
func (s *Store) SubscriptionRequests(ctx context.Context, host, username string) ([]storage.SubscriptionRequest, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT contact, stanza FROM subscription_requests WHERE host = $1 AND username = $2 ORDER BY seq`, host, username)
	reqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.SubscriptionRequest, error) {
		var r storage.SubscriptionRequest
		err := row.Scan(&r.Contact, &r.Stanza)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("subscription requests to %s@%s: %w", username, host, err)
	}
	if len(reqs) == 0 {
		reqs = nil
	}
	return reqs, nil
}

// DeleteSubscriptionRequest implements storage.Roster.
func (s *Store) DeleteSubscriptionRequest(ctx context.Context, host, username, contact string) error {
	_, err := s.pool.Exec(ctx,
		`DELETE FROM subscription_requests WHERE host = $1 AND username = $2 AND contact = $3`, host, username, contact)
	if err != nil {
		return fmt.Errorf("delete subscription request from %s to %s@%s: %w", contact, username, host, err)
	}
	return nil
}
