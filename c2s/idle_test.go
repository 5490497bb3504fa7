package c2s_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// An idle session holds one goroutine, its parked reader: no writer
// waiting on its queue and no idle-ping goroutine (a timer), however much
// was written to it before (its roster, its siblings' presence). The
// test clients run no goroutines of their own.
func TestIdleSessionGoroutines(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "alice", "alice-secret")
	// The server's own goroutines settle before counting.
	settled := func(max int) int {
		deadline := time.Now().Add(xmpptest.Timeout)
		for {
			n := runtime.NumGoroutine()
			if n <= max || time.Now().After(deadline) {
				return n
			}
			runtime.Gosched()
		}
	}
	warm := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "warm")
	warm.Send("<presence/><iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
	for el := warm.MustNext(); el.Name.Local != "iq"; el = warm.MustNext() {
	}
	base := runtime.NumGoroutine()
	const n = 20
	for i := range n {
		user := "user" + strconv.Itoa(i)
		srv.AddUser(t, user, "pw")
		c := xmpptest.Login(t, srv.Addr, srv.Domain, user, "pw", "SCRAM-SHA-256", "r")
		c.Send("<presence/><iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
		for el := c.MustNext(); el.Name.Local != "iq" || el.AttrValue("id") != "roster"; el = c.MustNext() {
		}
		t.Cleanup(func() { c.Close() })
	}
	// One per session, and a few of the server's that come and go.
	if got := settled(base + n + 3); got > base+n+3 {
		t.Errorf("%d goroutines with %d idle sessions, %d before: more than one per session", got, n, base)
	} else {
		t.Logf("%d goroutines with %d idle sessions, %d before", got, n, base)
	}
}
