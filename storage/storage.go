// Package storage defines what Starling keeps durably, one interface per
// aggregate, and the sentinel errors every backend returns. Backends live in
// storage/sqlite (the embedded default) and storage/postgres; both must pass
// the shared suite in storage/storagetest.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends translate their driver errors into these, wrapped
// with %w; nothing above the backend inspects driver errors.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrConflict = errors.New("storage: already exists")
	// ErrQuota is returned when a per-account limit is reached.
	ErrQuota = errors.New("storage: quota reached")
)

// Hash names the hash family of a SCRAM credential (RFC 5802, RFC 7677).
type Hash string

// The hash families Starling derives for every password.
const (
	SHA1   Hash = "SHA-1"
	SHA256 Hash = "SHA-256"
	SHA512 Hash = "SHA-512"
)

// Hashes lists every family, in the order mechanisms are advertised
// (strongest first).
var Hashes = []Hash{SHA512, SHA256, SHA1}

// SCRAMKeys is one hash family's verifier (RFC 5802 §3). The password itself
// is never stored: StoredKey and ServerKey let the server check a SCRAM
// proof (and a PLAIN password, by re-deriving them) without being able to
// log in as the user if the database leaks.
type SCRAMKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Account is one user account of one virtual host.
type Account struct {
	Host     string // domainpart, already PRECIS-prepared
	Username string // localpart, already PRECIS-prepared
	Keys     map[Hash]SCRAMKeys
	Created  time.Time
	// Disabled: an administrator disabled the account (XEP-0133 §4.3);
	// it is kept, but may not log in until enabled again.
	Disabled bool
}

// Accounts stores user accounts and their credentials.
type Accounts interface {
	// CreateAccount adds a new account; ErrConflict if it exists.
	CreateAccount(ctx context.Context, a Account) error
	// Account returns one account; ErrNotFound if there is none.
	Account(ctx context.Context, host, username string) (Account, error)
	// SetKeys replaces an account's credentials; ErrNotFound if there is no
	// such account.
	SetKeys(ctx context.Context, host, username string, keys map[Hash]SCRAMKeys) error
	// SetDisabled disables an account or enables it again; ErrNotFound
	// if there is no such account.
	SetDisabled(ctx context.Context, host, username string, disabled bool) error
	// DeleteAccount removes an account and everything stored for it;
	// ErrNotFound if there is none.
	DeleteAccount(ctx context.Context, host, username string) error
	// ListAccounts returns the usernames of a host, sorted.
	ListAccounts(ctx context.Context, host string) ([]string, error)
	// ListDisabled returns the usernames of a host's disabled accounts,
	// sorted.
	ListDisabled(ctx context.Context, host string) ([]string, error)
}

// Subscription is a roster item's subscription state (RFC 6121 §2.1.2.5).
type Subscription string

// The four subscription states. Pending requests are kept beside them:
// RosterItem.Ask for the outbound one, SubscriptionRequest for the inbound.
const (
	SubNone Subscription = "none"
	SubTo   Subscription = "to"   // the user receives the contact's presence
	SubFrom Subscription = "from" // the contact receives the user's presence
	SubBoth Subscription = "both"
)

// RosterItem is one contact in an account's roster (RFC 6121 §2.1.2).
// Backends return Groups sorted byte-wise, without duplicates (nil for none).
type RosterItem struct {
	Contact      string // the contact's bare JID, prepared
	Name         string // the user's handle for the contact; "" for none
	Groups       []string
	Subscription Subscription
	Ask          bool // the user asked to subscribe, no answer yet ("pending out", RFC 6121 §3.1.2)
	Approved     bool // subscription pre-approved by the user (RFC 6121 §3.4)
	// Version is the roster version at which this item last changed
	// (XEP-0237); set by the backend on PutRosterItem.
	Version int64
}

// SubscriptionRequest is an inbound subscription request waiting for the
// user's answer ("pending in", RFC 6121 §3.1.3). It is kept apart from the
// roster: a request from someone who is not a contact adds no roster item,
// and the stored stanza is delivered again at every login until answered.
type SubscriptionRequest struct {
	Contact string // the requester's bare JID
	Stanza  []byte // the <presence type='subscribe'/> as received
}

// Roster stores each account's roster with a version counter (XEP-0237:
// every change increments it) and the pending inbound requests.
type Roster interface {
	// RosterItems returns an account's items, sorted by contact, and the
	// roster's current version (0 for a roster that never changed).
	RosterItems(ctx context.Context, host, username string) ([]RosterItem, int64, error)
	// RosterItem returns one item; ErrNotFound if the contact is not in
	// the roster.
	RosterItem(ctx context.Context, host, username, contact string) (RosterItem, error)
	// PutRosterItem adds or replaces an item, increments the roster
	// version and returns it (also stored as the item's Version).
	PutRosterItem(ctx context.Context, host, username string, item RosterItem) (int64, error)
	// DeleteRosterItem removes an item, increments the roster version and
	// returns it; ErrNotFound if the contact is not in the roster.
	DeleteRosterItem(ctx context.Context, host, username, contact string) (int64, error)
	// RosterChanges returns what changed after version since, for an
	// incremental answer (XEP-0237 §4): the items put since then and the
	// contacts removed since then, sorted by the version of the change,
	// and the current version. ok is false when since is not a version of
	// this roster (then the whole roster must be sent).
	RosterChanges(ctx context.Context, host, username string, since int64) (changed []RosterItem, removed []string, current int64, ok bool, err error)
	// RosterCount returns the number of items in an account's roster.
	RosterCount(ctx context.Context, host, username string) (int, error)

	// PutSubscriptionRequest stores an inbound request, replacing an
	// earlier one from the same contact.
	PutSubscriptionRequest(ctx context.Context, host, username string, req SubscriptionRequest) error
	// SubscriptionRequests returns the pending requests, oldest first.
	SubscriptionRequests(ctx context.Context, host, username string) ([]SubscriptionRequest, error)
	// DeleteSubscriptionRequest removes a request; no error if there is
	// none.
	DeleteSubscriptionRequest(ctx context.Context, host, username, contact string) error
}

// OfflineMessage is a message stored for an account that had no available
// resource (XEP-0160).
type OfflineMessage struct {
	ID     int64     // increasing per account in storage order
	Stanza []byte    // the message as it would have been delivered
	Stored time.Time // when it was stored (for the XEP-0203 delay stamp)
}

// Offline stores messages for accounts with no available resource.
type Offline interface {
	// StoreOffline appends a message; ErrQuota if the account already has
	// max messages stored (max <= 0: no limit); ErrNotFound if there is
	// no such account.
	StoreOffline(ctx context.Context, host, username string, stanza []byte, stored time.Time, max int) error
	// OfflineMessages returns the stored messages in storage order.
	OfflineMessages(ctx context.Context, host, username string) ([]OfflineMessage, error)
	// DeleteOffline removes the messages with ID <= through (those
	// delivered).
	DeleteOffline(ctx context.Context, host, username string, through int64) error
}

// Blocklist stores the JIDs each account blocks (XEP-0191).
type Blocklist interface {
	// BlockedJIDs returns the account's blocked JIDs, sorted.
	BlockedJIDs(ctx context.Context, host, username string) ([]string, error)
	// Block adds JIDs (already blocked ones are fine).
	Block(ctx context.Context, host, username string, jids []string) error
	// Unblock removes JIDs; with none given, it removes them all.
	Unblock(ctx context.Context, host, username string, jids []string) error
}

// VCardKey is the Documents key of an account's vCard (XEP-0054).
const VCardKey = "vcard"

// PrivateKey is the Documents key of the private XML element {space}local
// (XEP-0049).
func PrivateKey(space, local string) string { return "private {" + space + "} " + local }

// Documents stores small XML documents per account under a key: the
// vCard-temp (VCardKey) and private XML storage (PrivateKey) — opaque
// bytes to the backend.
type Documents interface {
	// Document returns a stored document; ErrNotFound if there is none.
	Document(ctx context.Context, host, username, key string) ([]byte, error)
	// PutDocument stores or replaces a document.
	PutDocument(ctx context.Context, host, username, key string, doc []byte) error
	// DeleteDocument removes a document; no error if there is none.
	DeleteDocument(ctx context.Context, host, username, key string) error
}

// LastActivity records when each account's last session ended and its
// last unavailable presence status (XEP-0012 §4, RFC 6121 §4.3.2).
type LastActivity interface {
	// SetLastActivity records the end of the account's last session.
	SetLastActivity(ctx context.Context, host, username string, at time.Time, status string) error
	// LastActivity returns it; ErrNotFound if never recorded.
	LastActivity(ctx context.Context, host, username string) (at time.Time, status string, err error)
}

// Tx is every aggregate inside one transaction (Store.InTx).
type Tx interface {
	Accounts
	Roster
	Offline
	Blocklist
	Documents
	LastActivity
	PubSub
	// LockAccount holds the account until the transaction ends: another
	// transaction's LockAccount of it waits until then, so that a read,
	// decide, write sequence on the account's data (a subscription
	// change, an offline delivery) is not interleaved with another, even
	// from another server sharing the database. ErrNotFound if there is
	// no such account. Lock several accounts in (host, username) order.
	LockAccount(ctx context.Context, host, username string) error
}

// Store is everything a backend provides. DeleteAccount removes an
// account's data from every aggregate.
type Store interface {
	Accounts
	Archive
	Roster
	Offline
	Blocklist
	Documents
	// DocumentKeys returns the keys of an account's documents that
	// begin with prefix, sorted byte-wise (PrivateKey's "private " for
	// every private XML element: export).
	DocumentKeys(ctx context.Context, host, username, prefix string) ([]string, error)
	LastActivity
	PushRegistrations
	PubSub
	MUC
	Uploads
	// InTx runs f in one transaction, committed if f returns nil and
	// rolled back otherwise (InTx then returns f's error). f runs once;
	// it must use only tx, never the Store, whose writes may wait for
	// tx's end (SQLite has one writer).
	InTx(ctx context.Context, f func(tx Tx) error) error
	// Close releases the backend's connections and files.
	Close() error
}
