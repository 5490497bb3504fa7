package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/starling-xmpp/starling/storage"
)

// readTx runs f in a read transaction on the readers: its statements see
// one snapshot of the database.
func (s *Store) readTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return f(tx)
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

// encodeGroups returns the stored form of a roster item's groups: a JSON
// array, sorted byte-wise, without duplicates.
func encodeGroups(groups []string) (string, error) {
	b, err := json.Marshal(normalizeGroups(groups))
	return string(b), err
}

func decodeGroups(s string) ([]string, error) {
	var groups []string
	if err := json.Unmarshal([]byte(s), &groups); err != nil {
		return nil, fmt.Errorf("stored roster groups %q: %w", s, err)
	}
	if len(groups) == 0 {
		return nil, nil
	}
	return groups, nil
}

const rosterColumns = `contact, name, groups, subscription, ask, approved, version`

// scanRosterItem scans the rosterColumns of one row.
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
	var err error
	it.Groups, err = decodeGroups(groups)
	return it, err
}

func queryRosterItems(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]storage.RosterItem, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []storage.RosterItem
	for rows.Next() {
		it, err := scanRosterItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

func rosterVersion(ctx context.Context, tx *sql.Tx, host, username string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `SELECT version FROM roster_versions WHERE host = ? AND username = ?`, host, username).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// bumpRosterVersion increments the account's roster version and returns
// it; ErrNotFound if there is no such account.
func bumpRosterVersion(ctx context.Context, tx *sql.Tx, host, username string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1)
		ON CONFLICT (host, username) DO UPDATE SET version = version + 1
		RETURNING version`, host, username).Scan(&v)
	if isForeignKeyViolation(err) {
		err = storage.ErrNotFound
	}
	return v, err
}

// RosterItems implements storage.Roster.
func (s *Store) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	var (
		items []storage.RosterItem
		ver   int64
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		if ver, err = rosterVersion(ctx, tx, host, username); err != nil {
			return err
		}
		items, err = queryRosterItems(ctx, tx,
			`SELECT `+rosterColumns+` FROM roster_items WHERE host = ? AND username = ? ORDER BY contact`,
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
	it, err := scanRosterItem(s.r.QueryRowContext(ctx,
		`SELECT `+rosterColumns+` FROM roster_items WHERE host = ? AND username = ? AND contact = ?`,
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
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			groups, err := encodeGroups(item.Groups)
			if err != nil {
				return err
			}
			if ver, err = bumpRosterVersion(ctx, tx, host, username); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM roster_removed WHERE host = ? AND username = ? AND contact = ?`,
				host, username, item.Contact); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO roster_items (host, username, `+rosterColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`DELETE FROM roster_items WHERE host = ? AND username = ? AND contact = ?`, host, username, contact)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		if ver, err = bumpRosterVersion(ctx, tx, host, username); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
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
	err = s.readTx(ctx, func(tx *sql.Tx) error {
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
			`SELECT `+rosterColumns+` FROM roster_items WHERE host = ? AND username = ? AND version > ? ORDER BY version`,
			host, username, since)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT contact FROM roster_removed WHERE host = ? AND username = ? AND version > ? ORDER BY version`,
			host, username, since)
		if err != nil {
			return err
		}
		removed, err = collectStrings(rows)
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
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM roster_items WHERE host = ? AND username = ?`, host, username).Scan(&n)
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
	// One writer at a time, so max + 1 is unique.
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO subscription_requests (host, username, contact, seq, stanza)
		VALUES (?1, ?2, ?3, (SELECT coalesce(max(seq), 0) + 1 FROM subscription_requests WHERE host = ?1 AND username = ?2), ?4)
		ON CONFLICT (host, username, contact) DO UPDATE SET seq = excluded.seq, stanza = excluded.stanza`,
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
	reqs, err := s.subscriptionRequests(ctx, host, username)
	if err != nil {
		return nil, fmt.Errorf("subscription requests to %s@%s: %w", username, host, err)
	}
	return reqs, nil
}

func (s *Store) subscriptionRequests(ctx context.Context, host, username string) ([]storage.SubscriptionRequest, error) {
	rows, err := s.r.QueryContext(ctx,
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
	_, err := s.w.ExecContext(ctx,
		`DELETE FROM subscription_requests WHERE host = ? AND username = ? AND contact = ?`, host, username, contact)
	if err != nil {
		return fmt.Errorf("delete subscription request from %s to %s@%s: %w", contact, username, host, err)
	}
	return nil
}

// collectStrings scans rows of one text column and closes them.
func collectStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
