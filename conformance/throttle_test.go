package conformance

import (
	"errors"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// attempt authenticates from the local address from and returns the
// server's <failure/>, or "" on success.
func attempt(t *testing.T, srv *testserver.Server, from, user, password string) string {
	t.Helper()
	c := xmpptest.DialFrom(t, from, srv.Addr, srv.Domain)
	c.OpenStream()
	c.StartTLS(0)
	err := c.Auth("PLAIN", user, password)
	if err == nil {
		return ""
	}
	if !errors.Is(err, xmpptest.ErrAuth) {
		t.Fatalf("auth from %s: %v", from, err)
	}
	return err.Error()
}

// TestThrottle: repeated failed logins are throttled per source address and
// per account (issue 2 part 5): 10 rejected attempts within 5 minutes, and
// then even the right password gets <temporary-auth-failure/>, while other
// addresses and other accounts are unaffected.
func TestThrottle(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "alice", "alice-secret")
	srv.AddUser(t, "bob", "bob-secret")
	srv.AddUser(t, "carol", "carol-secret")

	// Per address: 127.0.0.2 guesses at bob's and carol's passwords.
	for i := 0; i < 10; i++ {
		user := []string{"bob", "carol"}[i%2]
		if f := attempt(t, srv, "127.0.0.2", user, "guess"); !strings.Contains(f, "<not-authorized/>") {
			t.Fatalf("guess %d: %q", i, f)
		}
	}
	if f := attempt(t, srv, "127.0.0.2", "alice", "alice-secret"); !strings.Contains(f, "<temporary-auth-failure/>") {
		t.Fatalf("after 10 failures from one address: %q", f)
	}
	if f := attempt(t, srv, "127.0.0.3", "bob", "bob-secret"); f != "" {
		t.Fatalf("bob from another address: %q", f)
	}

	// Per account: guesses at alice's password from many addresses.
	for i := 0; i < 10; i++ {
		from := "127.0.1." + string(rune('1'+i%9))
		if f := attempt(t, srv, from, "alice", "guess"); !strings.Contains(f, "<not-authorized/>") {
			t.Fatalf("guess %d at alice from %s: %q", i, from, f)
		}
	}
	if f := attempt(t, srv, "127.0.2.1", "alice", "alice-secret"); !strings.Contains(f, "<temporary-auth-failure/>") {
		t.Fatalf("alice after 10 failures on her account: %q", f)
	}
	if f := attempt(t, srv, "127.0.2.1", "carol", "carol-secret"); f != "" {
		t.Fatalf("carol from the same address: %q", f)
	}
}
