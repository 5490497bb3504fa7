// Package sqlstore is the SQL core both storage backends share: every
// aggregate of package storage, one file each, written once against
// database/sql, with a small Dialect for what SQLite and PostgreSQL do
// differently (parameter markers, time and list encoding, error mapping,
// row locks). storage/sqlite and storage/postgres open the database and
// supply the dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// LockMode is how strongly a transaction holds an account's row.
type LockMode int

const (
	// LockShare keeps the account from being deleted (PostgreSQL FOR KEY
	// SHARE); holders do not wait for each other.
	LockShare LockMode = iota
	// LockWrite serialises the account's writers (FOR NO KEY UPDATE).
	LockWrite
	// LockExclusive excludes every other holder (FOR UPDATE).
	LockExclusive
)

// Dialect is what differs between the SQL databases the core runs on.
type Dialect interface {
	// Name names the dialect's migrations (migrations/<aggregate>/<name>).
	Name() string
	// Numbered reports whether parameters are written $1, $2, … instead
	// of ?. The core writes ?; it rewrites them once per statement.
	Numbered() bool
	// Lock returns the clause after a SELECT that locks the rows it reads
	// until the transaction ends; "" where a write transaction already
	// excludes every other writer (SQLite's BEGIN IMMEDIATE).
	Lock(m LockMode) string
	// Time returns t as stored, truncated to unit (time.Second or
	// time.Millisecond); ScanTime a scanner of such a column into dst, in
	// UTC.
	Time(t time.Time, unit time.Duration) any
	ScanTime(dst *time.Time, unit time.Duration) sql.Scanner
	// Strings returns a list of strings as stored in one column (roster
	// groups); StringsJSON the expression that reads such a column back
	// as a JSON array.
	Strings(v []string) (any, error)
	StringsJSON(column string) string
	// IsConflict reports a unique violation, IsForeignKey a foreign key
	// violation (a row for an account that does not exist).
	IsConflict(err error) bool
	IsForeignKey(err error) bool
	// LockMigrations serialises concurrent starters for the rest of tx.
	LockMigrations(ctx context.Context, tx Querier) error
}

// core is what a Store and the transactions it begins share.
type core struct {
	d     Dialect
	r, w  DB       // readers and the writer; one pool where they are the same
	binds sync.Map // statement as written → as the dialect wants it

	rosterColumns string // what scanRosterItem reads, in this dialect
}

// Store implements every aggregate of storage.Store on one database; it
// does not close it. Outside a transaction (tx nil), reads go to the
// readers and writes to the writer, each write in a transaction of its own
// where it takes more than one statement.
type Store struct {
	*core
	tx Tx
}

// New returns a Store on readers r and writer w (the same pool for
// PostgreSQL; SQLite's one writer connection and its readers).
func New(d Dialect, r, w DB) *Store {
	c := &core{d: d, r: r, w: w}
	c.rosterColumns = `contact, name, ` + d.StringsJSON("groups") + `, subscription, ask, approved, version`
	return &Store{core: c}
}

// bind rewrites the ? of query into the dialect's parameter markers. The
// core's statements have no ? in literals or identifiers.
func (c *core) bind(query string) string {
	if !c.d.Numbered() {
		return query
	}
	if q, ok := c.binds.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	c.binds.Store(query, b.String())
	return b.String()
}

// conn runs the core's statements on a pool or a transaction, in the
// dialect's parameter markers.
type conn struct {
	c *core
	q Querier
}

func (c conn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return c.q.Exec(ctx, c.c.bind(query), args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (Rows, error) {
	return c.q.Query(ctx, c.c.bind(query), args...)
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) Row {
	return c.q.QueryRow(ctx, c.c.bind(query), args...)
}

// reader returns where single reading statements go.
func (s *Store) reader() conn {
	if s.tx != nil {
		return conn{s.core, s.tx}
	}
	return conn{s.core, s.r}
}

// writer returns where single writing statements go.
func (s *Store) writer() conn {
	if s.tx != nil {
		return conn{s.core, s.tx}
	}
	return conn{s.core, s.w}
}

// write runs f in a write transaction (or the transaction s is in),
// committing if it returns nil.
func (s *Store) write(ctx context.Context, f func(c conn) error) error {
	if s.tx != nil {
		return f(conn{s.core, s.tx})
	}
	tx, err := s.w.Begin(ctx, false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(conn{s.core, tx}); err != nil {
		return err
	}
	return tx.Commit()
}

// read runs f in a read transaction whose statements see one snapshot (or
// in the transaction s is in).
func (s *Store) read(ctx context.Context, f func(c conn) error) error {
	if s.tx != nil {
		return f(conn{s.core, s.tx})
	}
	tx, err := s.r.Begin(ctx, true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return f(conn{s.core, tx})
}

// lockAccount locks an account's row in mode for the rest of the
// transaction c is in; ErrNotFound if there is no such account. Write
// transactions that lock more than one row take this one first, so that
// they and DeleteAccount lock in the same order and cannot deadlock.
func lockAccount(ctx context.Context, c conn, host, username string, mode LockMode) error {
	var one int
	err := c.queryRow(ctx, `SELECT 1 FROM accounts WHERE host = ? AND username = ? `+c.c.d.Lock(mode), host, username).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// notFoundIfNoAccount maps a foreign key violation (a row for an account
// that does not exist) to ErrNotFound.
func (c *core) notFoundIfNoAccount(err error) error {
	if err != nil && c.d.IsForeignKey(err) {
		return storage.ErrNotFound
	}
	return err
}

// collect scans every row with scan and closes rows; err is the query's.
func collect[T any](rows Rows, err error, scan func(Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// collectStrings scans rows of one text column and closes them.
func collectStrings(rows Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
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
