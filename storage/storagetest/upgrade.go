package storagetest

import (
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// CheckUpgraded checks a store opened on a database that an earlier build
// created and filled with the rows of the backends' testdata/legacy/
// data.sql: every row is there, as written, and further writes carry on
// from it (versions, ids and request order continue; deletion removes it
// all).
func CheckUpgraded(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	a, err := s.Account(ctx, host, "alice")
	if err != nil {
		t.Fatalf("Account(alice): %v", err)
	}
	wantKeys := map[storage.Hash]storage.SCRAMKeys{
		storage.SHA1:   {Salt: []byte{1}, Iterations: 4096, StoredKey: []byte{2}, ServerKey: []byte{3}},
		storage.SHA256: {Salt: []byte{0x11}, Iterations: 5000, StoredKey: []byte{0x12}, ServerKey: []byte{0x13}},
	}
	if !a.Created.Equal(time.Unix(1700000000, 0)) || !sameKeys(a.Keys, wantKeys) || a.Disabled {
		t.Errorf("alice = %+v", a)
	}
	checkList(t, s, host, []string{"alice", "bob"})

	roster := []storage.RosterItem{
		{Contact: "a@example.net", Name: "A", Groups: []string{"Friends", "Work"}, Subscription: storage.SubBoth, Version: 3},
		{Contact: "b@example.net", Subscription: storage.SubNone, Ask: true, Approved: true, Version: 5},
	}
	checkRoster(t, s, "alice", roster, 5)
	checkChanges(t, s, "alice", 3, roster[1:], []string{"c@example.net"}, 5, true)
	reqs, err := s.SubscriptionRequests(ctx, host, "alice")
	if err != nil || len(reqs) != 2 || reqs[0].Contact != "e@example.net" || string(reqs[0].Stanza) != "<presence from='e'/>" || reqs[1].Contact != "d@example.net" {
		t.Errorf("SubscriptionRequests = %q, %v", reqs, err)
	}
	msgs := checkOffline(t, s, "alice", [][]byte{[]byte("<message>1</message>"), []byte("<message>2</message>")},
		[]time.Time{time.UnixMilli(1700000000123), time.UnixMilli(1700000000456)})
	checkBlocked(t, s, "alice", "spam@example.net", "troll@example.com")
	checkDocument(t, s, "alice", "vcard", []byte("<vCard xmlns='vcard-temp'/>"))
	checkLastActivity(t, s, "alice", time.UnixMilli(1700000000789), "gone")

	// Writes carry on.
	if v := putItem(t, s, "alice", storage.RosterItem{Contact: "c@example.net", Subscription: storage.SubTo}); v != 6 {
		t.Errorf("PutRosterItem returned version %d, want 6", v)
	}
	checkChanges(t, s, "alice", 5, []storage.RosterItem{{Contact: "c@example.net", Subscription: storage.SubTo, Version: 6}}, nil, 6, true)
	if err := s.StoreOffline(ctx, host, "alice", []byte("<message>3</message>"), time.UnixMilli(1700000001000), 0); err != nil {
		t.Fatalf("StoreOffline: %v", err)
	}
	after := checkOffline(t, s, "alice", [][]byte{[]byte("<message>1</message>"), []byte("<message>2</message>"), []byte("<message>3</message>")}, nil)
	if after[0].ID != msgs[0].ID || after[1].ID != msgs[1].ID {
		t.Errorf("offline ids %d, %d became %d, %d", msgs[0].ID, msgs[1].ID, after[0].ID, after[1].ID)
	}
	if err := s.PutSubscriptionRequest(ctx, host, "alice", storage.SubscriptionRequest{Contact: "e@example.net", Stanza: []byte("<presence/>")}); err != nil {
		t.Fatalf("PutSubscriptionRequest: %v", err)
	}
	reqs, err = s.SubscriptionRequests(ctx, host, "alice")
	if err != nil || len(reqs) != 2 || reqs[0].Contact != "d@example.net" || reqs[1].Contact != "e@example.net" {
		t.Errorf("SubscriptionRequests after replacing e's = %q, %v; want d's, then e's", reqs, err)
	}
	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	create(t, s, account(host, "alice", 1))
	checkRoster(t, s, "alice", nil, 0)
	checkOffline(t, s, "alice", nil, nil)
	checkBlocked(t, s, "alice")
	checkDocument(t, s, "alice", "vcard", nil)
	checkLastActivity(t, s, "alice", time.Time{}, "")
	if reqs, err := s.SubscriptionRequests(ctx, host, "alice"); err != nil || len(reqs) != 0 {
		t.Errorf("SubscriptionRequests after re-creation = %q, %v", reqs, err)
	}
	if _, err := s.Account(ctx, host, "bob"); err != nil {
		t.Errorf("Account(bob): %v", err)
	}
}
