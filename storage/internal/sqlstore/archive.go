package sqlstore

// The archive aggregate (storage.Archive): each account's message archive
// (XEP-0313), written in batches by the archiver's writer and read a page
// at a time by its index on (host, username, id) or (host, username,
// with_jid, id).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

func init() {
	onDeleteAccount("archive", `DELETE FROM archive WHERE host = ? AND username = ?`)
}

// archiveTable is a table of archived messages: the accounts' archives
// (archive) or the rooms' (muc_archive, muc.go). Each has the archive ID
// as its primary key, two columns naming the archive's owner (host and
// username, service and room), with_jid, with_resource and stanza, and
// indexes on (owner, id) and (owner, with_jid, id); appends, queries and
// purges are written here once for both.
type archiveTable struct {
	name    string    // the table
	owner   [2]string // the owner's columns
	columns []string  // what an INSERT writes, in the order of its arguments
	// selected is what a page reads: id, with_jid, with_resource,
	// direction and stanza, in that order.
	selected string
	// inserts are the INSERTs of appendChunks, by row count; insertOne
	// inserts one row only if its owner exists (the owner's arguments
	// after the row's), holding the owner's row (%s: the dialect's
	// LockShare clause) so that it is not deleted before the insert's
	// own foreign key check.
	inserts   map[int]string
	insertOne string
}

// newArchiveTable returns table's archiveTable; ownerExists is the
// condition that the owner exists, on the owner's two arguments.
func newArchiveTable(table string, owner [2]string, columns []string, selected, ownerExists string) *archiveTable {
	t := &archiveTable{name: table, owner: owner, columns: columns, selected: selected, inserts: make(map[int]string, len(appendChunks))}
	cols := strings.Join(columns, ", ")
	row := "(?" + strings.Repeat(", ?", len(columns)-1) + ")"
	for _, n := range appendChunks {
		var q strings.Builder
		q.WriteString(`INSERT INTO ` + table + ` (` + cols + `) VALUES `)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(row)
		}
		q.WriteString(` ON CONFLICT DO NOTHING`)
		t.inserts[n] = q.String()
	}
	t.insertOne = `INSERT INTO ` + table + ` (` + cols + `) SELECT ` + row[1:len(row)-1] +
		` WHERE EXISTS (` + ownerExists + ` %s) ON CONFLICT DO NOTHING`
	return t
}

// accountArchive is the accounts' archives.
var accountArchive = newArchiveTable("archive", [2]string{"host", "username"},
	[]string{"id", "host", "username", "with_jid", "with_resource", "direction", "stanza"},
	`id, with_jid, with_resource, direction, stanza`,
	`SELECT 1 FROM accounts WHERE host = ? AND username = ?`)

// appendChunks are the row counts of the INSERTs a batch is cut into,
// biggest first (at most 7 parameters a row, well within SQLite's limit
// of 32766): the powers of two, so that past its 256-row statements a
// batch takes at most one statement of each size, and every shape is
// prepared once and reused (SQLite's through SQLDB's cache, PostgreSQL's
// by pgx). A statement per row would cost about three times the
// allocations of a 16-row batch.
var appendChunks = []int{256, 128, 64, 32, 16, 8, 4, 2, 1}

// purgeChunk is the most rows one DELETE of a purge removes, so that
// no transaction holds the writer for long.
const purgeChunk = 5000

// AppendArchive implements storage.Archive (see appendArchived).
func (s *Store) AppendArchive(ctx context.Context, entries []storage.ArchiveEntry) error {
	err := appendArchived(ctx, s, accountArchive, entries,
		func(args []any, e storage.ArchiveEntry) []any {
			return append(args, e.ID, e.Host, e.Username, e.With, e.WithResource, int(e.Direction), stanzaBytes(e.Stanza))
		},
		func(e storage.ArchiveEntry) (string, string) { return e.Host, e.Username })
	if err != nil {
		return fmt.Errorf("append %d archived messages: %w", len(entries), err)
	}
	return nil
}

// appendArchived appends entries to t: with multi-row INSERTs in one
// transaction; if one of their owners does not exist (a message routed
// to an unknown local account, or one removed since), the batch is
// inserted again row by row, each row only if its owner exists. rowArgs
// appends an entry's arguments (t.columns), owner returns its owner.
func appendArchived[E any](ctx context.Context, s *Store, t *archiveTable, entries []E,
	rowArgs func(args []any, e E) []any, owner func(e E) (string, string)) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.write(ctx, func(c conn) error {
		// The arguments of the biggest chunk, reused for the others.
		args := make([]any, 0, len(t.columns)*min(len(entries), appendChunks[0]))
		rest := entries
		for _, n := range appendChunks {
			for len(rest) >= n {
				args = args[:0]
				for _, e := range rest[:n] {
					args = rowArgs(args, e)
				}
				if _, err := c.exec(ctx, t.inserts[n], args...); err != nil {
					return err
				}
				rest = rest[n:]
			}
		}
		return nil
	})
	if err != nil && s.d.IsForeignKey(err) && s.tx == nil {
		insertOne := fmt.Sprintf(t.insertOne, s.d.Lock(LockShare))
		err = s.write(ctx, func(c conn) error {
			args := make([]any, 0, len(t.columns)+2)
			for _, e := range entries {
				a, b := owner(e)
				args = append(rowArgs(args[:0], e), a, b)
				if _, err := c.exec(ctx, insertOne, args...); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return err
}

func stanzaBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// QueryArchive implements storage.Archive (see queryArchived).
func (s *Store) QueryArchive(ctx context.Context, host, username string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	page, err := queryArchived(ctx, s, accountArchive, host, username, q)
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("query archive of %s@%s: %w", username, host, err)
	}
	return page, nil
}

// queryArchived returns a page of the archive of owner (a, b) in t, in
// one read transaction: the check that AfterID and BeforeID exist, the
// page (one more row than Max, to tell whether the page is the last),
// and the bounded count.
func queryArchived(ctx context.Context, s *Store, t *archiveTable, a, b string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	page := storage.ArchivePage{Count: -1}
	err := s.read(ctx, func(c conn) error {
		for _, id := range []int64{q.AfterID, q.BeforeID} {
			if id == 0 {
				continue
			}
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM `+t.name+` WHERE id = ? AND `+t.owner[0]+` = ? AND `+t.owner[1]+` = ?`,
				id, a, b).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return storage.ErrNotFound
			}
			if err != nil {
				return err
			}
		}
		where, args := archiveWhere(t, a, b, q)
		sel := where
		if q.AfterID != 0 {
			sel += ` AND id > ?`
			args = append(args, q.AfterID)
		}
		if q.BeforeID != 0 {
			sel += ` AND id < ?`
			args = append(args, q.BeforeID)
		}
		order := ` ORDER BY id`
		if q.Last {
			order = ` ORDER BY id DESC`
		}
		query := `SELECT ` + t.selected + ` FROM ` + t.name + ` WHERE ` + sel + order
		if q.Max > 0 {
			query += ` LIMIT ?`
			args = append(args, q.Max+1)
		}
		rows, err := c.query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m   storage.ArchivedMessage
				dir int
			)
			if err := rows.Scan(&m.ID, &m.With, &m.WithResource, &dir, &m.Stanza); err != nil {
				return err
			}
			m.Direction = storage.Direction(dir)
			page.Messages = append(page.Messages, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		page.Complete = q.Max <= 0 || len(page.Messages) <= q.Max
		if !page.Complete {
			page.Messages = page.Messages[:q.Max]
		}
		if q.Last {
			for i, j := 0, len(page.Messages)-1; i < j; i, j = i+1, j-1 {
				page.Messages[i], page.Messages[j] = page.Messages[j], page.Messages[i]
			}
		}
		if q.CountLimit > 0 {
			cwhere, cargs := archiveWhere(t, a, b, q)
			var n int
			err := c.queryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+t.name+` WHERE `+cwhere+` LIMIT ?) AS selection`,
				append(cargs, q.CountLimit+1)...).Scan(&n)
			if err != nil {
				return err
			}
			if n <= q.CountLimit {
				page.Count = n
			}
		}
		return nil
	})
	if err != nil {
		return storage.ArchivePage{}, err
	}
	return page, nil
}

// archiveWhere returns the conditions of q but its paging (AfterID,
// BeforeID, Max) on owner (a, b)'s archive in t, and their arguments.
func archiveWhere(t *archiveTable, a, b string, q storage.ArchiveQuery) (string, []any) {
	var w strings.Builder
	w.WriteString(t.owner[0] + ` = ? AND ` + t.owner[1] + ` = ?`)
	args := []any{a, b}
	if q.With != "" {
		w.WriteString(` AND with_jid = ?`)
		args = append(args, q.With)
		if q.WithResource != "" {
			w.WriteString(` AND with_resource = ?`)
			args = append(args, q.WithResource)
		}
	}
	if !q.Start.IsZero() {
		w.WriteString(` AND id >= ?`)
		args = append(args, storage.ArchiveID(q.Start))
	}
	if !q.End.IsZero() {
		// IDs are whole microseconds: the last one at or before End.
		w.WriteString(` AND id < ?`)
		args = append(args, storage.ArchiveID(q.End.Truncate(time.Microsecond))+1)
	}
	if q.IDs != nil {
		if len(q.IDs) == 0 {
			w.WriteString(` AND 1 = 0`)
		} else {
			w.WriteString(` AND id IN (`)
			for i, id := range q.IDs {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteByte('?')
				args = append(args, id)
			}
			w.WriteByte(')')
		}
	}
	return w.String(), args
}

// PurgeArchive implements storage.Archive (see purgeArchived).
func (s *Store) PurgeArchive(ctx context.Context, host string, before time.Time) (int64, error) {
	n, err := purgeArchived(ctx, s, accountArchive, host, before)
	if err != nil {
		return n, fmt.Errorf("purge archive of %s before %v: %w", host, before, err)
	}
	return n, nil
}

// purgeArchived removes the messages of t archived before before whose
// owner's first column (host, service) is a, a chunk at a time in the
// order of the primary key, so that other writers are not held up for
// long; it returns how many it removed.
func purgeArchived(ctx context.Context, s *Store, t *archiveTable, a string, before time.Time) (int64, error) {
	query := `DELETE FROM ` + t.name + ` WHERE id IN (SELECT id FROM ` + t.name + ` WHERE id < ? AND ` + t.owner[0] +
		` = ? ORDER BY id LIMIT ?)`
	var total int64
	for {
		n, err := s.writer().exec(ctx, query, storage.ArchiveID(before), a, purgeChunk)
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}
