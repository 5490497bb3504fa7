package storagetest

// The suite's tests of Store.InTx.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// increment adds one to the counter kept as the name of alice's roster
// item for counter@example.net, in one transaction holding alice, and
// returns what it read.
func increment(ctx context.Context, s storage.Store, inside *atomic.Int32, between func()) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, "alice"); err != nil {
			return err
		}
		if inside.Add(1) != 1 {
			return errors.New("two transactions hold alice at once")
		}
		defer inside.Add(-1)
		it, err := tx.RosterItem(ctx, host, "alice", "counter@example.net")
		if err != nil {
			return err
		}
		if n, err = strconv.Atoi(it.Name); err != nil {
			return err
		}
		between()
		it.Name = strconv.Itoa(n + 1)
		_, err = tx.PutRosterItem(ctx, host, "alice", it)
		return err
	})
	return n, err
}

// testTxSerialises runs read-modify-write transactions on one roster item
// at once: the second waits for the first, and no update is lost.
func testTxSerialises(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	putItem(t, s, "alice", storage.RosterItem{Contact: "counter@example.net", Name: "0", Subscription: storage.SubBoth})
	var inside atomic.Int32

	// The first holds alice until the second has asked for her.
	locked, asking := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var first, second int
	var err1, err2 error
	wg.Go(func() {
		first, err1 = increment(t.Context(), s, &inside, func() { close(locked); <-asking })
	})
	wg.Go(func() {
		<-locked
		close(asking)
		second, err2 = increment(t.Context(), s, &inside, func() {})
	})
	wg.Wait()
	if err1 != nil || err2 != nil || first != 0 || second != 1 {
		t.Fatalf("transactions read %d (%v) and %d (%v); want 0 and 1: the second must wait for the first", first, err1, second, err2)
	}

	// Many at once.
	const goroutines, each = 4, 10
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := increment(t.Context(), s, &inside, func() {}); err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	it, err := s.RosterItem(t.Context(), host, "alice", "counter@example.net")
	if err != nil || it.Name != strconv.Itoa(2+goroutines*each) {
		t.Errorf("counter = %q, %v; want %d", it.Name, err, 2+goroutines*each)
	}
}

// testTxOffline delivers offline messages from several sessions at once,
// each reading and deleting in one transaction holding the account: every
// message is delivered once.
func testTxOffline(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	const messages, sessions = 20, 4
	for i := range messages {
		if err := s.StoreOffline(ctx, host, "alice", fmt.Appendf(nil, "<message id='%d'/>", i), time.Now(), 0); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		delivered = make(map[string]int)
	)
	start := make(chan struct{})
	for range sessions {
		wg.Go(func() {
			<-start
			var got []storage.OfflineMessage
			err := s.InTx(ctx, func(tx storage.Tx) error {
				if err := tx.LockAccount(ctx, host, "alice"); err != nil {
					return err
				}
				msgs, err := tx.OfflineMessages(ctx, host, "alice")
				if err != nil || len(msgs) == 0 {
					return err
				}
				got = msgs
				return tx.DeleteOffline(ctx, host, "alice", msgs[len(msgs)-1].ID)
			})
			if err != nil {
				t.Errorf("delivery: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range got {
				delivered[string(m.Stanza)]++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(delivered) != messages {
		t.Errorf("%d of %d messages delivered", len(delivered), messages)
	}
	for m, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", m, n)
		}
	}
	checkOffline(t, s, "alice", nil, nil)
}

// testTxRollback checks that a transaction whose function fails leaves
// nothing behind, and that LockAccount of a missing account fails.
func testTxRollback(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	errStop := errors.New("stop")
	err := s.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, "alice"); err != nil {
			return err
		}
		if _, err := tx.PutRosterItem(ctx, host, "alice", storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubTo}); err != nil {
			return err
		}
		if err := tx.StoreOffline(ctx, host, "alice", []byte("<message/>"), time.Now(), 0); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if n, err := tx.RosterCount(ctx, host, "alice"); err != nil || n != 1 {
			return fmt.Errorf("RosterCount in the transaction = %d, %v; want 1", n, err)
		}
		if err := tx.CreateAccount(ctx, account(host, "carol", 3)); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: %v, want f's error", err)
	}
	checkRoster(t, s, "alice", nil, 0)
	checkOffline(t, s, "alice", nil, nil)
	checkList(t, s, host, []string{"alice", "bob"})

	err = s.InTx(ctx, func(tx storage.Tx) error { return tx.LockAccount(ctx, host, "carol") })
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("LockAccount of a missing account: %v, want ErrNotFound", err)
	}
	// A committed one.
	err = s.InTx(ctx, func(tx storage.Tx) error {
		_, err := tx.PutRosterItem(ctx, host, "alice", storage.RosterItem{Contact: "a@example.net", Subscription: storage.SubTo})
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	checkRoster(t, s, "alice", []storage.RosterItem{{Contact: "a@example.net", Subscription: storage.SubTo, Version: 1}}, 1)
}

// testDeleteAccountInTx deletes an account in a transaction that fails:
// every aggregate's data stays; and in one that commits: it all goes.
func testDeleteAccountInTx(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	roster := fill(t, s, "alice")
	errStop := errors.New("stop")
	err := s.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.DeleteAccount(ctx, host, "alice"); err != nil {
			return err
		}
		if _, err := tx.Account(ctx, host, "alice"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Account in the transaction after DeleteAccount: %v, want ErrNotFound", err)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: %v", err)
	}
	checkFilled(t, s, "alice", roster, 3)
	if err := s.InTx(ctx, func(tx storage.Tx) error { return tx.DeleteAccount(ctx, host, "alice") }); err != nil {
		t.Fatalf("InTx: %v", err)
	}
	create(t, s, account(host, "alice", 3))
	checkRoster(t, s, "alice", nil, 0)
	checkOffline(t, s, "alice", nil, nil)
	checkBlocked(t, s, "alice")
	checkDocument(t, s, "alice", "vcard", nil)
	checkLastActivity(t, s, "alice", time.Time{}, "")
	checkFilledPubSub(t, s, "alice", true)
}
