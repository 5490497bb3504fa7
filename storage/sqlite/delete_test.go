package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// TestDeleteAccountEveryTable checks that DeleteAccount itself removes an
// account's rows from every table that has them, a new aggregate's too,
// without ON DELETE CASCADE: foreign keys are off on the writer here.
func TestDeleteAccountEveryTable(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if _, err := s.w.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		err := s.CreateAccount(ctx, storage.Account{Host: "example.org", Username: u, Created: time.Now(),
			Keys: map[storage.Hash]storage.SCRAMKeys{storage.SHA256: {Salt: []byte{1}, Iterations: 1, StoredKey: []byte{2}, ServerKey: []byte{3}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.PutRosterItem(ctx, "example.org", u, storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone})
		if err == nil {
			_, err = s.PutRosterItem(ctx, "example.org", u, storage.RosterItem{Contact: "b@example.net", Subscription: storage.SubNone})
		}
		if err == nil {
			_, err = s.DeleteRosterItem(ctx, "example.org", u, "b@example.net")
		}
		if err == nil {
			err = s.PutSubscriptionRequest(ctx, "example.org", u, storage.SubscriptionRequest{Contact: "c@example.net", Stanza: []byte("<presence/>")})
		}
		if err == nil {
			err = s.StoreOffline(ctx, "example.org", u, []byte("<message/>"), time.Now(), 0)
		}
		if err == nil {
			err = s.Block(ctx, "example.org", u, []string{"spam@example.net"})
		}
		if err == nil {
			err = s.PutDocument(ctx, "example.org", u, "vcard", []byte("<vCard/>"))
		}
		if err == nil {
			err = s.SetLastActivity(ctx, "example.org", u, time.Now(), "")
		}
		if err == nil {
			err = s.AppendArchive(ctx, []storage.ArchiveEntry{{Host: "example.org", Username: u, ArchivedMessage: storage.ArchivedMessage{
				ID: storage.ArchiveID(time.Now()) + int64(len(u)), With: "a@example.net", Stanza: []byte("<message/>")}}})
		}
		if err == nil {
			err = s.PutPushRegistration(ctx, "example.org", u, storage.PushRegistration{JID: "push.example.net", Node: "n", Enabled: time.Now()}, 0)
		}
		if err == nil {
			err = s.CreatePubSubNode(ctx, "example.org", u, "n", storage.PubSubNodeConfig{}, storage.PubSubLimits{})
		}
		if err == nil {
			err = s.PublishPubSubItem(ctx, "example.org", u, "n", storage.PubSubItem{ID: "1", Payload: []byte("<x/>"), Published: time.Now()}, storage.PubSubLimits{})
		}
		if err == nil {
			err = s.PubSubSubscribe(ctx, "example.org", u, "n", "x@example.net", storage.PubSubLimits{})
		}
		if err == nil {
			err = s.AddUpload(ctx, storage.Upload{ID: "slot-" + u, Host: "example.org", Username: u, Name: "f.txt", Size: 1, Created: time.Now()})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// alice's subscription to bob's node goes with alice too.
	if err := s.PubSubSubscribe(ctx, "example.org", "bob", "n", "alice@example.org/phone", storage.PubSubLimits{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "example.org", "alice"); err != nil {
		t.Fatal(err)
	}
	var bySubscriber int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM pubsub_subscriptions WHERE sub_username = 'alice'`).Scan(&bySubscriber); err != nil || bySubscriber != 0 {
		t.Errorf("alice's subscriptions to others' nodes: %d left, %v", bySubscriber, err)
	}
	rows, err := s.w.QueryContext(ctx, `SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
		WHERE m.type = 'table' AND c.name = 'username'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("tables with accounts' rows: %q", tables)
	}
	for _, table := range tables {
		var alice, bob int
		err := s.w.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE username = 'alice'), count(*) FILTER (WHERE username = 'bob') FROM `+table).Scan(&alice, &bob)
		if err != nil {
			t.Fatal(err)
		}
		if alice != 0 || bob == 0 {
			t.Errorf("%s: %d rows of alice (want 0), %d of bob (want some)", table, alice, bob)
		}
	}
}
