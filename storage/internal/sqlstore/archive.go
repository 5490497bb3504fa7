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

// appendChunks are the row counts of the INSERTs a batch is cut into,
// biggest first (7 parameters a row, well within SQLite's limit of
// 32766): the powers of two, so that past its 256-row statements a batch
// takes at most one statement of each size, and every shape is prepared once
// and reused (SQLite's through SQLDB's cache, PostgreSQL's by pgx). A
// statement per row would cost about three times the allocations of a
// 16-row batch.
var appendChunks = []int{256, 128, 64, 32, 16, 8, 4, 2, 1}

// appendQueries are the INSERTs of appendChunks, by row count.
var appendQueries = func() map[int]string {
	m := make(map[int]string, len(appendChunks))
	for _, n := range appendChunks {
		var q strings.Builder
		q.WriteString(`INSERT INTO archive (id, host, username, with_jid, with_resource, direction, stanza) VALUES `)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		}
		q.WriteString(` ON CONFLICT DO NOTHING`)
		m[n] = q.String()
	}
	return m
}()

// purgeChunk is the most rows one DELETE of PurgeArchive removes, so that
// no transaction holds the writer for long.
const purgeChunk = 5000

// AppendArchive implements storage.Archive. A batch is inserted with
// multi-row INSERTs in one transaction; if one of its accounts does not
// exist (a message routed to an unknown local account, or one removed
// since), the batch is inserted again row by row, each row only if its
// account exists.
func (s *Store) AppendArchive(ctx context.Context, entries []storage.ArchiveEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.write(ctx, func(c conn) error {
		// The arguments of the biggest chunk, reused for the others.
		args := make([]any, 0, 7*min(len(entries), appendChunks[0]))
		rest := entries
		for _, n := range appendChunks {
			for len(rest) >= n {
				if err := appendRows(ctx, c, rest[:n], args); err != nil {
					return err
				}
				rest = rest[n:]
			}
		}
		return nil
	})
	if err != nil && s.d.IsForeignKey(err) && s.tx == nil {
		err = s.write(ctx, func(c conn) error {
			for _, e := range entries {
				if _, err := c.exec(ctx,
					`INSERT INTO archive (id, host, username, with_jid, with_resource, direction, stanza)
					SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE host = ? AND username = ?)
					ON CONFLICT DO NOTHING`,
					e.ID, e.Host, e.Username, e.With, e.WithResource, int(e.Direction), stanzaBytes(e.Stanza),
					e.Host, e.Username); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("append %d archived messages: %w", len(entries), err)
	}
	return nil
}

func stanzaBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// appendRows inserts rows, as many as one of appendChunks, with one
// statement; args is room for its arguments.
func appendRows(ctx context.Context, c conn, rows []storage.ArchiveEntry, args []any) error {
	args = args[:0]
	for _, e := range rows {
		args = append(args, e.ID, e.Host, e.Username, e.With, e.WithResource, int(e.Direction), stanzaBytes(e.Stanza))
	}
	_, err := c.exec(ctx, appendQueries[len(rows)], args...)
	return err
}

// QueryArchive implements storage.Archive, in one read transaction: the
// check that AfterID and BeforeID exist, the page (one more row than Max,
// to tell whether the page is the last), and the bounded count.
func (s *Store) QueryArchive(ctx context.Context, host, username string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	page := storage.ArchivePage{Count: -1}
	err := s.read(ctx, func(c conn) error {
		for _, id := range []int64{q.AfterID, q.BeforeID} {
			if id == 0 {
				continue
			}
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM archive WHERE id = ? AND host = ? AND username = ?`, id, host, username).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return storage.ErrNotFound
			}
			if err != nil {
				return err
			}
		}
		where, args := archiveWhere(host, username, q)
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
		query := `SELECT id, with_jid, with_resource, direction, stanza FROM archive WHERE ` + sel + order
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
			cwhere, cargs := archiveWhere(host, username, q)
			var n int
			err := c.queryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM archive WHERE `+cwhere+` LIMIT ?) AS selection`,
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
		return storage.ArchivePage{}, fmt.Errorf("query archive of %s@%s: %w", username, host, err)
	}
	return page, nil
}

// archiveWhere returns the conditions of q but its paging (AfterID,
// BeforeID, Max) and their arguments.
func archiveWhere(host, username string, q storage.ArchiveQuery) (string, []any) {
	var b strings.Builder
	b.WriteString(`host = ? AND username = ?`)
	args := []any{host, username}
	if q.With != "" {
		b.WriteString(` AND with_jid = ?`)
		args = append(args, q.With)
		if q.WithResource != "" {
			b.WriteString(` AND with_resource = ?`)
			args = append(args, q.WithResource)
		}
	}
	if !q.Start.IsZero() {
		b.WriteString(` AND id >= ?`)
		args = append(args, storage.ArchiveID(q.Start))
	}
	if !q.End.IsZero() {
		// IDs are whole microseconds: the last one at or before End.
		b.WriteString(` AND id < ?`)
		args = append(args, storage.ArchiveID(q.End.Truncate(time.Microsecond))+1)
	}
	if q.IDs != nil {
		if len(q.IDs) == 0 {
			b.WriteString(` AND 1 = 0`)
		} else {
			b.WriteString(` AND id IN (`)
			for i, id := range q.IDs {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('?')
				args = append(args, id)
			}
			b.WriteByte(')')
		}
	}
	return b.String(), args
}

// PurgeArchive implements storage.Archive, a chunk at a time in the order
// of the primary key, so that other writers are not held up for long.
func (s *Store) PurgeArchive(ctx context.Context, host string, before time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.writer().exec(ctx,
			`DELETE FROM archive WHERE id IN (SELECT id FROM archive WHERE id < ? AND host = ? ORDER BY id LIMIT ?)`,
			storage.ArchiveID(before), host, purgeChunk)
		if err != nil {
			return total, fmt.Errorf("purge archive of %s before %v: %w", host, before, err)
		}
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}
