package storagetest

// The suite's tests of the IM aggregates: roster with versioning and
// subscription requests, offline messages, blocklist, documents, last
// activity.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

const host = "example.org"

// imAccounts creates alice and bob on host.
func imAccounts(t *testing.T, s storage.Store) {
	t.Helper()
	create(t, s, account(host, "alice", 1))
	create(t, s, account(host, "bob", 2))
}

func putItem(t *testing.T, s storage.Store, user string, it storage.RosterItem) int64 {
	t.Helper()
	v, err := s.PutRosterItem(t.Context(), host, user, it)
	if err != nil {
		t.Fatalf("PutRosterItem(%s, %s): %v", user, it.Contact, err)
	}
	return v
}

func deleteItem(t *testing.T, s storage.Store, user, contact string) int64 {
	t.Helper()
	v, err := s.DeleteRosterItem(t.Context(), host, user, contact)
	if err != nil {
		t.Fatalf("DeleteRosterItem(%s, %s): %v", user, contact, err)
	}
	return v
}

// stored returns it as a backend returns it after a put at version v:
// groups sorted, without duplicates.
func stored(it storage.RosterItem, v int64) storage.RosterItem {
	it.Groups = slices.Compact(slices.Sorted(slices.Values(it.Groups)))
	it.Version = v
	return it
}

func sameItem(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name && a.Subscription == b.Subscription &&
		a.Ask == b.Ask && a.Approved == b.Approved && a.Version == b.Version &&
		len(a.Groups) == len(b.Groups) && (len(a.Groups) == 0 || slices.Equal(a.Groups, b.Groups))
}

func sameItems(a, b []storage.RosterItem) bool {
	return slices.EqualFunc(a, b, sameItem)
}

func checkRoster(t *testing.T, s storage.Store, user string, want []storage.RosterItem, wantVer int64) {
	t.Helper()
	got, ver, err := s.RosterItems(t.Context(), host, user)
	if err != nil {
		t.Fatalf("RosterItems(%s): %v", user, err)
	}
	if !sameItems(got, want) || ver != wantVer {
		t.Errorf("RosterItems(%s) =\n\t%+v, version %d\nwant\n\t%+v, version %d", user, got, ver, want, wantVer)
	}
	n, err := s.RosterCount(t.Context(), host, user)
	if err != nil || n != len(want) {
		t.Errorf("RosterCount(%s) = %d, %v; want %d", user, n, err, len(want))
	}
	for _, w := range want {
		it, err := s.RosterItem(t.Context(), host, user, w.Contact)
		if err != nil || !sameItem(it, w) {
			t.Errorf("RosterItem(%s, %s) = %+v, %v; want %+v", user, w.Contact, it, err, w)
		}
	}
}

func checkChanges(t *testing.T, s storage.Store, user string, since int64, wantChanged []storage.RosterItem, wantRemoved []string, wantCur int64, wantOK bool) {
	t.Helper()
	changed, removed, cur, ok, err := s.RosterChanges(t.Context(), host, user, since)
	if err != nil {
		t.Fatalf("RosterChanges(%s, %d): %v", user, since, err)
	}
	if ok != wantOK || cur != wantCur {
		t.Errorf("RosterChanges(%s, %d): current %d, ok %v; want %d, %v", user, since, cur, ok, wantCur, wantOK)
	}
	if !wantOK {
		return // what comes with ok == false is not specified
	}
	if !sameItems(changed, wantChanged) {
		t.Errorf("RosterChanges(%s, %d) changed =\n\t%+v\nwant\n\t%+v", user, since, changed, wantChanged)
	}
	if len(removed) != len(wantRemoved) || (len(removed) > 0 && !slices.Equal(removed, wantRemoved)) {
		t.Errorf("RosterChanges(%s, %d) removed = %q, want %q", user, since, removed, wantRemoved)
	}
}

func testRosterRoundTrip(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	items := []storage.RosterItem{
		{Contact: "zoë@example.net", Name: "Zoë", Groups: []string{"Work", "Friends", "Ämter", "Work", "friends"}, Subscription: storage.SubBoth},
		{Contact: "carol@example.com", Subscription: storage.SubNone, Ask: true},
		{Contact: "dave@example.org", Name: `Dave <the> "one" & only`, Groups: []string{"x\ny", " padded "}, Subscription: storage.SubFrom, Approved: true},
		{Contact: "émile@example.fr", Subscription: storage.SubTo, Ask: true, Approved: true, Version: 99},
		{Contact: "example.com", Name: "a server", Groups: []string{"Services"}, Subscription: storage.SubNone},
	}
	groups0 := slices.Clone(items[0].Groups)
	var want []storage.RosterItem
	for i, it := range items {
		v := putItem(t, s, "alice", it)
		if v != int64(i+1) {
			t.Errorf("PutRosterItem #%d returned version %d, want %d", i, v, i+1)
		}
		want = append(want, stored(it, v))
	}
	if !slices.Equal(items[0].Groups, groups0) {
		t.Errorf("PutRosterItem changed the caller's Groups to %q", items[0].Groups)
	}
	slices.SortFunc(want, func(a, b storage.RosterItem) int { return strings.Compare(a.Contact, b.Contact) })
	checkRoster(t, s, "alice", want, 5)

	// Replace dave: every field changes, the name and groups go.
	dave := storage.RosterItem{Contact: "dave@example.org", Subscription: storage.SubBoth}
	if v := putItem(t, s, "alice", dave); v != 6 {
		t.Errorf("replacing PutRosterItem returned version %d, want 6", v)
	}
	for i := range want {
		if want[i].Contact == dave.Contact {
			want[i] = stored(dave, 6)
		}
	}
	checkRoster(t, s, "alice", want, 6)

	// Bob's roster is his own, with its own version.
	checkRoster(t, s, "bob", nil, 0)
	if v := putItem(t, s, "bob", items[1]); v != 1 {
		t.Errorf("bob's first PutRosterItem returned version %d, want 1", v)
	}
	checkRoster(t, s, "bob", []storage.RosterItem{stored(items[1], 1)}, 1)
	checkRoster(t, s, "alice", want, 6)
}

func testRosterNotFound(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	a := storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone}
	putItem(t, s, "alice", a)

	if _, err := s.RosterItem(ctx, host, "alice", "b@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of a missing contact: %v, want ErrNotFound", err)
	}
	if _, err := s.RosterItem(ctx, host, "bob", a.Contact); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of another account's contact: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx, host, "alice", "b@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem of a missing contact: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx, host, "bob", a.Contact); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem of another account's contact: %v, want ErrNotFound", err)
	}
	// Deleting a deleted item is deleting a missing one.
	deleteItem(t, s, "alice", a.Contact)
	if _, err := s.DeleteRosterItem(ctx, host, "alice", a.Contact); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteRosterItem: %v, want ErrNotFound", err)
	}
	// A value that is not a subscription state is refused.
	for _, sub := range []storage.Subscription{"", "pending", "Both"} {
		if _, err := s.PutRosterItem(ctx, host, "alice", storage.RosterItem{Contact: "c@example.net", Subscription: sub}); err == nil {
			t.Errorf("PutRosterItem with subscription %q succeeded", sub)
		}
	}
	// The failures changed nothing: the version is still that of the delete.
	checkRoster(t, s, "alice", nil, 2)
	checkChanges(t, s, "alice", 1, nil, []string{a.Contact}, 2, true)

	// No such account.
	if _, err := s.PutRosterItem(ctx, host, "carol", a); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutRosterItem for a missing account: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx, host, "carol", a.Contact); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem for a missing account: %v, want ErrNotFound", err)
	}
	checkRoster(t, s, "carol", nil, 0)
	checkChanges(t, s, "carol", 0, nil, nil, 0, true)
}

func testRosterChanges(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	item := func(c string, g ...string) storage.RosterItem {
		return storage.RosterItem{Contact: c, Name: strings.ToUpper(c), Groups: g, Subscription: storage.SubBoth}
	}
	a, b, c := item("a@example.net", "G2", "G1"), item("b@example.net"), item("c@example.net", "G")

	// Never changed: version 0, and 0 is its version.
	checkChanges(t, s, "alice", 0, nil, nil, 0, true)
	checkChanges(t, s, "alice", 1, nil, nil, 0, false)

	step := func(what string, got, want int64) {
		t.Helper()
		if got != want {
			t.Fatalf("%s returned version %d, want %d", what, got, want)
		}
	}
	step("put a", putItem(t, s, "alice", a), 1)
	step("put b", putItem(t, s, "alice", b), 2)
	step("put c", putItem(t, s, "alice", c), 3)
	step("delete b", deleteItem(t, s, "alice", b.Contact), 4)
	a.Name = "changed"
	step("put a again", putItem(t, s, "alice", a), 5)

	a5, c3 := stored(a, 5), stored(c, 3)
	checkChanges(t, s, "alice", 0, []storage.RosterItem{c3, a5}, []string{b.Contact}, 5, true)
	checkChanges(t, s, "alice", 2, []storage.RosterItem{c3, a5}, []string{b.Contact}, 5, true)
	checkChanges(t, s, "alice", 3, []storage.RosterItem{a5}, []string{b.Contact}, 5, true)
	checkChanges(t, s, "alice", 4, []storage.RosterItem{a5}, nil, 5, true)
	checkChanges(t, s, "alice", 5, nil, nil, 5, true)
	checkChanges(t, s, "alice", 6, nil, nil, 5, false)
	checkChanges(t, s, "alice", 1000, nil, nil, 5, false)
	checkChanges(t, s, "alice", -1, nil, nil, 5, false)
	// Bob's roster never changed: alice's versions are not his.
	checkChanges(t, s, "bob", 3, nil, nil, 0, false)

	// Re-adding b replaces its tombstone.
	step("re-add b", putItem(t, s, "alice", b), 6)
	b6 := stored(b, 6)
	checkChanges(t, s, "alice", 3, []storage.RosterItem{a5, b6}, nil, 6, true)
	checkChanges(t, s, "alice", 0, []storage.RosterItem{c3, a5, b6}, nil, 6, true)

	step("delete c", deleteItem(t, s, "alice", c.Contact), 7)
	step("delete a", deleteItem(t, s, "alice", a.Contact), 8)
	checkChanges(t, s, "alice", 6, nil, []string{c.Contact, a.Contact}, 8, true)
	checkChanges(t, s, "alice", 5, []storage.RosterItem{b6}, []string{c.Contact, a.Contact}, 8, true)
	checkChanges(t, s, "alice", 0, []storage.RosterItem{b6}, []string{c.Contact, a.Contact}, 8, true)
	// Removed and re-added after since: reported as changed only.
	step("re-add c", putItem(t, s, "alice", c), 9)
	checkChanges(t, s, "alice", 6, []storage.RosterItem{stored(c, 9)}, []string{a.Contact}, 9, true)
	checkRoster(t, s, "alice", []storage.RosterItem{b6, stored(c, 9)}, 9)
}

func testSubscriptionRequests(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	req := func(from, id string) storage.SubscriptionRequest {
		return storage.SubscriptionRequest{
			Contact: from,
			Stanza:  fmt.Appendf(nil, `<presence xmlns="jabber:client" from="%s" to="alice@example.org" type="subscribe" id="%s"/>`, from, id),
		}
	}
	check := func(user string, want ...storage.SubscriptionRequest) {
		t.Helper()
		got, err := s.SubscriptionRequests(ctx, host, user)
		if err != nil {
			t.Fatalf("SubscriptionRequests(%s): %v", user, err)
		}
		if !slices.EqualFunc(got, want, func(a, b storage.SubscriptionRequest) bool {
			return a.Contact == b.Contact && bytes.Equal(a.Stanza, b.Stanza)
		}) {
			t.Errorf("SubscriptionRequests(%s) = %q, want %q", user, got, want)
		}
	}
	put := func(user string, r storage.SubscriptionRequest) {
		t.Helper()
		if err := s.PutSubscriptionRequest(ctx, host, user, r); err != nil {
			t.Fatalf("PutSubscriptionRequest(%s, %s): %v", user, r.Contact, err)
		}
	}
	del := func(user, contact string) {
		t.Helper()
		if err := s.DeleteSubscriptionRequest(ctx, host, user, contact); err != nil {
			t.Fatalf("DeleteSubscriptionRequest(%s, %s): %v", user, contact, err)
		}
	}

	check("alice")
	x, y, z := req("x@example.net", "1"), req("y@example.net", "2"), req("a@example.net", "3")
	put("alice", x)
	put("alice", y)
	put("alice", z)
	check("alice", x, y, z) // oldest first, not sorted by contact
	// A new request from x replaces the old one and is now the newest.
	x2 := req("x@example.net", "4")
	put("alice", x2)
	check("alice", y, z, x2)
	put("bob", y)
	check("bob", y)

	del("alice", y.Contact)
	check("alice", z, x2)
	del("alice", y.Contact)            // none: no error
	del("carol", y.Contact)            // no such account: no error either
	check("bob", y)                    // untouched
	checkRoster(t, s, "alice", nil, 0) // requests are not roster items

	if err := s.PutSubscriptionRequest(ctx, host, "carol", x); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutSubscriptionRequest for a missing account: %v, want ErrNotFound", err)
	}
	check("carol")
}

// checkTime checks that a stored time came back in UTC, to at least the
// millisecond.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC || got.Before(want.Truncate(time.Millisecond)) || got.After(want) {
		t.Errorf("%s = %v, want %v to at least the millisecond, in UTC", what, got, want.UTC())
	}
}

func checkOffline(t *testing.T, s storage.Store, user string, want [][]byte, wantStored []time.Time) []storage.OfflineMessage {
	t.Helper()
	got, err := s.OfflineMessages(t.Context(), host, user)
	if err != nil {
		t.Fatalf("OfflineMessages(%s): %v", user, err)
	}
	if len(got) != len(want) {
		t.Fatalf("OfflineMessages(%s) returned %d messages, want %d", user, len(got), len(want))
	}
	for i, m := range got {
		if !bytes.Equal(m.Stanza, want[i]) {
			t.Errorf("OfflineMessages(%s)[%d].Stanza = %q, want %q", user, i, m.Stanza, want[i])
		}
		if wantStored != nil {
			checkTime(t, fmt.Sprintf("OfflineMessages(%s)[%d].Stored", user, i), m.Stored, wantStored[i])
		}
		if i > 0 && m.ID <= got[i-1].ID {
			t.Errorf("OfflineMessages(%s): ID %d after %d", user, m.ID, got[i-1].ID)
		}
	}
	return got
}

func testOffline(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	t0 := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	var (
		stanzas [][]byte
		times   []time.Time
	)
	store := func(user string, max int, i int) error {
		stanza := fmt.Appendf(nil, `<message xmlns="jabber:client" to="%s@example.org" id="m%d"><body>hé %d</body></message>`, user, i, i)
		at := t0.Add(time.Duration(i) * 1500 * time.Millisecond)
		err := s.StoreOffline(ctx, host, user, stanza, at, max)
		if err == nil && user == "alice" {
			stanzas, times = append(stanzas, stanza), append(times, at)
		}
		return err
	}
	checkOffline(t, s, "alice", nil, nil)
	for i := range 3 {
		if err := store("alice", 3, i); err != nil {
			t.Fatalf("StoreOffline #%d: %v", i, err)
		}
	}
	first := checkOffline(t, s, "alice", stanzas, times)

	// Full at 3.
	if err := store("alice", 3, 3); !errors.Is(err, storage.ErrQuota) {
		t.Fatalf("StoreOffline over the quota: %v, want ErrQuota", err)
	}
	if err := store("alice", 1, 3); !errors.Is(err, storage.ErrQuota) {
		t.Fatalf("StoreOffline over the quota: %v, want ErrQuota", err)
	}
	checkOffline(t, s, "alice", stanzas, times)
	// A higher limit, or none.
	for i, max := range []int{4, 0, -1} {
		if err := store("alice", max, 4+i); err != nil {
			t.Fatalf("StoreOffline with max %d: %v", max, err)
		}
	}
	all := checkOffline(t, s, "alice", stanzas, times)
	if all[0].ID != first[0].ID || all[2].ID != first[2].ID {
		t.Errorf("IDs changed: %d, %d then %d, %d", first[0].ID, first[2].ID, all[0].ID, all[2].ID)
	}
	// Bob's quota counts only his messages.
	if err := store("bob", 1, 100); err != nil {
		t.Fatalf("StoreOffline for bob: %v", err)
	}

	// Delivered through the second: the rest stays.
	if err := s.DeleteOffline(ctx, host, "alice", all[1].ID); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	stanzas, times = stanzas[2:], times[2:]
	checkOffline(t, s, "alice", stanzas, times)
	if err := store("alice", 0, 10); err != nil {
		t.Fatalf("StoreOffline: %v", err)
	}
	got := checkOffline(t, s, "alice", stanzas, times)
	last := got[len(got)-1].ID
	if last <= all[len(all)-1].ID {
		t.Errorf("new message has ID %d, not above the earlier %d", last, all[len(all)-1].ID)
	}

	// All delivered; IDs still increase afterwards.
	if err := s.DeleteOffline(ctx, host, "alice", last); err != nil {
		t.Fatalf("DeleteOffline: %v", err)
	}
	stanzas, times = nil, nil
	checkOffline(t, s, "alice", nil, nil)
	if err := store("alice", 1, 11); err != nil {
		t.Fatalf("StoreOffline after emptying: %v", err)
	}
	got = checkOffline(t, s, "alice", stanzas, times)
	if got[0].ID <= last {
		t.Errorf("message stored after deleting all has ID %d, not above the earlier %d", got[0].ID, last)
	}
	if bob, err := s.OfflineMessages(ctx, host, "bob"); err != nil || len(bob) != 1 {
		t.Errorf("bob's OfflineMessages = %d messages, %v; want 1", len(bob), err)
	}

	// No such account.
	for _, max := range []int{0, 5} {
		if err := s.StoreOffline(ctx, host, "carol", []byte("<message/>"), t0, max); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("StoreOffline(max %d) for a missing account: %v, want ErrNotFound", max, err)
		}
	}
	if err := s.DeleteOffline(ctx, host, "carol", 1<<62); err != nil {
		t.Errorf("DeleteOffline for a missing account: %v", err)
	}
	checkOffline(t, s, "carol", nil, nil)
}

func checkBlocked(t *testing.T, s storage.Store, user string, want ...string) {
	t.Helper()
	got, err := s.BlockedJIDs(t.Context(), host, user)
	if err != nil {
		t.Fatalf("BlockedJIDs(%s): %v", user, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Errorf("BlockedJIDs(%s) = %q, want %q", user, got, want)
	}
}

func testBlocklist(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	block := func(user string, jids ...string) {
		t.Helper()
		if err := s.Block(ctx, host, user, jids); err != nil {
			t.Fatalf("Block(%s, %q): %v", user, jids, err)
		}
	}
	unblock := func(user string, jids ...string) {
		t.Helper()
		if err := s.Unblock(ctx, host, user, jids); err != nil {
			t.Fatalf("Unblock(%s, %q): %v", user, jids, err)
		}
	}
	checkBlocked(t, s, "alice")
	block("alice", "zoë@example.net", "example.com", "a@example.net/phone")
	block("alice", "example.com", "émile@example.fr", "b@example.net", "b@example.net") // some twice
	block("alice")
	// Sorted byte-wise, as sort.Strings does.
	all := []string{"a@example.net/phone", "b@example.net", "example.com", "zoë@example.net", "émile@example.fr"}
	checkBlocked(t, s, "alice", all...)
	block("bob", "b@example.net")

	unblock("alice", "example.com", "never@example.net", "zoë@example.net")
	checkBlocked(t, s, "alice", "a@example.net/phone", "b@example.net", "émile@example.fr")
	unblock("alice") // all
	checkBlocked(t, s, "alice")
	unblock("alice")
	if err := s.Unblock(ctx, host, "alice", []string{}); err != nil {
		t.Fatalf("Unblock with an empty list: %v", err)
	}
	checkBlocked(t, s, "bob", "b@example.net")

	if err := s.Block(ctx, host, "carol", []string{"x@example.net"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Block for a missing account: %v, want ErrNotFound", err)
	}
	if err := s.Unblock(ctx, host, "carol", nil); err != nil {
		t.Errorf("Unblock for a missing account: %v", err)
	}
	checkBlocked(t, s, "carol")
}

func checkDocument(t *testing.T, s storage.Store, user, key string, want []byte) {
	t.Helper()
	got, err := s.Document(t.Context(), host, user, key)
	switch {
	case want == nil && !errors.Is(err, storage.ErrNotFound):
		t.Errorf("Document(%s, %q) = %.40q, %v; want ErrNotFound", user, key, got, err)
	case want != nil && err != nil:
		t.Errorf("Document(%s, %q): %v", user, key, err)
	case want != nil && !bytes.Equal(got, want):
		t.Errorf("Document(%s, %q) = %.60q, want %.60q", user, key, got, want)
	}
}

func testDocuments(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	put := func(user, key string, doc []byte) {
		t.Helper()
		if err := s.PutDocument(ctx, host, user, key, doc); err != nil {
			t.Fatalf("PutDocument(%s, %q): %v", user, key, err)
		}
	}
	del := func(user, key string) {
		t.Helper()
		if err := s.DeleteDocument(ctx, host, user, key); err != nil {
			t.Fatalf("DeleteDocument(%s, %q): %v", user, key, err)
		}
	}
	const vcard, bookmarks, notes = "vcard", "private {storage:bookmarks} storage", "private {storage:rosternotes} storage"
	v1 := []byte(`<vCard xmlns="vcard-temp"><FN>Alice</FN></vCard>`)
	// A vCard with a photo is large, and any bytes must come back.
	photo := make([]byte, 300<<10)
	for i := range photo {
		photo[i] = byte(i * 7)
	}
	v2 := append([]byte(`<vCard xmlns="vcard-temp"><FN>Alice Ä</FN><PHOTO><BINVAL>`), photo...)
	b1 := []byte(`<storage xmlns="storage:bookmarks"><conference jid="room@muc.example.org"/></storage>`)

	checkDocument(t, s, "alice", vcard, nil)
	put("alice", vcard, v1)
	put("alice", bookmarks, b1)
	checkDocument(t, s, "alice", vcard, v1)
	checkDocument(t, s, "alice", bookmarks, b1)
	checkDocument(t, s, "alice", notes, nil)
	checkDocument(t, s, "bob", vcard, nil)

	put("alice", vcard, v2) // replaces
	checkDocument(t, s, "alice", vcard, v2)
	put("bob", vcard, v1)
	put("alice", notes, []byte{}) // empty, but there
	checkDocument(t, s, "alice", notes, []byte{})

	checkDocumentKeys(t, s, "alice", "", []string{bookmarks, notes, vcard})
	checkDocumentKeys(t, s, "alice", "private ", []string{bookmarks, notes})
	checkDocumentKeys(t, s, "bob", "private ", nil)
	checkDocumentKeys(t, s, "carol", "", nil)

	del("alice", vcard)
	checkDocument(t, s, "alice", vcard, nil)
	checkDocument(t, s, "alice", bookmarks, b1)
	checkDocumentKeys(t, s, "alice", "", []string{bookmarks, notes})
	checkDocument(t, s, "bob", vcard, v1)
	del("alice", vcard) // none: no error
	del("carol", vcard)

	if err := s.PutDocument(ctx, host, "carol", vcard, v1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutDocument for a missing account: %v, want ErrNotFound", err)
	}
	checkDocument(t, s, "carol", vcard, nil)
}

func checkDocumentKeys(t *testing.T, s storage.Store, user, prefix string, want []string) {
	t.Helper()
	got, err := s.DocumentKeys(t.Context(), host, user, prefix)
	if err != nil {
		t.Fatalf("DocumentKeys(%s, %q): %v", user, prefix, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DocumentKeys(%s, %q) = %q, want %q", user, prefix, got, want)
	}
}

func checkLastActivity(t *testing.T, s storage.Store, user string, wantAt time.Time, wantStatus string) {
	t.Helper()
	at, status, err := s.LastActivity(t.Context(), host, user)
	if wantAt.IsZero() {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("LastActivity(%s) = %v, %q, %v; want ErrNotFound", user, at, status, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("LastActivity(%s): %v", user, err)
	}
	checkTime(t, "LastActivity("+user+")", at, wantAt)
	if status != wantStatus {
		t.Errorf("LastActivity(%s) status = %q, want %q", user, status, wantStatus)
	}
}

func testLastActivity(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	set := func(user string, at time.Time, status string) {
		t.Helper()
		if err := s.SetLastActivity(ctx, host, user, at, status); err != nil {
			t.Fatalf("SetLastActivity(%s): %v", user, err)
		}
	}
	t1 := time.Date(2024, 5, 6, 7, 8, 9, 987654321, time.FixedZone("CEST", 2*3600))
	t2 := time.Date(2025, 1, 2, 3, 4, 5, 6000000, time.UTC)

	checkLastActivity(t, s, "alice", time.Time{}, "")
	set("alice", t1, "Gone fishing 🎣")
	checkLastActivity(t, s, "alice", t1, "Gone fishing 🎣")
	checkLastActivity(t, s, "bob", time.Time{}, "")
	set("alice", t2, "") // replaces, status too
	checkLastActivity(t, s, "alice", t2, "")
	set("bob", t1, "later")
	checkLastActivity(t, s, "bob", t1, "later")
	checkLastActivity(t, s, "alice", t2, "")

	if err := s.SetLastActivity(ctx, host, "carol", t1, ""); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetLastActivity for a missing account: %v, want ErrNotFound", err)
	}
	checkLastActivity(t, s, "carol", time.Time{}, "")
}

// fill stores something of every IM aggregate for user, and returns the
// roster items it leaves.
func fill(t *testing.T, s storage.Store, user string) []storage.RosterItem {
	t.Helper()
	ctx := t.Context()
	a := storage.RosterItem{Contact: "a@example.net", Name: "A", Groups: []string{"G"}, Subscription: storage.SubBoth}
	b := storage.RosterItem{Contact: "b@example.net", Subscription: storage.SubTo}
	va := putItem(t, s, user, a)
	putItem(t, s, user, b)
	deleteItem(t, s, user, b.Contact) // a tombstone
	err := errors.Join(
		s.PutSubscriptionRequest(ctx, host, user, storage.SubscriptionRequest{Contact: "c@example.net", Stanza: []byte("<presence/>")}),
		s.StoreOffline(ctx, host, user, []byte("<message/>"), time.Unix(1700000000, 0), 0),
		s.Block(ctx, host, user, []string{"spam@example.net"}),
		s.PutDocument(ctx, host, user, "vcard", []byte("<vCard/>")),
		s.SetLastActivity(ctx, host, user, time.Unix(1700000000, 0), "bye"),
		fillPubSub(t, s, user),
	)
	if err != nil {
		t.Fatalf("filling %s's data: %v", user, err)
	}
	return []storage.RosterItem{stored(a, va)}
}

// checkFilled checks what fill stored, and that the roster version is ver.
func checkFilled(t *testing.T, s storage.Store, user string, roster []storage.RosterItem, ver int64) {
	t.Helper()
	ctx := t.Context()
	checkRoster(t, s, user, roster, ver)
	checkChanges(t, s, user, ver-1, nil, []string{"b@example.net"}, ver, true)
	reqs, err := s.SubscriptionRequests(ctx, host, user)
	if err != nil || len(reqs) != 1 || reqs[0].Contact != "c@example.net" || string(reqs[0].Stanza) != "<presence/>" {
		t.Errorf("SubscriptionRequests(%s) = %q, %v", user, reqs, err)
	}
	checkOffline(t, s, user, [][]byte{[]byte("<message/>")}, []time.Time{time.Unix(1700000000, 0)})
	checkBlocked(t, s, user, "spam@example.net")
	checkDocument(t, s, user, "vcard", []byte("<vCard/>"))
	checkLastActivity(t, s, user, time.Unix(1700000000, 0), "bye")
	checkFilledPubSub(t, s, user, false)
}

func testDeleteAccountData(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	fill(t, s, "alice")
	bobRoster := fill(t, s, "bob")

	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	// Re-created, alice starts from nothing.
	create(t, s, account(host, "alice", 3))
	checkRoster(t, s, "alice", nil, 0)
	checkChanges(t, s, "alice", 0, nil, nil, 0, true)
	if reqs, err := s.SubscriptionRequests(ctx, host, "alice"); err != nil || len(reqs) != 0 {
		t.Errorf("SubscriptionRequests after re-creation = %q, %v; want none", reqs, err)
	}
	checkOffline(t, s, "alice", nil, nil)
	checkBlocked(t, s, "alice")
	checkDocument(t, s, "alice", "vcard", nil)
	checkLastActivity(t, s, "alice", time.Time{}, "")
	checkFilledPubSub(t, s, "alice", true)
	if v := putItem(t, s, "alice", storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone}); v != 1 {
		t.Errorf("first PutRosterItem after re-creation returned version %d, want 1", v)
	}
	// Bob keeps everything.
	checkFilled(t, s, "bob", bobRoster, 3)
}

func testReopenData(t *testing.T, newDB NewDB) {
	open := newDB(t)
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var roster []storage.RosterItem
	func() {
		defer func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
		imAccounts(t, s)
		roster = fill(t, s, "alice")
	}()
	if t.Failed() {
		t.FailNow()
	}

	s = mustOpen(t, open)
	checkFilled(t, s, "alice", roster, 3)
	// The counters carry on where they were.
	if v := putItem(t, s, "alice", storage.RosterItem{Contact: "d@example.net", Subscription: storage.SubNone}); v != 4 {
		t.Errorf("PutRosterItem after reopening returned version %d, want 4", v)
	}
	before := checkOffline(t, s, "alice", [][]byte{[]byte("<message/>")}, nil)
	if err := s.StoreOffline(t.Context(), host, "alice", []byte("<message>2</message>"), time.Now(), 0); err != nil {
		t.Fatalf("StoreOffline: %v", err)
	}
	after := checkOffline(t, s, "alice", [][]byte{[]byte("<message/>"), []byte("<message>2</message>")}, nil)
	if after[0].ID != before[0].ID {
		t.Errorf("ID changed from %d to %d", before[0].ID, after[0].ID)
	}
}

func testConcurrentRoster(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	const goroutines, each = 8, 10
	const shared = "shared@example.net"
	versions := make([][]int64, goroutines) // by goroutine, in call order
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				// Even goroutines add their own contacts, odd ones all
				// rewrite the same one.
				it := storage.RosterItem{Contact: fmt.Sprintf("c%d-%d@example.net", g, i), Subscription: storage.SubNone}
				if g%2 == 1 {
					it = storage.RosterItem{Contact: shared, Name: fmt.Sprint(g, i), Subscription: storage.SubBoth}
				}
				v, err := s.PutRosterItem(t.Context(), host, "alice", it)
				if err != nil {
					t.Errorf("PutRosterItem: %v", err)
					return
				}
				versions[g] = append(versions[g], v)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var all []int64
	var sharedMax int64
	for g, vs := range versions {
		if !slices.IsSorted(vs) {
			t.Errorf("goroutine %d got versions %v, not increasing", g, vs)
		}
		all = append(all, vs...)
		if g%2 == 1 {
			sharedMax = max(sharedMax, slices.Max(vs))
		}
	}
	slices.Sort(all)
	for i, v := range all {
		if v != int64(i+1) {
			t.Fatalf("versions %v, want each of 1..%d once", all, goroutines*each)
		}
	}
	items, ver, err := s.RosterItems(t.Context(), host, "alice")
	if err != nil || ver != goroutines*each || len(items) != goroutines/2*each+1 {
		t.Fatalf("RosterItems: %d items, version %d, %v; want %d items, version %d", len(items), ver, err, goroutines/2*each+1, goroutines*each)
	}
	byContact := make(map[string]int64)
	for _, it := range items {
		byContact[it.Contact] = it.Version
	}
	// The last write to the shared contact won, and it has the highest
	// version of those writes.
	if byContact[shared] != sharedMax {
		t.Errorf("shared contact has version %d, want %d", byContact[shared], sharedMax)
	}
	for g := 0; g < goroutines; g += 2 {
		for i, v := range versions[g] {
			if c := fmt.Sprintf("c%d-%d@example.net", g, i); byContact[c] != v {
				t.Errorf("%s has version %d, PutRosterItem returned %d", c, byContact[c], v)
			}
		}
	}
	changed, _, _, ok, err := s.RosterChanges(t.Context(), host, "alice", 0)
	if err != nil || !ok || len(changed) != len(items) ||
		!slices.IsSortedFunc(changed, func(a, b storage.RosterItem) int { return int(a.Version - b.Version) }) {
		t.Errorf("RosterChanges(0): %d items, ok %v, %v; want all %d, sorted by version", len(changed), ok, err, len(items))
	}
}

func testConcurrentOffline(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	const goroutines, each, max = 8, 6, 20
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ok  int
		got = make(map[string]bool)
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				stanza := fmt.Sprintf("<message id='%d-%d'/>", g, i)
				err := s.StoreOffline(t.Context(), host, "alice", []byte(stanza), time.Now(), max)
				switch {
				case err == nil:
					mu.Lock()
					ok++
					got[stanza] = true
					mu.Unlock()
				case !errors.Is(err, storage.ErrQuota):
					t.Errorf("StoreOffline: %v, want nil or ErrQuota", err)
				}
			}
		})
	}
	wg.Wait()
	if ok != max {
		t.Errorf("%d messages stored under a quota of %d", ok, max)
	}
	msgs, err := s.OfflineMessages(t.Context(), host, "alice")
	if err != nil {
		t.Fatalf("OfflineMessages: %v", err)
	}
	if len(msgs) != max {
		t.Fatalf("OfflineMessages returned %d messages, want %d", len(msgs), max)
	}
	last := make(map[int]int) // goroutine → last index seen
	for i, m := range msgs {
		if !got[string(m.Stanza)] {
			t.Errorf("unexpected or duplicate message %q", m.Stanza)
		}
		delete(got, string(m.Stanza))
		if i > 0 && m.ID <= msgs[i-1].ID {
			t.Errorf("ID %d after %d", m.ID, msgs[i-1].ID)
		}
		// Each goroutine's messages are in the order it stored them.
		var g, j int
		fmt.Sscanf(string(m.Stanza), "<message id='%d-%d'/>", &g, &j)
		if prev, seen := last[g]; seen && j <= prev {
			t.Errorf("goroutine %d's message %d comes after its message %d", g, j, prev)
		}
		last[g] = j
	}
}

func testCancelIM(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	item := storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubNone}
	_, _, err := s.RosterItems(ctx, host, "alice")
	check("RosterItems", err)
	_, err = s.RosterItem(ctx, host, "alice", item.Contact)
	check("RosterItem", err)
	_, err = s.PutRosterItem(ctx, host, "alice", item)
	check("PutRosterItem", err)
	_, err = s.DeleteRosterItem(ctx, host, "alice", item.Contact)
	check("DeleteRosterItem", err)
	_, _, _, _, err = s.RosterChanges(ctx, host, "alice", 0)
	check("RosterChanges", err)
	_, err = s.RosterCount(ctx, host, "alice")
	check("RosterCount", err)
	check("PutSubscriptionRequest", s.PutSubscriptionRequest(ctx, host, "alice", storage.SubscriptionRequest{Contact: "a@example.net", Stanza: []byte("<presence/>")}))
	_, err = s.SubscriptionRequests(ctx, host, "alice")
	check("SubscriptionRequests", err)
	check("DeleteSubscriptionRequest", s.DeleteSubscriptionRequest(ctx, host, "alice", "a@example.net"))
	check("StoreOffline", s.StoreOffline(ctx, host, "alice", []byte("<message/>"), time.Now(), 10))
	_, err = s.OfflineMessages(ctx, host, "alice")
	check("OfflineMessages", err)
	check("DeleteOffline", s.DeleteOffline(ctx, host, "alice", 1))
	_, err = s.BlockedJIDs(ctx, host, "alice")
	check("BlockedJIDs", err)
	check("Block", s.Block(ctx, host, "alice", []string{"a@example.net"}))
	check("Unblock", s.Unblock(ctx, host, "alice", nil))
	_, err = s.Document(ctx, host, "alice", "vcard")
	check("Document", err)
	check("PutDocument", s.PutDocument(ctx, host, "alice", "vcard", []byte("<vCard/>")))
	check("DeleteDocument", s.DeleteDocument(ctx, host, "alice", "vcard"))
	check("SetLastActivity", s.SetLastActivity(ctx, host, "alice", time.Now(), ""))
	_, _, err = s.LastActivity(ctx, host, "alice")
	check("LastActivity", err)

	// Nothing happened.
	checkRoster(t, s, "alice", nil, 0)
	checkOffline(t, s, "alice", nil, nil)
	checkBlocked(t, s, "alice")
	checkDocument(t, s, "alice", "vcard", nil)
	checkLastActivity(t, s, "alice", time.Time{}, "")
}

// testDeleteAccountRace deletes an account while its data is being written:
// every write either lands before the delete (and goes with it) or fails
// with ErrNotFound, and nothing deadlocks or is left behind.
func testDeleteAccountRace(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	writers := []func(i int) error{
		func(i int) error {
			_, err := s.PutRosterItem(ctx, host, "alice", storage.RosterItem{Contact: fmt.Sprintf("r%d@example.net", i), Subscription: storage.SubNone})
			return err
		},
		func(i int) error {
			c := fmt.Sprintf("d%d@example.net", i)
			_, err := s.PutRosterItem(ctx, host, "alice", storage.RosterItem{Contact: c, Subscription: storage.SubNone})
			if err == nil {
				_, err = s.DeleteRosterItem(ctx, host, "alice", c)
			}
			return err
		},
		func(i int) error {
			return s.StoreOffline(ctx, host, "alice", []byte("<message/>"), time.Now(), 1000000)
		},
		func(i int) error {
			return s.Block(ctx, host, "alice", []string{fmt.Sprintf("b%d@example.net", i), "spam@example.net"})
		},
		func(i int) error {
			return s.PutDocument(ctx, host, "alice", fmt.Sprint("doc", i%3), []byte("<x/>"))
		},
		func(i int) error {
			return s.PutSubscriptionRequest(ctx, host, "alice", storage.SubscriptionRequest{Contact: fmt.Sprintf("s%d@example.net", i%3), Stanza: []byte("<presence/>")})
		},
		func(i int) error {
			return s.SetLastActivity(ctx, host, "alice", time.Now(), "")
		},
	}
	var (
		started, wg sync.WaitGroup
		stop        atomic.Bool // set if DeleteAccount fails
	)
	started.Add(len(writers))
	for w, write := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				err := write(i)
				if i == 0 {
					started.Done()
				}
				if err != nil {
					if !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("writer %d: %v, want ErrNotFound once the account is gone", w, err)
					}
					return
				}
			}
		})
	}
	started.Wait()
	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("DeleteAccount: %v", err)
	}
	wg.Wait()

	create(t, s, account(host, "alice", 3))
	checkRoster(t, s, "alice", nil, 0)
	checkOffline(t, s, "alice", nil, nil)
	checkBlocked(t, s, "alice")
	checkDocument(t, s, "alice", "doc0", nil)
	if reqs, err := s.SubscriptionRequests(ctx, host, "alice"); err != nil || len(reqs) != 0 {
		t.Errorf("SubscriptionRequests after re-creation = %q, %v; want none", reqs, err)
	}
	checkLastActivity(t, s, "alice", time.Time{}, "")
}
