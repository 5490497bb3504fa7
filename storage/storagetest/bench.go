package storagetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// Bench measures what sessions do most often: the account lookup of a
// login, roster reads and writes, archive appends of a few sizes (the
// archiver's batches), and an offline message's round trip (stored,
// fetched, deleted). Each backend's tests call it, so that a
// change of backend code can be compared before and after.
func Bench(b *testing.B, open func() (storage.Store, error)) {
	s, err := open()
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	defer s.Close()
	ctx := b.Context()
	const users = 16
	for u := range users {
		if err := s.CreateAccount(ctx, account(host, fmt.Sprint("user", u), 1)); err != nil {
			b.Fatal(err)
		}
		for i := range 20 {
			it := storage.RosterItem{Contact: fmt.Sprintf("c%d@example.net", i), Name: "C", Groups: []string{"G"}, Subscription: storage.SubBoth}
			if _, err := s.PutRosterItem(ctx, host, fmt.Sprint("user", u), it); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Account", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Account(ctx, host, "user0"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RosterItems", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if items, _, err := s.RosterItems(ctx, host, "user0"); err != nil || len(items) != 20 {
				b.Fatal(len(items), err)
			}
		}
	})
	b.Run("RosterItem", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.RosterItem(ctx, host, "user0", "c7@example.net"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutRosterItem", func(b *testing.B) {
		b.ReportAllocs()
		it := storage.RosterItem{Contact: "c7@example.net", Name: "C", Groups: []string{"G", "H"}, Subscription: storage.SubTo}
		for b.Loop() {
			if _, err := s.PutRosterItem(ctx, host, "user0", it); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutRosterItemParallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			user := fmt.Sprint("user", next.Add(1)%users)
			it := storage.RosterItem{Contact: "c7@example.net", Name: "C", Subscription: storage.SubFrom}
			for pb.Next() {
				if _, err := s.PutRosterItem(ctx, host, user, it); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	// The archiver's writer appends what was routed while it wrote the
	// previous batch: one message is two entries (its sender's archive
	// and its recipient's), a busy server's batches are bigger.
	var archiveID atomic.Int64
	archiveID.Store(storage.ArchiveID(time.Now()))
	for _, n := range []int{1, 2, 16, 256} {
		b.Run(fmt.Sprint("AppendArchive/", n), func(b *testing.B) {
			b.ReportAllocs()
			entries := make([]storage.ArchiveEntry, n)
			stanza := []byte("<message xmlns='jabber:client' from='user0@example.org/laptop' to='user1@example.org' type='chat' id='m1'><body>Message about as long as a chat line.</body><stanza-id xmlns='urn:xmpp:sid:0' by='user1@example.org' id='1'/></message>")
			for b.Loop() {
				for i := range entries {
					u, with, dir := "user0", "user1@example.org", storage.Outgoing
					if i%2 == 1 {
						u, with, dir = "user1", "user0@example.org", storage.Incoming
					}
					entries[i] = storage.ArchiveEntry{Host: host, Username: u, ArchivedMessage: storage.ArchivedMessage{
						ID: archiveID.Add(1), With: with, WithResource: "laptop", Direction: dir, Stanza: stanza,
					}}
				}
				if err := s.AppendArchive(ctx, entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
	b.Run("OfflineRoundTrip", func(b *testing.B) {
		b.ReportAllocs()
		stanza := []byte("<message to='user1@example.org' type='chat'><body>hello</body></message>")
		for b.Loop() {
			if err := s.StoreOffline(ctx, host, "user1", stanza, time.Now(), 100); err != nil {
				b.Fatal(err)
			}
			msgs, err := s.OfflineMessages(ctx, host, "user1")
			if err != nil || len(msgs) != 1 {
				b.Fatal(len(msgs), err)
			}
			if err := s.DeleteOffline(ctx, host, "user1", msgs[0].ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
