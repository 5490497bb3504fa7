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
	// DeleteAccount removes an account and everything stored for it;
	// ErrNotFound if there is none.
	DeleteAccount(ctx context.Context, host, username string) error
	// ListAccounts returns the usernames of a host, sorted.
	ListAccounts(ctx context.Context, host string) ([]string, error)
}

// Store is everything a backend provides.
type Store interface {
	Accounts
	// Close releases the backend's connections and files.
	Close() error
}
