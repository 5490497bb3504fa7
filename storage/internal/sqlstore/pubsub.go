package sqlstore

// The pubsub aggregate (storage.PubSub): each account's personal eventing
// nodes and their items (XEP-0163 on XEP-0060). Every write holds the
// account's row (the order DeleteAccount keeps too), so that a node's
// item counters, its seq and the account's quota totals are read, decided
// on and written without another writer of the account in between.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("pubsub",
		// The account's subscriptions to others' nodes, then those to
		// its own.
		`DELETE FROM pubsub_subscriptions WHERE sub_host = ? AND sub_username = ?`,
		`DELETE FROM pubsub_subscriptions WHERE host = ? AND username = ?`,
		`DELETE FROM pubsub_items WHERE host = ? AND username = ?`,
		`DELETE FROM pubsub_nodes WHERE host = ? AND username = ?`)
}

const pubsubNodeColumns = `node, access_model, persist_items, max_items, send_last, notify_retract, whitelist, extra, items, bytes`

func scanPubSubNode(row interface{ Scan(...any) error }) (storage.PubSubNode, error) {
	var (
		n                storage.PubSubNode
		access           string
		whitelist, extra string
	)
	err := row.Scan(&n.Name, &access, &n.Config.PersistItems, &n.Config.MaxItems, &n.Config.SendLastPublishedItem,
		&n.Config.NotifyRetract, &whitelist, &extra, &n.Items, &n.Bytes)
	if err != nil {
		return storage.PubSubNode{}, err
	}
	n.Config.AccessModel = storage.PubSubAccessModel(access)
	if err := json.Unmarshal([]byte(whitelist), &n.Config.Whitelist); err != nil {
		return storage.PubSubNode{}, fmt.Errorf("stored whitelist of node %q: %w", n.Name, err)
	}
	if err := json.Unmarshal([]byte(extra), &n.Config.Extra); err != nil {
		return storage.PubSubNode{}, fmt.Errorf("stored configuration of node %q: %w", n.Name, err)
	}
	if len(n.Config.Whitelist) == 0 {
		n.Config.Whitelist = nil
	}
	if len(n.Config.Extra) == 0 {
		n.Config.Extra = nil
	}
	for k, v := range n.Config.Extra {
		if v == nil {
			n.Config.Extra[k] = []string{}
		}
	}
	return n, nil
}

// encodePubSubConfig returns the JSON columns of cfg.
func encodePubSubConfig(cfg storage.PubSubNodeConfig) (whitelist, extra string, err error) {
	wl := cfg.Whitelist
	if wl == nil {
		wl = []string{}
	}
	ex := cfg.Extra
	if ex == nil {
		ex = map[string][]string{}
	}
	w, err := json.Marshal(wl)
	if err != nil {
		return "", "", err
	}
	e, err := json.Marshal(ex)
	if err != nil {
		return "", "", err
	}
	return string(w), string(e), nil
}

// pubsubNodeLimit is how many items a node with maxItems keeps under lim;
// 0 for no limit.
func pubsubNodeLimit(maxItems int, lim storage.PubSubLimits) int {
	if maxItems <= 0 || (lim.NodeItems > 0 && maxItems > lim.NodeItems) {
		return max(lim.NodeItems, 0)
	}
	return maxItems
}

// pubsubNodeState is what a write of a node's items reads first.
type pubsubNodeState struct {
	maxItems int
	lastSeq  int64
}

// pubsubNodeStateOf reads a node's state; ErrNotFound if there is none.
func pubsubNodeStateOf(ctx context.Context, c conn, host, username, node string) (pubsubNodeState, error) {
	var st pubsubNodeState
	err := c.queryRow(ctx, `SELECT max_items, last_seq FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`,
		host, username, node).Scan(&st.maxItems, &st.lastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return st, storage.ErrNotFound
	}
	return st, err
}

// pubsubTrim is the oldest items of a node beyond the newest keep ones
// (not counting the item except, if not ""): those with seq <= cut.
type pubsubTrim struct {
	except string
	cut    int64
	items  int
	bytes  int64
}

// pubsubBeyond finds the items to trim so that a node keeps keep items
// besides except (with except "", none is excepted; item ids are not
// empty); the zero pubsubTrim if there are none.
func pubsubBeyond(ctx context.Context, c conn, host, username, node string, keep int, except string) (pubsubTrim, error) {
	tr := pubsubTrim{except: except}
	err := c.queryRow(ctx, `SELECT seq FROM pubsub_items WHERE host = ? AND username = ? AND node = ? AND item_id <> ?
		ORDER BY seq DESC LIMIT 1 OFFSET ?`, host, username, node, except, keep).Scan(&tr.cut)
	if errors.Is(err, sql.ErrNoRows) {
		return pubsubTrim{}, nil
	}
	if err != nil {
		return pubsubTrim{}, err
	}
	err = c.queryRow(ctx, `SELECT count(*), CAST(coalesce(sum(length(payload)), 0) AS bigint) FROM pubsub_items
		WHERE host = ? AND username = ? AND node = ? AND seq <= ? AND item_id <> ?`,
		host, username, node, tr.cut, except).Scan(&tr.items, &tr.bytes)
	return tr, err
}

// apply removes the items of tr.
func (tr pubsubTrim) apply(ctx context.Context, c conn, host, username, node string) error {
	if tr.items == 0 {
		return nil
	}
	_, err := c.exec(ctx, `DELETE FROM pubsub_items WHERE host = ? AND username = ? AND node = ? AND seq <= ? AND item_id <> ?`,
		host, username, node, tr.cut, tr.except)
	return err
}

// pubsubUsage reads an account's totals.
func pubsubUsage(ctx context.Context, c conn, host, username string) (storage.PubSubUsage, error) {
	var u storage.PubSubUsage
	err := c.queryRow(ctx, `SELECT count(*), CAST(coalesce(sum(items), 0) AS bigint), CAST(coalesce(sum(bytes), 0) AS bigint)
		FROM pubsub_nodes WHERE host = ? AND username = ?`, host, username).Scan(&u.Nodes, &u.Items, &u.Bytes)
	return u, err
}

// CreatePubSubNode implements storage.PubSub. The node's existence is
// checked before the insert (the account held), so that a conflict does
// not abort a PostgreSQL transaction the caller goes on with.
func (s *Store) CreatePubSubNode(ctx context.Context, host, username, node string, cfg storage.PubSubNodeConfig, lim storage.PubSubLimits) error {
	err := s.write(ctx, func(c conn) error {
		wl, ex, err := encodePubSubConfig(cfg)
		if err != nil {
			return err
		}
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		if _, err := pubsubNodeStateOf(ctx, c, host, username, node); err == nil {
			return storage.ErrConflict
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if lim.Nodes > 0 {
			var n int
			if err := c.queryRow(ctx, `SELECT count(*) FROM pubsub_nodes WHERE host = ? AND username = ?`,
				host, username).Scan(&n); err != nil {
				return err
			}
			if n >= lim.Nodes {
				return storage.ErrQuota
			}
		}
		_, err = c.exec(ctx, `INSERT INTO pubsub_nodes (host, username, node, access_model, persist_items, max_items, send_last,
			notify_retract, whitelist, extra, items, bytes, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0)`,
			host, username, node, string(cfg.AccessModel), cfg.PersistItems, cfg.MaxItems, cfg.SendLastPublishedItem,
			cfg.NotifyRetract, wl, ex)
		return err
	})
	if err != nil {
		return fmt.Errorf("create pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return nil
}

// PubSubNode implements storage.PubSub.
func (s *Store) PubSubNode(ctx context.Context, host, username, node string) (storage.PubSubNode, error) {
	n, err := scanPubSubNode(s.reader().queryRow(ctx,
		`SELECT `+pubsubNodeColumns+` FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`, host, username, node))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.PubSubNode{}, fmt.Errorf("pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return n, nil
}

// PubSubNodes implements storage.PubSub.
func (s *Store) PubSubNodes(ctx context.Context, host, username string) ([]storage.PubSubNode, error) {
	rows, err := s.reader().query(ctx,
		`SELECT `+pubsubNodeColumns+` FROM pubsub_nodes WHERE host = ? AND username = ? ORDER BY node`, host, username)
	nodes, err := collect(rows, err, func(r Rows) (storage.PubSubNode, error) { return scanPubSubNode(r) })
	if err != nil {
		return nil, fmt.Errorf("pubsub nodes of %s@%s: %w", username, host, err)
	}
	return nodes, nil
}

// ConfigurePubSubNode implements storage.PubSub.
func (s *Store) ConfigurePubSubNode(ctx context.Context, host, username, node string, cfg storage.PubSubNodeConfig, lim storage.PubSubLimits) error {
	err := s.write(ctx, func(c conn) error {
		wl, ex, err := encodePubSubConfig(cfg)
		if err != nil {
			return err
		}
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		if _, err := pubsubNodeStateOf(ctx, c, host, username, node); err != nil {
			return err
		}
		var tr pubsubTrim
		if limit := pubsubNodeLimit(cfg.MaxItems, lim); limit > 0 {
			if tr, err = pubsubBeyond(ctx, c, host, username, node, limit, ""); err != nil {
				return err
			}
			if err := tr.apply(ctx, c, host, username, node); err != nil {
				return err
			}
		}
		_, err = c.exec(ctx, `UPDATE pubsub_nodes SET access_model = ?, persist_items = ?, max_items = ?, send_last = ?,
			notify_retract = ?, whitelist = ?, extra = ?, items = items - ?, bytes = bytes - ?
			WHERE host = ? AND username = ? AND node = ?`,
			string(cfg.AccessModel), cfg.PersistItems, cfg.MaxItems, cfg.SendLastPublishedItem, cfg.NotifyRetract, wl, ex,
			tr.items, tr.bytes, host, username, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("configure pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return nil
}

// DeletePubSubNode implements storage.PubSub.
func (s *Store) DeletePubSubNode(ctx context.Context, host, username, node string) error {
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM pubsub_subscriptions WHERE host = ? AND username = ? AND node = ?`,
			`DELETE FROM pubsub_items WHERE host = ? AND username = ? AND node = ?`,
		} {
			if _, err := c.exec(ctx, q, host, username, node); err != nil {
				return err
			}
		}
		n, err := c.exec(ctx, `DELETE FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`, host, username, node)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return nil
}

// PurgePubSubNode implements storage.PubSub.
func (s *Store) PurgePubSubNode(ctx context.Context, host, username, node string) (int, error) {
	var n int64
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		if _, err := pubsubNodeStateOf(ctx, c, host, username, node); err != nil {
			return err
		}
		var err error
		if n, err = c.exec(ctx, `DELETE FROM pubsub_items WHERE host = ? AND username = ? AND node = ?`,
			host, username, node); err != nil {
			return err
		}
		_, err = c.exec(ctx, `UPDATE pubsub_nodes SET items = 0, bytes = 0 WHERE host = ? AND username = ? AND node = ?`,
			host, username, node)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return int(n), nil
}

// PublishPubSubItem implements storage.PubSub: what the publish removes
// (the item it replaces, the oldest beyond the node's limit) and the
// quota are worked out before anything is written, so that a refused
// publish leaves nothing to roll back, in the caller's transaction too.
func (s *Store) PublishPubSubItem(ctx context.Context, host, username, node string, it storage.PubSubItem, lim storage.PubSubLimits) error {
	if it.ID == "" {
		return fmt.Errorf("publish to pubsub node %q of %s@%s: an item without an ID", node, username, host)
	}
	payload := it.Payload
	if payload == nil {
		payload = []byte{}
	}
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		st, err := pubsubNodeStateOf(ctx, c, host, username, node)
		if err != nil {
			return err
		}
		var oldLen int64
		err = c.queryRow(ctx, `SELECT length(payload) FROM pubsub_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?`,
			host, username, node, it.ID).Scan(&oldLen)
		replaces := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var tr pubsubTrim
		if limit := pubsubNodeLimit(st.maxItems, lim); limit > 0 {
			if tr, err = pubsubBeyond(ctx, c, host, username, node, limit-1, it.ID); err != nil {
				return err
			}
		}
		dItems, dBytes := -tr.items, int64(len(payload))-tr.bytes-oldLen
		if !replaces {
			dItems++
		}
		if (lim.Items > 0 && dItems > 0) || (lim.Bytes > 0 && dBytes > 0) {
			u, err := pubsubUsage(ctx, c, host, username)
			if err != nil {
				return err
			}
			if (lim.Items > 0 && dItems > 0 && u.Items+dItems > lim.Items) ||
				(lim.Bytes > 0 && dBytes > 0 && u.Bytes+dBytes > lim.Bytes) {
				return storage.ErrQuota
			}
		}
		if err := tr.apply(ctx, c, host, username, node); err != nil {
			return err
		}
		seq := st.lastSeq + 1
		if _, err := c.exec(ctx, `INSERT INTO pubsub_items (host, username, node, item_id, seq, publisher, payload, published)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, node, item_id) DO UPDATE SET
				seq = excluded.seq, publisher = excluded.publisher, payload = excluded.payload, published = excluded.published`,
			host, username, node, it.ID, seq, it.Publisher, payload, s.d.Time(it.Published, time.Millisecond)); err != nil {
			return err
		}
		_, err = c.exec(ctx, `UPDATE pubsub_nodes SET items = items + ?, bytes = bytes + ?, last_seq = ?
			WHERE host = ? AND username = ? AND node = ?`, dItems, dBytes, seq, host, username, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("publish item %q to pubsub node %q of %s@%s: %w", it.ID, node, username, host, err)
	}
	return nil
}

// RetractPubSubItem implements storage.PubSub.
func (s *Store) RetractPubSubItem(ctx context.Context, host, username, node, id string) error {
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		var n int64
		err := c.queryRow(ctx, `SELECT length(payload) FROM pubsub_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?`,
			host, username, node, id).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM pubsub_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?`,
			host, username, node, id); err != nil {
			return err
		}
		_, err = c.exec(ctx, `UPDATE pubsub_nodes SET items = items - 1, bytes = bytes - ? WHERE host = ? AND username = ? AND node = ?`,
			n, host, username, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("retract item %q of pubsub node %q of %s@%s: %w", id, node, username, host, err)
	}
	return nil
}

const pubsubItemColumns = `seq, item_id, publisher, payload, published`

type seqItem struct {
	seq int64
	storage.PubSubItem
}

func (s *Store) scanPubSubItem(row interface{ Scan(...any) error }) (seqItem, error) {
	var it seqItem
	err := row.Scan(&it.seq, &it.ID, &it.Publisher, &it.Payload, s.d.ScanTime(&it.Published, time.Millisecond))
	return it, err
}

// PubSubItems implements storage.PubSub, in one read transaction. Items
// asked for by ID are read one statement each (clients ask for one or a
// few), so that the statement is the same whatever their number.
func (s *Store) PubSubItems(ctx context.Context, host, username, node string, q storage.PubSubItemsQuery) ([]storage.PubSubItem, error) {
	var items []seqItem
	err := s.read(ctx, func(c conn) error {
		var one int
		err := c.queryRow(ctx, `SELECT 1 FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`,
			host, username, node).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if len(q.IDs) > 0 {
			seen := make(map[string]bool, len(q.IDs))
			for _, id := range q.IDs {
				if seen[id] {
					continue
				}
				seen[id] = true
				it, err := s.scanPubSubItem(c.queryRow(ctx, `SELECT `+pubsubItemColumns+` FROM pubsub_items
					WHERE host = ? AND username = ? AND node = ? AND item_id = ?`, host, username, node, id))
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return err
				}
				items = append(items, it)
			}
			slices.SortFunc(items, func(a, b seqItem) int { return cmp.Compare(a.seq, b.seq) })
			return nil
		}
		query, args := `SELECT `+pubsubItemColumns+` FROM pubsub_items WHERE host = ? AND username = ? AND node = ? ORDER BY seq`,
			[]any{host, username, node}
		if q.Last > 0 {
			query, args = `SELECT `+pubsubItemColumns+` FROM pubsub_items WHERE host = ? AND username = ? AND node = ?
				ORDER BY seq DESC LIMIT ?`, append(args, q.Last)
		}
		rows, err := c.query(ctx, query, args...)
		items, err = collect(rows, err, func(r Rows) (seqItem, error) { return s.scanPubSubItem(r) })
		if q.Last > 0 {
			slices.Reverse(items)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("items of pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]storage.PubSubItem, len(items))
	for i, it := range items {
		out[i] = it.PubSubItem
	}
	return out, nil
}

// PubSubUsage implements storage.PubSub.
func (s *Store) PubSubUsage(ctx context.Context, host, username string) (storage.PubSubUsage, error) {
	u, err := pubsubUsage(ctx, s.reader(), host, username)
	if err != nil {
		return storage.PubSubUsage{}, fmt.Errorf("pubsub usage of %s@%s: %w", username, host, err)
	}
	return u, nil
}

// splitJID returns a JID's domainpart and localpart ("" for none): a
// localpart holds no '@' or '/', a domainpart no '/' (RFC 7622 §3).
func splitJID(j string) (domain, local string) {
	bare, _, _ := strings.Cut(j, "/")
	if l, d, ok := strings.Cut(bare, "@"); ok {
		return d, l
	}
	return bare, ""
}

// PubSubSubscribe implements storage.PubSub. The node's subscriptions are
// counted with the account held, so that the limit holds.
func (s *Store) PubSubSubscribe(ctx context.Context, host, username, node, jid string, lim storage.PubSubLimits) error {
	subHost, subUser := splitJID(jid)
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		if _, err := pubsubNodeStateOf(ctx, c, host, username, node); err != nil {
			return err
		}
		var one int
		err := c.queryRow(ctx, `SELECT 1 FROM pubsub_subscriptions WHERE host = ? AND username = ? AND node = ? AND jid = ?`,
			host, username, node, jid).Scan(&one)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if lim.Subscriptions > 0 {
			var n int
			if err := c.queryRow(ctx, `SELECT count(*) FROM pubsub_subscriptions WHERE host = ? AND username = ? AND node = ?`,
				host, username, node).Scan(&n); err != nil {
				return err
			}
			if n >= lim.Subscriptions {
				return storage.ErrQuota
			}
		}
		_, err = c.exec(ctx, `INSERT INTO pubsub_subscriptions (host, username, node, jid, sub_host, sub_username)
			VALUES (?, ?, ?, ?, ?, ?)`, host, username, node, jid, subHost, subUser)
		return err
	})
	if err != nil {
		return fmt.Errorf("subscribe %s to pubsub node %q of %s@%s: %w", jid, node, username, host, err)
	}
	return nil
}

// PubSubUnsubscribe implements storage.PubSub.
func (s *Store) PubSubUnsubscribe(ctx context.Context, host, username, node, jid string) error {
	err := s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		n, err := c.exec(ctx, `DELETE FROM pubsub_subscriptions WHERE host = ? AND username = ? AND node = ? AND jid = ?`,
			host, username, node, jid)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("unsubscribe %s from pubsub node %q of %s@%s: %w", jid, node, username, host, err)
	}
	return nil
}

func scanPubSubSubscription(r Rows) (storage.PubSubSubscription, error) {
	var sub storage.PubSubSubscription
	err := r.Scan(&sub.Node, &sub.JID)
	return sub, err
}

// PubSubSubscriptions implements storage.PubSub, in one read transaction.
func (s *Store) PubSubSubscriptions(ctx context.Context, host, username, node string) ([]storage.PubSubSubscription, error) {
	var subs []storage.PubSubSubscription
	err := s.read(ctx, func(c conn) error {
		var one int
		err := c.queryRow(ctx, `SELECT 1 FROM pubsub_nodes WHERE host = ? AND username = ? AND node = ?`,
			host, username, node).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := c.query(ctx, `SELECT node, jid FROM pubsub_subscriptions WHERE host = ? AND username = ? AND node = ?
			ORDER BY jid`, host, username, node)
		subs, err = collect(rows, err, scanPubSubSubscription)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions of pubsub node %q of %s@%s: %w", node, username, host, err)
	}
	return subs, nil
}

// PubSubSubscriptionsOf implements storage.PubSub.
func (s *Store) PubSubSubscriptionsOf(ctx context.Context, host, username, bare string) ([]storage.PubSubSubscription, error) {
	subHost, subUser := splitJID(bare)
	rows, err := s.reader().query(ctx, `SELECT node, jid FROM pubsub_subscriptions
		WHERE sub_host = ? AND sub_username = ? AND host = ? AND username = ? ORDER BY node, jid`,
		subHost, subUser, host, username)
	subs, err := collect(rows, err, scanPubSubSubscription)
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %s to pubsub nodes of %s@%s: %w", bare, username, host, err)
	}
	return subs, nil
}
