package storage

import (
	"context"
	"time"
)

// Direction says whether an archived message was received by the account
// or sent by it (XEP-0313 §3: each archive is seen from its account).
type Direction uint8

// The two directions.
const (
	Incoming Direction = iota
	Outgoing
)

// ArchivedMessage is one message in an account's archive (XEP-0313).
type ArchivedMessage struct {
	// ID identifies the message within the server; the archiver assigns
	// it, and its decimal form is the XEP-0359 stanza-id. IDs are Unix
	// microseconds of the time the message was archived, raised where
	// needed to be unique and increasing: so ID order is time order, and
	// Time returns when the message was archived.
	ID int64
	// With is the bare JID of the other party (the sender of an incoming
	// message, the recipient of an outgoing one); WithResource its
	// resourcepart, "" for none.
	With, WithResource string
	Direction          Direction
	// Stanza is the message as it was delivered (or sent).
	Stanza []byte
}

// Time returns when the message was archived.
func (m ArchivedMessage) Time() time.Time { return time.UnixMicro(m.ID).UTC() }

// ArchiveID returns the smallest ID of a message archived at t or later.
func ArchiveID(t time.Time) int64 { return t.UnixMicro() }

// ArchiveEntry is one message to append to the archive of the account
// Host, Username.
type ArchiveEntry struct {
	Host, Username string
	ArchivedMessage
}

// ArchiveQuery selects messages of one account's archive. Zero fields do
// not filter.
type ArchiveQuery struct {
	// With keeps the messages exchanged with this bare JID; with
	// WithResource too, only those with that full JID.
	With, WithResource string
	// Start and End keep the messages archived at or after Start, at or
	// before End.
	Start, End time.Time
	// AfterID and BeforeID keep the messages with a greater (smaller) ID.
	// Each must be the ID of a message of the account's archive, else the
	// query fails with ErrNotFound (XEP-0059 §2.6, XEP-0313 §6.1.2).
	AfterID, BeforeID int64
	// IDs keeps only the messages with these IDs.
	IDs []int64
	// Max is the most messages returned (a page); <= 0 means no limit.
	Max int
	// Last takes the page at the end of the selection (the newest
	// messages) instead of the beginning: RSM's <before/> (XEP-0059
	// §2.5).
	Last bool
	// CountLimit > 0 asks for the number of messages the query selects
	// without AfterID, BeforeID and Max (RSM <count/>), counted only up
	// to CountLimit: a bigger selection is reported as -1 (not counted),
	// so that counting stays cheap however big the archive grows.
	CountLimit int
}

// ArchivePage is the answer to a query.
type ArchivePage struct {
	// Messages are in ID order (oldest first), also for a Last query.
	Messages []ArchivedMessage
	// Complete reports that the selection has no message beyond this
	// page in the direction of paging: none after it, or for a Last
	// query none before it.
	Complete bool
	// Count is the size of the selection (ArchiveQuery.CountLimit); -1
	// when not counted.
	Count int
}

// Archive stores each account's message archive (XEP-0313).
type Archive interface {
	// AppendArchive adds messages, in one transaction. An entry for an
	// account that does not exist is skipped, as is one whose ID is
	// already stored (so that a retried batch adds nothing twice).
	AppendArchive(ctx context.Context, entries []ArchiveEntry) error
	// QueryArchive returns one page of an account's archive.
	QueryArchive(ctx context.Context, host, username string, q ArchiveQuery) (ArchivePage, error)
	// PurgeArchive removes the messages of the accounts of host archived
	// before t, and returns how many it removed.
	PurgeArchive(ctx context.Context, host string, before time.Time) (int64, error)
}
