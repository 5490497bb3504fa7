package server_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/storage"
)

// TestSCRAMIterationsSetting: passwords set by in-band registration
// (XEP-0077 §3.1) and changed in-band (§3.3) get the auth.scram_iterations
// in force, a reload applying to the next one; an account whose keys were
// stored with 4096 iterations keeps them and keeps logging in with SCRAM
// and PLAIN.
func TestSCRAMIterationsSetting(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) {
		c.Registration.Enabled = true
		c.Auth.SCRAMIterations = 5000
	})
	ctx := context.Background()
	old := jid.MustParse("old@" + srv.Domain)
	if err := auth.CreateAccount(ctx, srv.Store(), old, "old-secret", 4096); err != nil {
		t.Fatal(err)
	}
	iterations := func(user string) int {
		t.Helper()
		a, err := srv.Store().Account(ctx, srv.Domain, user)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for h, k := range a.Keys {
			if n != 0 && k.Iterations != n {
				t.Errorf("%s: %s keys have %d iterations, others %d", user, h, k.Iterations, n)
			}
			n = k.Iterations
		}
		if len(a.Keys) != len(storage.Hashes) {
			t.Errorf("%s: keys of %d families", user, len(a.Keys))
		}
		return n
	}
	registerInBand := func(user, password string) {
		t.Helper()
		c := xmpptest.Dial(t, srv.Addr, srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		c.Send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>" + user +
			"</username><password>" + password + "</password></query></iq>")
		if el := c.MustNext(); xmpptest.Attr(el, "type") != "result" {
			t.Fatalf("register %s: %s", user, el.Raw)
		}
	}

	registerInBand("first", "first-secret")
	if n := iterations("first"); n != 5000 {
		t.Errorf("registered with %d iterations, want 5000", n)
	}

	next := *srv.Config
	next.Auth.SCRAMIterations = 20000
	if err := srv.Reload(&next); err != nil {
		t.Fatal(err)
	}
	registerInBand("second", "second-secret")
	if n := iterations("second"); n != 20000 {
		t.Errorf("registered after the reload with %d iterations, want 20000", n)
	}
	if n := iterations("first"); n != 5000 {
		t.Errorf("the reload changed stored keys to %d iterations", n)
	}

	// A password changed in-band gets the new count.
	first := xmpptest.Login(t, srv.Addr, srv.Domain, "first", "first-secret", "SCRAM-SHA-256", "r")
	first.Send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>first</username><password>new-secret</password></query></iq>")
	if el := first.MustNext(); xmpptest.Attr(el, "type") != "result" {
		t.Fatalf("password change: %s", el.Raw)
	}
	if n := iterations("first"); n != 20000 {
		t.Errorf("password changed with %d iterations, want 20000", n)
	}

	// The account from before keeps its 4096 and logs in either way.
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} {
		c := xmpptest.Login(t, srv.Addr, srv.Domain, "old", "old-secret", mech, mech)
		if !strings.HasPrefix(c.JID, old.String()+"/") {
			t.Errorf("%s: bound %q", mech, c.JID)
		}
	}
	if n := iterations("old"); n != 4096 {
		t.Errorf("old account now has %d iterations", n)
	}
	xmpptest.Login(t, srv.Addr, srv.Domain, "second", "second-secret", "SCRAM-SHA-256", "r")
}
