// Package storagetest is the one behavioural suite every storage backend
// must pass; each backend's tests call Run.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// NewDB prepares an empty database for one test and returns a function that
// opens it. The suite closes every store it opens, and may open the same
// database again after closing it, to check that data survives.
type NewDB func(t *testing.T) (open func() (storage.Store, error))

// Run runs the suite, each test on a fresh database, in parallel.
func Run(t *testing.T, newDB NewDB) {
	tests := []struct {
		name string
		f    func(t *testing.T, newDB NewDB)
	}{
		{"RoundTrip", testRoundTrip},
		{"Conflict", testConflict},
		{"NotFound", testNotFound},
		{"SetKeys", testSetKeys},
		{"Disabled", testDisabled},
		{"Delete", testDelete},
		{"List", testList},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentSameCreate", testConcurrentSameCreate},
		{"Reopen", testReopen},
		{"Cancel", testCancel},
		{"RosterRoundTrip", testRosterRoundTrip},
		{"RosterNotFound", testRosterNotFound},
		{"RosterChanges", testRosterChanges},
		{"SubscriptionRequests", testSubscriptionRequests},
		{"Offline", testOffline},
		{"Archive", testArchive},
		{"ArchiveDelete", testArchiveDelete},
		{"Blocklist", testBlocklist},
		{"Documents", testDocuments},
		{"LastActivity", testLastActivity},
		{"Push", testPush},
		{"PubSub", testPubSub},
		{"PubSubTrim", testPubSubTrim},
		{"PubSubQuota", testPubSubQuota},
		{"PubSubAccounts", testPubSubAccounts},
		{"PubSubTx", testPubSubTx},
		{"PubSubSubscriptions", testPubSubSubscriptions},
		{"PubSubSubscriptionsDelete", testPubSubSubscriptionsDelete},
		{"MUCRooms", testMUCRooms},
		{"MUCAffiliations", testMUCAffiliations},
		{"MUCDelete", testMUCDelete},
		{"MUCArchive", testMUCArchive},
		{"MUCReplace", testMUCReplace},
		{"MUCConcurrent", testMUCConcurrent},
		{"Uploads", testUploads},
		{"UploadsDeleteAccount", testUploadsDeleteAccount},
		{"DeleteAccountData", testDeleteAccountData},
		{"DeleteAccountRace", testDeleteAccountRace},
		{"ReopenData", testReopenData},
		{"ConcurrentRoster", testConcurrentRoster},
		{"ConcurrentOffline", testConcurrentOffline},
		{"CancelIM", testCancelIM},
		{"TxSerialises", testTxSerialises},
		{"TxOffline", testTxOffline},
		{"TxRollback", testTxRollback},
		{"DeleteAccountInTx", testDeleteAccountInTx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.f(t, newDB)
		})
	}
}

// open opens a store on a fresh database and closes it when the test ends.
func open(t *testing.T, newDB NewDB) storage.Store {
	t.Helper()
	return mustOpen(t, newDB(t))
}

func mustOpen(t *testing.T, open func() (storage.Store, error)) storage.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// keys returns distinct credentials for every hash family, varied by seed.
func keys(seed byte) map[storage.Hash]storage.SCRAMKeys {
	m := make(map[storage.Hash]storage.SCRAMKeys)
	for i, h := range storage.Hashes {
		b := seed*16 + byte(i)*4
		m[h] = storage.SCRAMKeys{
			Salt:       bytes.Repeat([]byte{b}, 16),
			Iterations: 4096 + int(seed)*100 + i,
			StoredKey:  bytes.Repeat([]byte{b + 1}, 32),
			ServerKey:  bytes.Repeat([]byte{b + 2}, 64),
		}
	}
	return m
}

func account(host, username string, seed byte) storage.Account {
	// Sub-second precision and a non-UTC zone: stores keep seconds, in UTC.
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	return storage.Account{Host: host, Username: username, Keys: keys(seed), Created: created}
}

func sameKeys(a, b map[storage.Hash]storage.SCRAMKeys) bool {
	if len(a) != len(b) {
		return false
	}
	for h, x := range a {
		y, ok := b[h]
		if !ok || x.Iterations != y.Iterations || !bytes.Equal(x.Salt, y.Salt) ||
			!bytes.Equal(x.StoredKey, y.StoredKey) || !bytes.Equal(x.ServerKey, y.ServerKey) {
			return false
		}
	}
	return true
}

// checkAccount fetches an account and compares it with want.
func checkAccount(t *testing.T, s storage.Store, want storage.Account) {
	t.Helper()
	got, err := s.Account(t.Context(), want.Host, want.Username)
	if err != nil {
		t.Fatalf("Account(%s, %s): %v", want.Host, want.Username, err)
	}
	if got.Host != want.Host || got.Username != want.Username {
		t.Errorf("Account(%s, %s) returned %s, %s", want.Host, want.Username, got.Host, got.Username)
	}
	wantCreated := want.Created.Truncate(time.Second).UTC()
	if !got.Created.Equal(wantCreated) || got.Created.Location() != time.UTC {
		t.Errorf("Created = %v, want %v", got.Created, wantCreated)
	}
	if !sameKeys(got.Keys, want.Keys) {
		t.Errorf("Keys = %+v, want %+v", got.Keys, want.Keys)
	}
	if got.Disabled != want.Disabled {
		t.Errorf("Disabled = %v, want %v", got.Disabled, want.Disabled)
	}
}

func checkList(t *testing.T, s storage.Store, host string, want []string) {
	t.Helper()
	got, err := s.ListAccounts(t.Context(), host)
	if err != nil {
		t.Fatalf("ListAccounts(%s): %v", host, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Errorf("ListAccounts(%s) = %q, want %q", host, got, want)
	}
}

func create(t *testing.T, s storage.Store, a storage.Account) {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%s@%s): %v", a.Username, a.Host, err)
	}
}

func testRoundTrip(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	a := account("example.org", "alice", 1)
	create(t, s, a)
	checkAccount(t, s, a)

	// An account without credentials, created at another instant.
	b := storage.Account{Host: "example.org", Username: "bob", Created: time.Unix(1700000000, 999999999)}
	create(t, s, b)
	checkAccount(t, s, b)
}

func testConflict(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	a := account("example.org", "alice", 1)
	create(t, s, a)
	dup := account("example.org", "alice", 2)
	if err := s.CreateAccount(t.Context(), dup); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate CreateAccount: %v, want ErrConflict", err)
	}
	checkAccount(t, s, a) // untouched by the failed create
	// The same username on another host is another account.
	create(t, s, account("example.net", "alice", 3))
}

func testNotFound(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	create(t, s, account("example.org", "alice", 1))
	ctx := t.Context()
	for _, who := range [][2]string{{"example.org", "bob"}, {"example.net", "alice"}} {
		host, user := who[0], who[1]
		if _, err := s.Account(ctx, host, user); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Account(%s, %s): %v, want ErrNotFound", host, user, err)
		}
		if err := s.SetKeys(ctx, host, user, keys(2)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetKeys(%s, %s): %v, want ErrNotFound", host, user, err)
		}
		if err := s.SetDisabled(ctx, host, user, true); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetDisabled(%s, %s): %v, want ErrNotFound", host, user, err)
		}
		if err := s.DeleteAccount(ctx, host, user); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteAccount(%s, %s): %v, want ErrNotFound", host, user, err)
		}
	}
	checkList(t, s, "example.net", nil)
}

func testSetKeys(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	a := account("example.org", "alice", 1)
	create(t, s, a)
	other := account("example.org", "bob", 2)
	create(t, s, other)

	// Replace all three with a single family: the others must go.
	a.Keys = map[storage.Hash]storage.SCRAMKeys{storage.SHA256: keys(5)[storage.SHA256]}
	if err := s.SetKeys(t.Context(), a.Host, a.Username, a.Keys); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	checkAccount(t, s, a)

	a.Keys = keys(6)
	if err := s.SetKeys(t.Context(), a.Host, a.Username, a.Keys); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	checkAccount(t, s, a)
	checkAccount(t, s, other)
}

// testDisabled: an account disabled stays, with its keys, until enabled
// again; a new password leaves it disabled; its neighbours are not.
func testDisabled(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	ctx := t.Context()
	a := account("example.org", "alice", 1)
	create(t, s, a)
	other := account("example.org", "bob", 2)
	create(t, s, other)
	set := func(disabled bool) {
		t.Helper()
		if err := s.SetDisabled(ctx, a.Host, a.Username, disabled); err != nil {
			t.Fatalf("SetDisabled(%v): %v", disabled, err)
		}
		a.Disabled = disabled
		checkAccount(t, s, a)
	}
	disabled := func(want ...string) {
		t.Helper()
		got, err := s.ListDisabled(ctx, "example.org")
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ListDisabled = %q, %v, want %q", got, err, want)
		}
	}
	disabled()
	set(true)
	set(true) // again: no change, no error
	checkAccount(t, s, other)
	disabled("alice")
	a.Keys = keys(3)
	if err := s.SetKeys(ctx, a.Host, a.Username, a.Keys); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	checkAccount(t, s, a)
	checkList(t, s, "example.org", []string{"alice", "bob"})
	set(false)
	disabled()

	// Created disabled (an import of a disabled account).
	c := account("example.org", "carol", 4)
	c.Disabled = true
	create(t, s, c)
	checkAccount(t, s, c)
	disabled("carol")
	if got, err := s.ListDisabled(ctx, "example.net"); err != nil || len(got) != 0 {
		t.Errorf("ListDisabled(example.net) = %q, %v", got, err)
	}
}

func testDelete(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	a := account("example.org", "alice", 1)
	create(t, s, a)
	create(t, s, account("example.org", "bob", 2))
	if err := s.DeleteAccount(t.Context(), a.Host, a.Username); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if _, err := s.Account(t.Context(), a.Host, a.Username); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Account after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAccount(t.Context(), a.Host, a.Username); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second DeleteAccount: %v, want ErrNotFound", err)
	}
	checkList(t, s, a.Host, []string{"bob"})

	// Re-created without credentials, it must not get the old ones back.
	a.Keys = nil
	create(t, s, a)
	checkAccount(t, s, a)
}

func testList(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	org := []string{"zoë", "bob", "émile", "alice", "al", "zed"}
	net := []string{"carol", "alice"}
	for i, u := range org {
		create(t, s, account("example.org", u, byte(i)))
	}
	for i, u := range net {
		create(t, s, account("example.net", u, byte(i)))
	}
	// Sorted byte-wise, as sort.Strings does, whatever the database locale.
	checkList(t, s, "example.org", slices.Sorted(slices.Values(org)))
	checkList(t, s, "example.net", slices.Sorted(slices.Values(net)))
	checkList(t, s, "example.com", nil)
}

func testConcurrentCreate(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	var want []string
	for g := range goroutines {
		for i := range each {
			want = append(want, fmt.Sprintf("user%d-%d", g, i))
		}
		wg.Go(func() {
			for i := range each {
				a := account("example.org", fmt.Sprintf("user%d-%d", g, i), byte(g))
				if err := s.CreateAccount(t.Context(), a); err != nil {
					t.Errorf("CreateAccount(%s): %v", a.Username, err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(want)
	checkList(t, s, "example.org", want)
	checkAccount(t, s, account("example.org", "user7-9", 7))
}

func testConcurrentSameCreate(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	const goroutines = 8
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			errs[g] = s.CreateAccount(t.Context(), account("example.org", "alice", byte(g)))
		})
	}
	wg.Wait()
	won := -1
	for g, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("goroutines %d and %d both created the account", won, g)
		case err == nil:
			won = g
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("goroutine %d: %v, want nil or ErrConflict", g, err)
		}
	}
	if won < 0 {
		t.Fatal("no goroutine created the account")
	}
	checkAccount(t, s, account("example.org", "alice", byte(won)))
}

func testReopen(t *testing.T, newDB NewDB) {
	open := newDB(t)
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	a := account("example.org", "alice", 1)
	b := account("example.org", "bob", 2)
	for _, x := range []storage.Account{a, b} {
		if err := s.CreateAccount(t.Context(), x); err != nil {
			s.Close()
			t.Fatalf("CreateAccount: %v", err)
		}
	}
	a.Keys = keys(3)
	err = s.SetKeys(t.Context(), a.Host, a.Username, a.Keys)
	if err := errors.Join(err, s.Close()); err != nil {
		t.Fatalf("SetKeys, Close: %v", err)
	}

	s = mustOpen(t, open)
	checkAccount(t, s, a)
	checkAccount(t, s, b)
	checkList(t, s, "example.org", []string{"alice", "bob"})
}

func testCancel(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	create(t, s, account("example.org", "alice", 1))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	check("CreateAccount", s.CreateAccount(ctx, account("example.org", "bob", 2)))
	_, err := s.Account(ctx, "example.org", "alice")
	check("Account", err)
	check("SetKeys", s.SetKeys(ctx, "example.org", "alice", keys(3)))
	check("DeleteAccount", s.DeleteAccount(ctx, "example.org", "alice"))
	_, err = s.ListAccounts(ctx, "example.org")
	check("ListAccounts", err)

	// Cancel writers in flight: each must return, and no account may be
	// left half-created.
	ctx, cancel = context.WithCancel(t.Context())
	const goroutines = 8
	var started, wg sync.WaitGroup
	started.Add(goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := s.CreateAccount(ctx, account("example.com", fmt.Sprintf("user%d-%d", g, i), 1))
				if i == 0 {
					started.Done()
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("CreateAccount: %v", err)
					}
					return
				}
			}
		})
	}
	started.Wait()
	cancel()
	wg.Wait()

	// The store still works, and what was created is whole.
	create(t, s, account("example.com", "after", 1))
	names, err := s.ListAccounts(t.Context(), "example.com")
	if err != nil {
		t.Fatalf("ListAccounts: %v", err)
	}
	for _, u := range names {
		checkAccount(t, s, account("example.com", u, 1))
	}
	checkAccount(t, s, account("example.org", "alice", 1))
}
