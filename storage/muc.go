package storage

import (
	"context"
	"time"
)

// MUCRoom is a persistent room of a multi-user chat service (XEP-0045
// §10.1.3, muc#roomconfig_persistentroom): what survives a restart.
type MUCRoom struct {
	// Service is the service's domain (conference.example.org), Name the
	// room's localpart; together the room's bare JID.
	Service, Name string
	// Config is the room's configuration and subject, encoded by the
	// muc module (opaque bytes to the store).
	Config []byte
	// Created is when the room was created; stores keep it to the
	// second, in UTC.
	Created time.Time
}

// MUCAffiliation is one entry of a room's affiliation lists (XEP-0045
// §5.2): a bare JID (or a domain) and its affiliation.
type MUCAffiliation struct {
	JID string
	// Affiliation is "owner", "admin", "member" or "outcast".
	Affiliation string
	// Nick is the nickname reserved for the JID (§7.12), "" for none.
	Nick string
	// Reason is the reason given when the affiliation was set (§9.1).
	Reason string
}

// MUCArchiveEntry is one message to append to a room's archive.
type MUCArchiveEntry struct {
	Service, Room string
	ArchivedMessage
}

// MUC stores the persistent rooms of multi-user chat services, their
// affiliations and their message archives (XEP-0045, XEP-0313 for rooms).
// A room's affiliations and archive go with it.
type MUC interface {
	// MUCRooms returns a service's persistent rooms, sorted by name
	// (byte-wise).
	MUCRooms(ctx context.Context, service string) ([]MUCRoom, error)
	// MUCRoom returns one room; ErrNotFound if there is none.
	MUCRoom(ctx context.Context, service, name string) (MUCRoom, error)
	// PutMUCRoom creates a room or replaces its configuration (Created
	// is kept from its creation).
	PutMUCRoom(ctx context.Context, room MUCRoom) error
	// DeleteMUCRoom removes a room with its affiliations and archive;
	// no error if there is none.
	DeleteMUCRoom(ctx context.Context, service, name string) error

	// MUCAffiliations returns a room's affiliations, sorted by JID
	// (byte-wise); none for a room that does not exist.
	MUCAffiliations(ctx context.Context, service, name string) ([]MUCAffiliation, error)
	// SetMUCAffiliations applies changes to a room's affiliations in one
	// transaction: each entry replaces that JID's (the last one wins
	// for a JID given twice), and an Affiliation of "none" removes it.
	// ErrNotFound if the room does not exist; an error and nothing
	// changed if an Affiliation is none of the four and "none".
	SetMUCAffiliations(ctx context.Context, service, name string, changes []MUCAffiliation) error

	// AppendMUCArchive adds messages to rooms' archives, in one
	// transaction; an entry for a room that does not exist is skipped,
	// as is one whose ID is already stored.
	AppendMUCArchive(ctx context.Context, entries []MUCArchiveEntry) error
	// QueryMUCArchive returns one page of a room's archive, as
	// Archive.QueryArchive does an account's (AfterID and BeforeID
	// must be IDs of this room's archive); With and WithResource select
	// by the occupant's room JID (the room's bare JID and the nickname,
	// as the messages were sent from). A room's archive stores no
	// direction: every message has Direction Incoming. A room that does
	// not exist has an empty archive.
	QueryMUCArchive(ctx context.Context, service, name string, q ArchiveQuery) (ArchivePage, error)
	// ReplaceMUCArchived replaces the stored stanza of one archived
	// message (a moderated message's tombstone, XEP-0425 §6);
	// ErrNotFound if the room has no message with that ID.
	ReplaceMUCArchived(ctx context.Context, service, name string, id int64, stanza []byte) error
	// PurgeMUCArchive removes the messages of a service's rooms archived
	// before t, and returns how many it removed.
	PurgeMUCArchive(ctx context.Context, service string, before time.Time) (int64, error)
}
