package sqlstore

// The push aggregate (storage.PushRegistrations): the app servers each
// account asked to be notified (XEP-0357).

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("push", `DELETE FROM push_registrations WHERE host = ? AND username = ?`)
}

// pushOption is a storage.PushOption as stored, in JSON.
type pushOption struct {
	Var    string   `json:"var"`
	Values []string `json:"values"`
}

// PutPushRegistration implements storage.PushRegistrations. The account's
// row is held while the registration is written and the oldest beyond
// max removed, so that concurrent enables keep the limit.
func (s *Store) PutPushRegistration(ctx context.Context, host, username string, r storage.PushRegistration, max int) error {
	opts := make([]pushOption, len(r.Options))
	for i, o := range r.Options {
		opts[i] = pushOption{Var: o.Var, Values: o.Values}
		if opts[i].Values == nil {
			opts[i].Values = []string{}
		}
	}
	enc, err := json.Marshal(opts)
	if err != nil {
		return fmt.Errorf("put push registration of %s@%s: %w", username, host, err)
	}
	err = s.write(ctx, func(c conn) error {
		if err := lockAccount(ctx, c, host, username, LockWrite); err != nil {
			return err
		}
		_, err := c.exec(ctx,
			`INSERT INTO push_registrations (host, username, jid, node, options, enabled) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (host, username, jid, node) DO UPDATE SET options = excluded.options, enabled = excluded.enabled`,
			host, username, r.JID, r.Node, string(enc), s.d.Time(r.Enabled, time.Millisecond))
		if err != nil {
			return s.notFoundIfNoAccount(err)
		}
		if max <= 0 {
			return nil
		}
		rows, err := c.query(ctx,
			`SELECT jid, node FROM push_registrations WHERE host = ? AND username = ? ORDER BY enabled DESC, jid DESC, node DESC`,
			host, username)
		if err != nil {
			return err
		}
		var evict [][2]string
		n := 1 // r's
		for rows.Next() {
			var jid, node string
			if err := rows.Scan(&jid, &node); err != nil {
				rows.Close()
				return err
			}
			if jid == r.JID && node == r.Node {
				continue
			}
			if n++; n > max {
				evict = append(evict, [2]string{jid, node})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range evict {
			if _, err := c.exec(ctx,
				`DELETE FROM push_registrations WHERE host = ? AND username = ? AND jid = ? AND node = ?`,
				host, username, k[0], k[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put push registration of %s@%s: %w", username, host, err)
	}
	return nil
}

// PushRegistrations implements storage.PushRegistrations.
func (s *Store) PushRegistrations(ctx context.Context, host, username string) ([]storage.PushRegistration, error) {
	regs, err := s.pushRegistrations(ctx, host, username)
	if err != nil {
		return nil, fmt.Errorf("push registrations of %s@%s: %w", username, host, err)
	}
	return regs, nil
}

func (s *Store) pushRegistrations(ctx context.Context, host, username string) ([]storage.PushRegistration, error) {
	rows, err := s.reader().query(ctx,
		`SELECT jid, node, options, enabled FROM push_registrations WHERE host = ? AND username = ?
		ORDER BY enabled, jid, node`, host, username)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var regs []storage.PushRegistration
	for rows.Next() {
		var (
			r   storage.PushRegistration
			enc string
		)
		if err := rows.Scan(&r.JID, &r.Node, &enc, s.d.ScanTime(&r.Enabled, time.Millisecond)); err != nil {
			return nil, err
		}
		var opts []pushOption
		if err := json.Unmarshal([]byte(enc), &opts); err != nil {
			return nil, fmt.Errorf("options of %s %q: %w", r.JID, r.Node, err)
		}
		for _, o := range opts {
			r.Options = append(r.Options, storage.PushOption{Var: o.Var, Values: o.Values})
		}
		regs = append(regs, r)
	}
	return regs, rows.Err()
}

// DeletePushRegistrations implements storage.PushRegistrations.
func (s *Store) DeletePushRegistrations(ctx context.Context, host, username, jid, node string) (int, error) {
	q, args := `DELETE FROM push_registrations WHERE host = ? AND username = ? AND jid = ?`, []any{host, username, jid}
	if node != "" {
		q, args = q+` AND node = ?`, append(args, node)
	}
	n, err := s.writer().exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete push registrations of %s@%s for %s %q: %w", username, host, jid, node, err)
	}
	return int(n), nil
}
