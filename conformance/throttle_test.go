package conformance

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// attempt authenticates from the local address from and returns the
// server's <failure/>, or "" on success.
func attempt(t *testing.T, srv *testserver.Server, from, mech, user, password string) string {
	t.Helper()
	c := xmpptest.DialFrom(t, from, srv.Addr, srv.Domain)
	c.OpenStream()
	c.StartTLS(0)
	err := c.Auth(mech, user, password)
	if err == nil {
		return ""
	}
	if !errors.Is(err, xmpptest.ErrAuth) {
		t.Fatalf("auth from %s: %v", from, err)
	}
	return err.Error()
}

// TestThrottleAnswers: once an account is throttled for an address, the
// wrong and the right password get byte for byte the same answer, over
// PLAIN and SCRAM, for an account that exists and one that does not
// (issue 10 part 1: the right password used to get temporary-auth-failure
// and a wrong one not-authorized). The transcript rfc6120-06-sasl-throttle
// tells the rest of the story.
func TestThrottleAnswers(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "dave", "dave-secret")
	for _, user := range []string{"dave", "nobody"} {
		for i := range 10 {
			from := "127.0.9." + strconv.Itoa(10+i%2)
			if f := attempt(t, srv, from, "PLAIN", user, "guess"+strconv.Itoa(i)); !strings.Contains(f, "<not-authorized/>") {
				t.Fatalf("guess %d at %s: %q", i, user, f)
			}
		}
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"} {
			wrong := attempt(t, srv, "127.0.9.12", mech, user, "wrong")
			right := attempt(t, srv, "127.0.9.12", mech, user, user+"-secret")
			if wrong != right || !strings.Contains(wrong, "<temporary-auth-failure/>") {
				t.Errorf("%s %s: wrong password got %q, the right one %q", user, mech, wrong, right)
			}
		}
	}
}

// TestThrottleConcurrent: simultaneous wrong passwords from one address
// check at most the limit's worth of passwords (issue 10 part 3: 150 at
// once had 14 checked with a limit of 10); the others are throttled.
func TestThrottleConcurrent(t *testing.T) {
	const n, limit = 150, 10
	srv := testserver.Start(t, func(c *config.Config) {
		c.Limits.AuthFailuresPerAddress = limit
		c.Limits.MaxUnauthenticatedPerAddress = 2 * n
	})
	clients := make([]*xmpptest.Client, n)
	for i := range clients {
		c := xmpptest.DialFrom(t, "127.0.9.50", srv.Addr, srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		clients[i] = c
	}
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for i, c := range clients {
		wg.Go(func() {
			<-start
			// PLAIN: one message, the password checked at once. Each
			// guess is at another account, so only the address limits.
			// Fatal is not for a goroutine: the error is the answer.
			err := c.Auth("PLAIN", "user"+strconv.Itoa(i), "guess")
			cond := "success"
			if err != nil {
				cond = err.Error()
				if j := strings.Index(cond, "<failure"); j >= 0 {
					cond = cond[j:]
				}
			}
			mu.Lock()
			answers[cond]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	notAuthorized, throttled := 0, 0
	for a, k := range answers {
		switch {
		case strings.Contains(a, "<not-authorized/>"):
			notAuthorized += k
		case strings.Contains(a, "<temporary-auth-failure/>"):
			throttled += k
		default:
			t.Errorf("%d answers %q", k, a)
		}
	}
	if notAuthorized != limit || throttled != n-limit {
		t.Fatalf("%d passwords checked and %d throttled of %d, want %d and %d", notAuthorized, throttled, n, limit, n-limit)
	}
}

// TestFailedLoginLog: a failed login is logged with the client's address,
// the account and the reason, for fail2ban-style tools (README, "Failed
// logins"), never with the password; at most one line per address per
// minute, the next one saying how many went unlogged.
func TestFailedLoginLog(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "dave", "dave-secret")
	attempt(t, srv, "127.0.9.60", "PLAIN", "dave", "hunter2-guess")
	attempt(t, srv, "127.0.9.60", "SCRAM-SHA-256", "dave", "hunter3-guess")
	attempt(t, srv, "127.0.9.61", "SCRAM-SHA-256", "nobody", "hunter4-guess")
	lines := srv.LogLines(`msg="authentication failed"`)
	want := []string{
		`level=WARN msg="authentication failed" addr=127.0.9.60 account=dave@localhost mechanism=PLAIN reason=not-authorized`,
		`level=WARN msg="authentication failed" addr=127.0.9.61 account=nobody@localhost mechanism=SCRAM-SHA-256 reason=not-authorized`,
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) && !strings.Contains(l, want[i]) {
			t.Errorf("line %d: %s\nwant it to end with %s", i, l, want[i])
		}
	}
	for _, l := range srv.LogLines("hunter") {
		t.Errorf("a password was logged: %s", l)
	}
}
