package storagetest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// archiveBase is the ID (and so the time) of the first message the tests
// archive: 2025-01-02T03:04:05Z.
var archiveBase = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// archiveFill appends n messages to user's archive, one second apart from
// archiveBase (plus a millisecond per letter of user, so that IDs are
// unique in the server), alternating between two contacts and both directions, and
// returns them.
func archiveFill(t *testing.T, s storage.Store, user string, n int) []storage.ArchivedMessage {
	t.Helper()
	var entries []storage.ArchiveEntry
	var msgs []storage.ArchivedMessage
	for i := range n {
		m := storage.ArchivedMessage{
			ID:           storage.ArchiveID(archiveBase.Add(time.Duration(i)*time.Second + time.Duration(len(user))*time.Millisecond)),
			With:         []string{"romeo@example.net", "juliet@example.com"}[i%2],
			WithResource: []string{"orchard", ""}[i%3%2],
			Direction:    storage.Direction(i / 2 % 2),
			Stanza:       fmt.Appendf(nil, "<message type='chat'><body>%s %d</body></message>", user, i),
		}
		msgs = append(msgs, m)
		entries = append(entries, storage.ArchiveEntry{Host: host, Username: user, ArchivedMessage: m})
	}
	if err := s.AppendArchive(t.Context(), entries); err != nil {
		t.Fatalf("AppendArchive: %v", err)
	}
	return msgs
}

// checkPage runs q on user's archive and compares the page with want
// (indexes into all), complete and count.
func checkPage(t *testing.T, s storage.Store, user string, q storage.ArchiveQuery, all []storage.ArchivedMessage, want []int, complete bool, count int) {
	t.Helper()
	page, err := s.QueryArchive(t.Context(), host, user, q)
	if err != nil {
		t.Fatalf("QueryArchive(%+v): %v", q, err)
	}
	comparePage(t, "QueryArchive", q, page, all, want, complete, count)
}

// comparePage compares the page query q returned with want (indexes into
// all), complete and count.
func comparePage(t *testing.T, query string, q storage.ArchiveQuery, page storage.ArchivePage, all []storage.ArchivedMessage, want []int, complete bool, count int) {
	t.Helper()
	var got []int
	for _, m := range page.Messages {
		i := slices.IndexFunc(all, func(a storage.ArchivedMessage) bool { return a.ID == m.ID })
		if i < 0 {
			t.Fatalf("%s(%+v) returned unknown ID %d", query, q, m.ID)
		}
		a := all[i]
		if m.With != a.With || m.WithResource != a.WithResource || m.Direction != a.Direction || string(m.Stanza) != string(a.Stanza) {
			t.Errorf("message %d = %+v, want %+v", i, m, a)
		}
		if !m.Time().Equal(a.Time()) {
			t.Errorf("message %d at %v, want %v", i, m.Time(), a.Time())
		}
		got = append(got, i)
	}
	if !slices.Equal(got, want) || page.Complete != complete || page.Count != count {
		t.Errorf("%s(%+v) = %v complete=%v count=%d; want %v complete=%v count=%d",
			query, q, got, page.Complete, page.Count, want, complete, count)
	}
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func testArchive(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	all := archiveFill(t, s, "alice", 10)
	// Bob's archive is apart, with IDs of its own.
	bob := storage.ArchivedMessage{ID: all[9].ID + 1, With: "alice@example.org", Stanza: []byte("<message/>")}
	if err := s.AppendArchive(ctx, []storage.ArchiveEntry{{Host: host, Username: "bob", ArchivedMessage: bob}}); err != nil {
		t.Fatalf("AppendArchive(bob): %v", err)
	}
	checkPage(t, s, "bob", storage.ArchiveQuery{}, []storage.ArchivedMessage{bob}, []int{0}, true, -1)

	checkPage(t, s, "alice", storage.ArchiveQuery{}, all, span(0, 10), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{CountLimit: 100}, all, span(0, 10), true, 10)
	checkPage(t, s, "alice", storage.ArchiveQuery{CountLimit: 9}, all, span(0, 10), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{CountLimit: 10}, all, span(0, 10), true, 10)
	// Forward paging.
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, CountLimit: 100}, all, span(0, 4), false, 10)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, AfterID: all[3].ID, CountLimit: 100}, all, span(4, 8), false, 10)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, AfterID: all[7].ID}, all, span(8, 10), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 2, AfterID: all[7].ID}, all, span(8, 10), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, AfterID: all[9].ID}, all, nil, true, -1)
	// Backward paging: the last page, then the ones before.
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, Last: true}, all, span(6, 10), false, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[6].ID}, all, span(2, 6), false, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[2].ID}, all, span(0, 2), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Max: 4, Last: true, BeforeID: all[0].ID}, all, nil, true, -1)
	// Both bounds.
	checkPage(t, s, "alice", storage.ArchiveQuery{AfterID: all[2].ID, BeforeID: all[6].ID}, all, span(3, 6), true, -1)
	// With a contact, a full JID, times.
	checkPage(t, s, "alice", storage.ArchiveQuery{With: "romeo@example.net", CountLimit: 100}, all, []int{0, 2, 4, 6, 8}, true, 5)
	checkPage(t, s, "alice", storage.ArchiveQuery{With: "romeo@example.net", Max: 2, Last: true}, all, []int{6, 8}, false, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{With: "romeo@example.net", WithResource: "orchard"}, all, []int{0, 2, 6, 8}, true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{With: "nobody@example.net"}, all, nil, true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Start: all[3].Time(), End: all[5].Time()}, all, span(3, 6), true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{Start: all[3].Time().Add(time.Millisecond), End: all[5].Time().Add(-time.Nanosecond), CountLimit: 100}, all, []int{4}, true, 1)
	checkPage(t, s, "alice", storage.ArchiveQuery{End: all[1].Time()}, all, span(0, 2), true, -1)
	// Chosen IDs (XEP-0313 §4.1.4's ids); another account's are not there.
	checkPage(t, s, "alice", storage.ArchiveQuery{IDs: []int64{all[7].ID, all[1].ID, bob.ID, 42}}, all, []int{1, 7}, true, -1)
	checkPage(t, s, "alice", storage.ArchiveQuery{IDs: []int64{}}, all, nil, true, -1)

	// An unknown ID, or another account's, is not a place to page from.
	for _, q := range []storage.ArchiveQuery{{AfterID: 42}, {BeforeID: 42, Last: true}, {AfterID: bob.ID}, {BeforeID: all[0].ID - 1}} {
		if _, err := s.QueryArchive(ctx, host, "alice", q); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryArchive(%+v): %v, want ErrNotFound", q, err)
		}
	}

	// A batch with an unknown account's message and an ID already stored
	// adds the rest.
	late := storage.ArchivedMessage{ID: all[9].ID + 100, With: "romeo@example.net", Direction: storage.Outgoing, Stanza: []byte("<message>late</message>")}
	err := s.AppendArchive(ctx, []storage.ArchiveEntry{
		{Host: host, Username: "nobody", ArchivedMessage: storage.ArchivedMessage{ID: all[9].ID + 99, Stanza: []byte("<message/>")}},
		{Host: host, Username: "alice", ArchivedMessage: all[9]},
		{Host: host, Username: "alice", ArchivedMessage: late},
	})
	if err != nil {
		t.Fatalf("AppendArchive with an unknown account: %v", err)
	}
	all = append(all, late)
	checkPage(t, s, "alice", storage.ArchiveQuery{AfterID: all[8].ID}, all, []int{9, 10}, true, -1)

	// Retention: only this host's messages before the time go.
	n, err := s.PurgeArchive(ctx, "example.net", all[5].Time())
	if err != nil || n != 0 {
		t.Errorf("PurgeArchive(example.net) = %d, %v; want 0", n, err)
	}
	n, err = s.PurgeArchive(ctx, host, all[5].Time())
	if err != nil || n != 5 {
		t.Errorf("PurgeArchive = %d, %v; want 5", n, err)
	}
	checkPage(t, s, "alice", storage.ArchiveQuery{}, all, span(5, 11), true, -1)
	checkPage(t, s, "bob", storage.ArchiveQuery{}, []storage.ArchivedMessage{bob}, []int{0}, true, -1)
}

// testArchiveDelete checks that an account's archive goes with it.
func testArchiveDelete(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	archiveFill(t, s, "alice", 3)
	bobs := archiveFill(t, s, "bob", 2)
	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	create(t, s, account(host, "alice", 3))
	checkPage(t, s, "alice", storage.ArchiveQuery{CountLimit: 10}, nil, nil, true, 0)
	checkPage(t, s, "bob", storage.ArchiveQuery{}, bobs, []int{0, 1}, true, -1)
}

// EnvArchiveMillion names the environment variable that turns on the
// archive benchmark with 1,000,000 messages (its fill takes a while):
// STARLING_BENCH_ARCHIVE_1M=1.
const EnvArchiveMillion = "STARLING_BENCH_ARCHIVE_1M"

// BenchArchive measures a page of 50 archived messages (XEP-0313 queries)
// in an archive of 1,000 messages and, with STARLING_BENCH_ARCHIVE_1M=1,
// of 1,000,000: the newest page (RSM <before/>), a page after an ID in
// the middle, and the newest page with one contact. The indexes keep the
// second figure close to the first. settle, if not nil, runs after the
// fill: a backend's statistics as its maintenance would have them by
// then (PostgreSQL's autovacuum analyzes a table that grew by 10%).
func BenchArchive(b *testing.B, open func() (storage.Store, error), settle func(b *testing.B)) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1k", 1_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			if size.n > 1_000 && os.Getenv(EnvArchiveMillion) != "1" {
				b.Skip(EnvArchiveMillion + "=1 runs it (the fill takes a minute)")
			}
			s, err := open()
			if err != nil {
				b.Fatalf("open: %v", err)
			}
			defer s.Close()
			ctx := b.Context()
			user := "user" + size.name
			if err := s.CreateAccount(ctx, account(host, user, 1)); err != nil {
				b.Fatal(err)
			}
			// Another account's messages beside them, as on a real server.
			if err := s.CreateAccount(ctx, account(host, "other"+size.name, 1)); err != nil {
				b.Fatal(err)
			}
			base := storage.ArchiveID(archiveBase)
			const batch = 10_000
			entries := make([]storage.ArchiveEntry, 0, batch)
			var middle int64
			for i := range size.n {
				u := user
				if i%10 == 9 {
					u = "other" + size.name
				}
				id := base + int64(i)*1000
				if i == size.n/2 {
					middle = id
				}
				entries = append(entries, storage.ArchiveEntry{Host: host, Username: u, ArchivedMessage: storage.ArchivedMessage{
					ID: id, With: fmt.Sprintf("contact%d@example.net", i%20), Direction: storage.Direction(i % 2),
					Stanza: fmt.Appendf(nil, "<message xmlns='jabber:client' from='contact%d@example.net/phone' to='%s@example.org' type='chat' id='m%d'><body>Message number %d, about as long as a chat line.</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s@example.org' id='%d'/></message>", i%20, u, i, i, u, id),
				}})
				if len(entries) == batch || i == size.n-1 {
					if err := s.AppendArchive(ctx, entries); err != nil {
						b.Fatal(err)
					}
					entries = entries[:0]
				}
			}
			if settle != nil {
				settle(b)
			}
			for _, q := range []struct {
				name string
				q    storage.ArchiveQuery
			}{
				{"Last", storage.ArchiveQuery{Max: 50, Last: true}},
				{"After", storage.ArchiveQuery{Max: 50, AfterID: middle}},
				{"WithLast", storage.ArchiveQuery{Max: 50, Last: true, With: "contact4@example.net"}},
			} {
				b.Run(q.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						page, err := s.QueryArchive(ctx, host, user, q.q)
						if err != nil || len(page.Messages) != 50 {
							b.Fatal(len(page.Messages), err)
						}
					}
				})
			}
		})
	}
}
