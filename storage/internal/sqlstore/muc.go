package sqlstore

// The muc aggregate (storage.MUC): the persistent rooms of multi-user
// chat services (XEP-0045), their affiliations, and their message
// archives (XEP-0313 for rooms), kept in muc_archive by the same code as
// the accounts' archive (archive.go). A room's rows go with it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// mucArchive is the rooms' archives. They store no direction: every
// message reads as storage.Incoming.
var mucArchive = newArchiveTable("muc_archive", [2]string{"service", "room"},
	[]string{"id", "service", "room", "with_jid", "with_resource", "stanza"},
	`id, with_jid, with_resource, 0, stanza`,
	`SELECT 1 FROM muc_rooms WHERE service = ? AND name = ?`)

func (s *Store) scanMUCRoom(row interface{ Scan(...any) error }) (storage.MUCRoom, error) {
	var r storage.MUCRoom
	err := row.Scan(&r.Service, &r.Name, &r.Config, s.d.ScanTime(&r.Created, time.Second))
	return r, err
}

// MUCRooms implements storage.MUC.
func (s *Store) MUCRooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := s.reader().query(ctx,
		`SELECT service, name, config, created FROM muc_rooms WHERE service = ? ORDER BY name`, service)
	rooms, err := collect(rows, err, func(r Rows) (storage.MUCRoom, error) { return s.scanMUCRoom(r) })
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", service, err)
	}
	return rooms, nil
}

// MUCRoom implements storage.MUC.
func (s *Store) MUCRoom(ctx context.Context, service, name string) (storage.MUCRoom, error) {
	r, err := s.scanMUCRoom(s.reader().queryRow(ctx,
		`SELECT service, name, config, created FROM muc_rooms WHERE service = ? AND name = ?`, service, name))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.MUCRoom{}, fmt.Errorf("room %s@%s: %w", name, service, err)
	}
	return r, nil
}

// PutMUCRoom implements storage.MUC: one upsert, which leaves created
// as the room's creation wrote it.
func (s *Store) PutMUCRoom(ctx context.Context, room storage.MUCRoom) error {
	_, err := s.writer().exec(ctx, `INSERT INTO muc_rooms (service, name, config, created) VALUES (?, ?, ?, ?)
		ON CONFLICT (service, name) DO UPDATE SET config = excluded.config`,
		room.Service, room.Name, stanzaBytes(room.Config), s.d.Time(room.Created, time.Second))
	if err != nil {
		return fmt.Errorf("put room %s@%s: %w", room.Name, room.Service, err)
	}
	return nil
}

// DeleteMUCRoom implements storage.MUC: with the room's row locked
// first (FOR UPDATE on PostgreSQL: the order SetMUCAffiliations and
// archive appends, which hold it shared, keep too, so that they wait for
// the deletion or it for them, and neither deadlocks), the room's archive
// and affiliations are removed by statements of their own before it; the
// tables' ON DELETE CASCADE remains as a second guard.
func (s *Store) DeleteMUCRoom(ctx context.Context, service, name string) error {
	err := s.write(ctx, func(c conn) error {
		var one int
		err := c.queryRow(ctx, `SELECT 1 FROM muc_rooms WHERE service = ? AND name = ? `+s.d.Lock(LockExclusive),
			service, name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM muc_archive WHERE service = ? AND room = ?`,
			`DELETE FROM muc_affiliations WHERE service = ? AND room = ?`,
			`DELETE FROM muc_rooms WHERE service = ? AND name = ?`,
		} {
			if _, err := c.exec(ctx, q, service, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete room %s@%s: %w", name, service, err)
	}
	return nil
}

// MUCAffiliations implements storage.MUC.
func (s *Store) MUCAffiliations(ctx context.Context, service, name string) ([]storage.MUCAffiliation, error) {
	rows, err := s.reader().query(ctx, `SELECT jid, affiliation, nick, reason FROM muc_affiliations
		WHERE service = ? AND room = ? ORDER BY jid`, service, name)
	affs, err := collect(rows, err, func(r Rows) (storage.MUCAffiliation, error) {
		var a storage.MUCAffiliation
		err := r.Scan(&a.JID, &a.Affiliation, &a.Nick, &a.Reason)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("affiliations of room %s@%s: %w", name, service, err)
	}
	return affs, nil
}

// SetMUCAffiliations implements storage.MUC, in one write transaction
// that holds the room's row first (FOR KEY SHARE on PostgreSQL), so that
// the room is not deleted under it. Every change is checked before
// anything is written.
func (s *Store) SetMUCAffiliations(ctx context.Context, service, name string, changes []storage.MUCAffiliation) error {
	err := func() error {
		for _, a := range changes {
			switch a.Affiliation {
			case "owner", "admin", "member", "outcast", "none":
			default:
				return fmt.Errorf("affiliation %q of %s: not owner, admin, member, outcast or none", a.Affiliation, a.JID)
			}
		}
		return s.write(ctx, func(c conn) error {
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM muc_rooms WHERE service = ? AND name = ? `+s.d.Lock(LockShare),
				service, name).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return storage.ErrNotFound
			}
			if err != nil {
				return err
			}
			for _, a := range changes {
				if a.Affiliation == "none" {
					_, err = c.exec(ctx, `DELETE FROM muc_affiliations WHERE service = ? AND room = ? AND jid = ?`,
						service, name, a.JID)
				} else {
					_, err = c.exec(ctx, `INSERT INTO muc_affiliations (service, room, jid, affiliation, nick, reason)
						VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, room, jid) DO UPDATE SET
						affiliation = excluded.affiliation, nick = excluded.nick, reason = excluded.reason`,
						service, name, a.JID, a.Affiliation, a.Nick, a.Reason)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}()
	if err != nil {
		return fmt.Errorf("set affiliations of room %s@%s: %w", name, service, err)
	}
	return nil
}

// AppendMUCArchive implements storage.MUC (see appendArchived).
func (s *Store) AppendMUCArchive(ctx context.Context, entries []storage.MUCArchiveEntry) error {
	err := appendArchived(ctx, s, mucArchive, entries,
		func(args []any, e storage.MUCArchiveEntry) []any {
			return append(args, e.ID, e.Service, e.Room, e.With, e.WithResource, stanzaBytes(e.Stanza))
		},
		func(e storage.MUCArchiveEntry) (string, string) { return e.Service, e.Room })
	if err != nil {
		return fmt.Errorf("append %d messages to room archives: %w", len(entries), err)
	}
	return nil
}

// QueryMUCArchive implements storage.MUC (see queryArchived). A room
// that does not exist has an empty archive.
func (s *Store) QueryMUCArchive(ctx context.Context, service, name string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	page, err := queryArchived(ctx, s, mucArchive, service, name, q)
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("query archive of room %s@%s: %w", name, service, err)
	}
	return page, nil
}

// ReplaceMUCArchived implements storage.MUC.
func (s *Store) ReplaceMUCArchived(ctx context.Context, service, name string, id int64, st []byte) error {
	n, err := s.writer().exec(ctx, `UPDATE muc_archive SET stanza = ? WHERE service = ? AND room = ? AND id = ?`,
		stanzaBytes(st), service, name, id)
	switch {
	case err != nil:
		return fmt.Errorf("replace message %d of room %s@%s: %w", id, name, service, err)
	case n == 0:
		return fmt.Errorf("replace message %d of room %s@%s: %w", id, name, service, storage.ErrNotFound)
	}
	return nil
}

// PurgeMUCArchive implements storage.MUC (see purgeArchived).
func (s *Store) PurgeMUCArchive(ctx context.Context, service string, before time.Time) (int64, error) {
	n, err := purgeArchived(ctx, s, mucArchive, service, before)
	if err != nil {
		return n, fmt.Errorf("purge room archives of %s before %v: %w", service, before, err)
	}
	return n, nil
}
