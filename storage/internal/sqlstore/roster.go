package sqlstore

// The roster aggregate (storage.Roster): items with a version counter
// (XEP-0237), tombstones of removed items, and pending inbound subscription
// requests.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("roster",
		`DELETE FROM roster_items WHERE host = ? AND username = ?`,
		`DELETE FROM roster_removed WHERE host = ? AND username = ?`,
		`DELETE FROM roster_versions WHERE host = ? AND username = ?`,
		`DELETE FROM subscription_requests WHERE host = ? AND username = ?`)
}

// normalizeGroups returns a sorted copy of groups without duplicates,
// never nil.
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

// scanRosterItem scans the core's rosterColumns of one row.
func scanRosterItem(row interface{ Scan(...any) error }) (storage.RosterItem, error) {
	var (
		it     storage.RosterItem
		groups string
		sub    string
	)
	if err := row.Scan(&it.Contact, &it.Name, &groups, &sub, &it.Ask, &it.Approved, &it.Version); err != nil {
		return storage.RosterItem{}, err
	}
	it.Subscription = storage.Subscription(sub)
	if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
		return storage.RosterItem{}, fmt.Errorf("stored roster groups %q: %w", groups, err)
	}
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it, nil
}

func queryRosterItems(ctx context.Context, c conn, query string, args ...any) ([]storage.RosterItem, error) {
	rows, err := c.query(ctx, query, args...)
	return collect(rows, err, func(r Rows) (storage.RosterItem, error) { return scanRosterItem(r) })
}

func rosterVersion(ctx context.Context, c conn, host, username string) (int64, error) {
	var v int64
	err := c.queryRow(ctx, `SELECT version FROM roster_versions WHERE host = ? AND username = ?`, host, username).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// bumpRosterVersion increments the account's roster version and returns
// it. The counter row stays locked until the transaction ends, which
// serialises the account's roster writers: versions are distinct and
// committed in order.
func bumpRosterVersion(ctx context.Context, c conn, host, username string) (int64, error) {
	var v int64
	err := c.queryRow(ctx,
		`INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1)
		ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1
		RETURNING version`, host, username).Scan(&v)
	return v, c.c.notFoundIfNoAccount(err)
}

// RosterItems implements storage.Roster.
func (s *Store) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	var (
		items []storage.RosterItem
		ver   int64
	)
	err := s.read(ctx, func(c conn) error {
		var err error
		if ver, err = rosterVersion(ctx, c, host, username); err != nil {
			return err
		}
		items, err = queryRosterItems(ctx, c,
			`SELECT `+s.rosterColumns+` FROM roster_items WHERE host = ? AND username = ? ORDER BY contact`,
			host, username)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("roster of %s@%s: %w", username, host, err)
	}
	return items, ver, nil
}

// RosterItem implements storage.Roster.
func (s *Store) RosterItem(ctx context.Context, host, username, contact string) (storage.RosterItem, error) {
	it, err := scanRosterItem(s.reader().queryRow(ctx,
		`SELECT `+s.rosterColumns+` FROM roster_items WHERE host = ? AND username = ? AND contact = ?`,
		host, username, contact))
	if errors.Is(err, sql.ErrNoRows) {
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
		err = s.write(ctx, func(c conn) error {
			groups, err := s.d.Strings(normalizeGroups(item.Groups))
			if err != nil {
				return err
			}
			if err := lockAccount(ctx, c, host, username, LockShare); err != nil {
				return err
			}
			if ver, err = bumpRosterVersion(ctx, c, host, username); err != nil {
				return err
			}
			if _, err := c.exec(ctx,
				`DELETE FROM roster_removed WHERE host = ? AND username = ? AND contact = ?`,
				host, username, item.Contact); err != nil {
				return err
			}
			_, err = c.exec(ctx,
				`INSERT INTO roster_items (host, username, contact, name, groups, subscription, ask, approved, version)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (host, username, contact) DO UPDATE SET
					name = excluded.name, groups = excluded.groups, subscription = excluded.subscription,
					ask = excluded.ask, approved = excluded.approved, version = excluded.version`,
				host, username, item.Contact, item.Name, groups, string(item.Subscription), item.Ask, item.Approved, ver)
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
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockShare); err != nil {
			return err
		}
		// The counter first, as in PutRosterItem: one lock order.
		var err error
		if ver, err = bumpRosterVersion(ctx, c, host, username); err != nil {
			return err
		}
		n, err := c.exec(ctx,
			`DELETE FROM roster_items WHERE host = ? AND username = ? AND contact = ?`, host, username, contact)
		if err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotFound // and the rollback undoes the increment
		}
		_, err = c.exec(ctx,
			`INSERT INTO roster_removed (host, username, contact, version) VALUES (?, ?, ?, ?)
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
	err = s.read(ctx, func(c conn) error {
		var err error
		if current, err = rosterVersion(ctx, c, host, username); err != nil {
			return err
		}
		if since < 0 || since > current {
			return nil
		}
		ok = true
		if since == current {
			return nil
		}
		changed, err = queryRosterItems(ctx, c,
			`SELECT `+s.rosterColumns+` FROM roster_items WHERE host = ? AND username = ? AND version > ? ORDER BY version`,
			host, username, since)
		if err != nil {
			return err
		}
		removed, err = collectStrings(c.query(ctx,
			`SELECT contact FROM roster_removed WHERE host = ? AND username = ? AND version > ? ORDER BY version`,
			host, username, since))
		return err
	})
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("roster changes of %s@%s since %d: %w", username, host, since, err)
	}
	return changed, removed, current, ok, nil
}

// RosterCount implements storage.Roster.
func (s *Store) RosterCount(ctx context.Context, host, username string) (int, error) {
	var n int
	err := s.reader().queryRow(ctx, `SELECT count(*) FROM roster_items WHERE host = ? AND username = ?`, host, username).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("roster count of %s@%s: %w", username, host, err)
	}
	return n, nil
}

// PutSubscriptionRequest implements storage.Roster. A replaced request
// moves to the end of the order, as the newest: it takes the account's
// highest seq + 1, which the account's lock makes unique.
func (s *Store) PutSubscriptionRequest(ctx context.Context, host, username string, req storage.SubscriptionRequest) error {
	stanza := req.Stanza
	if stanza == nil {
		stanza = []byte{}
	}
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		_, err := c.exec(ctx,
			`INSERT INTO subscription_requests (host, username, contact, seq, stanza)
			VALUES (?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM subscription_requests WHERE host = ? AND username = ?), ?)
			ON CONFLICT (host, username, contact) DO UPDATE SET seq = excluded.seq, stanza = excluded.stanza`,
			host, username, req.Contact, host, username, stanza)
		return s.notFoundIfNoAccount(err)
	})
	if err != nil {
		return fmt.Errorf("put subscription request from %s to %s@%s: %w", req.Contact, username, host, err)
	}
	return nil
}

// SubscriptionRequests implements storage.Roster.
func (s *Store) SubscriptionRequests(ctx context.Context, host, username string) ([]storage.SubscriptionRequest, error) {
	reqs, err := s.subscriptionRequests(ctx, host, username)
	if err != nil {
		return nil, fmt.Errorf("subscription requests to %s@%s: %w", username, host, err)
	}
	return reqs, nil
}

func (s *Store) subscriptionRequests(ctx context.Context, host, username string) ([]storage.SubscriptionRequest, error) {
	rows, err := s.reader().query(ctx,
		`SELECT contact, stanza FROM subscription_requests WHERE host = ? AND username = ? ORDER BY seq`, host, username)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var reqs []storage.SubscriptionRequest
	for rows.Next() {
		var r storage.SubscriptionRequest
		if err := rows.Scan(&r.Contact, &r.Stanza); err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	return reqs, rows.Err()
}

// DeleteSubscriptionRequest implements storage.Roster.
func (s *Store) DeleteSubscriptionRequest(ctx context.Context, host, username, contact string) error {
	_, err := s.writer().exec(ctx,
		`DELETE FROM subscription_requests WHERE host = ? AND username = ? AND contact = ?`, host, username, contact)
	if err != nil {
		return fmt.Errorf("delete subscription request from %s to %s@%s: %w", contact, username, host, err)
	}
	return nil
}
