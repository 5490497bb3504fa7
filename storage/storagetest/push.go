package storagetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/storage"
)

// checkPush fetches user's push registrations and compares them with
// want (Enabled to the millisecond, in UTC or not).
func checkPush(t *testing.T, s storage.Store, user string, want ...storage.PushRegistration) {
	t.Helper()
	got, err := s.PushRegistrations(t.Context(), host, user)
	if err != nil {
		t.Fatalf("PushRegistrations(%s): %v", user, err)
	}
	norm := func(rs []storage.PushRegistration) []storage.PushRegistration {
		out := make([]storage.PushRegistration, len(rs))
		for i, r := range rs {
			r.Enabled = r.Enabled.Truncate(time.Millisecond).UTC()
			out[i] = r
		}
		return out
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(norm(got), norm(want))) {
		t.Errorf("PushRegistrations(%s) =\n%+v\nwant\n%+v", user, got, want)
	}
}

func testPush(t *testing.T, newDB NewDB) {
	s := open(t, newDB)
	imAccounts(t, s)
	ctx := t.Context()
	put := func(user string, r storage.PushRegistration, max int) {
		t.Helper()
		if err := s.PutPushRegistration(ctx, host, user, r, max); err != nil {
			t.Fatalf("PutPushRegistration(%s, %s %q): %v", user, r.JID, r.Node, err)
		}
	}
	del := func(user, jid, node string, want int) {
		t.Helper()
		n, err := s.DeletePushRegistrations(ctx, host, user, jid, node)
		if err != nil || n != want {
			t.Fatalf("DeletePushRegistrations(%s, %s %q) = %d, %v; want %d", user, jid, node, n, err, want)
		}
	}
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	checkPush(t, s, "alice")
	a := storage.PushRegistration{JID: "push.example.net", Node: "n1", Enabled: at(0),
		Options: []storage.PushOption{{Var: "secret", Values: []string{"s3cr3t <&>"}}, {Var: "multi", Values: []string{"a", "b"}}, {Var: "empty"}}}
	b := storage.PushRegistration{JID: "push.example.net", Node: "n2", Enabled: at(1)}
	c := storage.PushRegistration{JID: "p2.example.com", Node: "n1", Enabled: at(2), Options: []storage.PushOption{{Var: "x", Values: []string{"1"}}}}
	put("alice", a, 0)
	put("alice", b, 0)
	put("alice", c, 0)
	wantA := a
	wantA.Options = []storage.PushOption{a.Options[0], a.Options[1], {Var: "empty", Values: []string{}}}
	checkPush(t, s, "alice", wantA, b, c)
	checkPush(t, s, "bob")

	// The same jid and node again: replaced, options and time too.
	a2 := storage.PushRegistration{JID: a.JID, Node: a.Node, Enabled: at(3)}
	put("alice", a2, 0)
	checkPush(t, s, "alice", b, c, a2)

	// Beyond max, the least recently enabled others go.
	d := storage.PushRegistration{JID: "push.example.org", Node: "d", Enabled: at(4)}
	put("alice", d, 2)
	checkPush(t, s, "alice", a2, d)
	// Replacing one within the limit removes nothing.
	a3 := a2
	a3.Enabled = at(5)
	put("alice", a3, 2)
	checkPush(t, s, "alice", d, a3)

	// Deletion by jid and node, then by jid alone.
	put("alice", b, 0)
	checkPush(t, s, "alice", b, d, a3)
	del("alice", "push.example.net", "nope", 0)
	del("alice", "push.example.net", "n1", 1)
	checkPush(t, s, "alice", b, d)
	put("alice", storage.PushRegistration{JID: "push.example.net", Node: "n3", Enabled: at(6)}, 0)
	del("alice", "push.example.net", "", 2)
	checkPush(t, s, "alice", d)
	del("bob", "push.example.org", "", 0)
	checkPush(t, s, "alice", d)

	if err := s.PutPushRegistration(ctx, host, "carol", a, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutPushRegistration for a missing account: %v, want ErrNotFound", err)
	}
	if err := s.PutPushRegistration(ctx, host, "carol", a, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutPushRegistration with max for a missing account: %v, want ErrNotFound", err)
	}

	// Deleted with the account; bob's stay.
	put("bob", c, 0)
	if err := s.DeleteAccount(ctx, host, "alice"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	create(t, s, account(host, "alice", 3))
	checkPush(t, s, "alice")
	checkPush(t, s, "bob", c)
}
