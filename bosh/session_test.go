package bosh_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/fakeclock"
	"github.com/starling-xmpp/starling/internal/testserver"
)

// Payloads of test requests.
const (
	// ping is answered at once (XEP-0199).
	ping = "<iq xmlns='jabber:client' type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
	// nothing is a payload nobody answers: an IQ result.
	nothing = "<iq xmlns='jabber:client' type='result' id='nothing' to='localhost'/>"
)

// polling is the 'polling' the server announces (XEP-0124 §7.2).
const polling = 2 * time.Second

// newClock gives the server's BOSH handler a fake clock for the arrival
// and response times of requests (bosh.SetClock): it moves only when told
// to.
func newClock(srv *testserver.Server) *fakeclock.Clock {
	c := fakeclock.New(time.Unix(1_700_000_000, 0))
	bosh.SetClock(srv.BOSH(), c.Now)
	return c
}
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// isTerminate reports whether r ends the session with cond.
func isTerminate(r response, cond string) bool {
	return r.attrs["type"] == "terminate" && r.attrs["condition"] == cond
}

// heldIs waits until session c has n requests held.
func heldIs(t *testing.T, srv *testserver.Server, c *client, n int) {
	t.Helper()
	waitFor(t, "requests to be held", func() bool { h, _, _ := srv.BOSH().State(c.sid); return h == n })
}

// gone waits until session c has ended.
func gone(t *testing.T, srv *testserver.Server, c *client, what string) {
	t.Helper()
	waitFor(t, what, func() bool { _, _, ok := srv.BOSH().State(c.sid); return !ok })
}

// A client that asks for acknowledgements (ack='1', XEP-0124 §7.1) gets
// them (§9.1): the creation response's 'ack' is the rid of the creation
// request, and every response has 'ack' with the highest rid received
// (with all rids before it), left out when that is the rid answered. The
// client's acknowledgements (§9.2) say which responses it got: one it
// missed is reported at once in the next response ('report' and 'time',
// once), and stays buffered for retransmission until acknowledged
// (§14.3), even when it is more than 'requests' rids old.
func TestAcknowledgements(t *testing.T) {
	srv := startServer(t, nil)
	clk := newClock(srv)
	if c := create(t, srv, 30, 1); c.created.attrs["ack"] != "" {
		t.Fatalf("acknowledgements offered to a client that did not ask: %s", c.created.raw)
	}
	c := createWith(t, srv, 30, 1, " ack='1'")
	if c.created.attrs["ack"] != "1000" {
		t.Fatalf("creation response: %s", c.created.raw)
	}
	c.auth("PLAIN", "alice", "alice-secret")
	c.bind("acks")

	// §9.1: the held request is answered when the next arrives, which it
	// acknowledges; the next one's own response has no 'ack'.
	held := async(c, c.rid, "", "")
	heldIs(t, srv, c, 1)
	r := c.postRID(c.rid+1, "", ping)
	if h := await(t, held); h.attrs["ack"] != itoa(c.rid+1) {
		t.Fatalf("the held request's response acknowledges %q, want %d: %s", h.attrs["ack"], c.rid+1, h.raw)
	}
	if _, ok := r.attrs["ack"]; ok || len(r.els) == 0 {
		t.Fatalf("response to the last rid: %s", r.raw)
	}
	c.rid += 2

	// §9.2: the client misses the response to rid missed. The next
	// request says so, empty: the server answers it at once (not after
	// 'wait'), reporting the missed response and how long ago it was
	// sent.
	missed := c.rid
	lost := c.post("", ping)
	clk.Advance(850 * time.Millisecond)
	ack := " ack='" + itoa(missed-1) + "'"
	if r := c.post(ack, ""); r.attrs["report"] != itoa(missed) || r.attrs["time"] != "850" || len(r.els) != 0 {
		t.Fatalf("response to a request that acknowledges %d: %s", missed-1, r.raw)
	}
	// Reported once.
	if r := c.post(ack, ping); r.attrs["report"] != "" {
		t.Fatalf("reported again: %s", r.raw)
	}
	// Unacknowledged, it is still there, though more than 'requests'
	// (2) rids old.
	if r := c.postRID(missed, "", ping); string(r.raw) != string(lost.raw) {
		t.Fatalf("retransmission of rid %d: %s, want %s", missed, r.raw, lost.raw)
	}
	// A request without 'ack' acknowledges every response before it
	// (§9.2): then the missed one is gone.
	c.post("", ping)
	if r := c.postRID(missed, "", ping); !isTerminate(r, "item-not-found") {
		t.Fatalf("retransmission of an acknowledged rid: %s", r.raw)
	}
}

// A client may pause its session for 'maxpause' seconds at most
// (XEP-0124 §10): the pause request is answered at once, without payloads,
// and the session outlives the inactivity period until the client's next
// request, after which 'inactivity' holds again. A longer pause ends the
// session with policy-violation.
func TestPause(t *testing.T) {
	srv := startServer(t, func(c *config.Config) { c.HTTP.BOSHInactivity.Duration = 200 * time.Millisecond })
	q := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "pausing")
	if q.created.attrs["maxpause"] != "120" {
		t.Fatalf("creation response: %s", q.created.raw)
	}
	// At once, not after 'wait' (30s).
	if r := q.post(" pause='120'", ""); r.attrs["type"] != "" || len(r.els) != 0 {
		t.Fatalf("response to the pause request: %s", r.raw)
	}
	if r := q.post(" pause='121'", ""); !isTerminate(r, "policy-violation") {
		t.Fatalf("a pause longer than maxpause: %s", r.raw)
	}
	gone(t, srv, q, "the session to end")

	p := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "paused")
	// A session that does not pause, for comparison; a held request keeps
	// it until the pause.
	ref := login(t, srv, 30, "PLAIN", "bob", "bob-secret", "unpaused")
	refHeld := async(ref, ref.rid, "", "")
	ref.rid++
	heldIs(t, srv, ref, 1)
	// A message for p, which holds no request: it waits.
	msg := "<message xmlns='jabber:client' type='chat' to='" + p.jid + "'><body>while paused</body></message>"
	if r := ref.post("", msg+ping); r.attrs["type"] != "" {
		t.Fatalf("the unpaused session: %s", r.raw)
	}
	await(t, refHeld)
	waitFor(t, "the message to wait for p", func() bool { return bosh.Waiting(srv.BOSH(), p.sid) > 0 })

	// The pause request's response has no payload: the message waits on.
	if r := p.post(" pause='3'", ""); r.attrs["type"] != "" || len(r.els) != 0 {
		t.Fatalf("response to the pause request: %s", r.raw)
	}
	// ref's last request comes after the pause: 'inactivity' after it,
	// the paused session would be gone too, but for the pause.
	if r := ref.post("", ping); r.attrs["type"] != "" {
		t.Fatalf("the unpaused session: %s", r.raw)
	}
	gone(t, srv, ref, "the unpaused session to end")
	if _, _, ok := srv.BOSH().State(p.sid); !ok {
		t.Fatal("the paused session ended with the inactivity period")
	}
	// The next request ends the pause: the session lasts 'inactivity'
	// after its response, not the rest of the pause.
	r := p.post("", "")
	if el, ok := r.find("jabber:client", "message"); r.attrs["type"] != "" || !ok || !strings.Contains(string(el.raw), "while paused") {
		t.Fatalf("a request after the pause: %s", r.raw)
	}
	start := time.Now()
	gone(t, srv, p, "the session to end after the inactivity period")
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("the session lasted %v after the pause ended: still paused", d)
	}
}

// A client may have 'requests' requests open at once, one more to pause
// or terminate the session (XEP-0124 §11); more end the session with
// policy-violation. So does an empty request while all the others are
// still open, less than 'polling' seconds after the one before it.
func TestOveractivity(t *testing.T) {
	srv := startServer(t, nil)
	clk := newClock(srv)
	if c := create(t, srv, 30, 1); c.created.attrs["polling"] != "2" || c.created.attrs["requests"] != "2" {
		t.Fatalf("creation response: %s", c.created.raw)
	}

	t.Run("too frequent", func(t *testing.T) {
		c := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "frequent")
		held := async(c, c.rid, "", "")
		c.rid++
		heldIs(t, srv, c, 1)
		clk.Advance(polling - time.Millisecond)
		if r := c.post("", ""); !isTerminate(r, "policy-violation") {
			t.Fatalf("an empty request too soon: %s", r.raw)
		}
		if r := await(t, held); !isTerminate(r, "policy-violation") {
			t.Fatalf("the held request: %s", r.raw)
		}
		gone(t, srv, c, "the session to end")
	})

	t.Run("not too frequent", func(t *testing.T) {
		c := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "patient")
		held := async(c, c.rid, "", "")
		c.rid++
		heldIs(t, srv, c, 1)
		clk.Advance(polling)
		next := async(c, c.rid, "", "")
		c.rid++
		if r := await(t, held); r.attrs["type"] != "" || len(r.els) != 0 {
			t.Fatalf("the held request: %s", r.raw)
		}
		heldIs(t, srv, c, 1)
		// With a payload, at once: not a poll.
		if r := c.post("", ping); r.attrs["type"] != "" {
			t.Fatalf("a request with a payload: %s", r.raw)
		}
		if r := await(t, next); r.attrs["type"] != "" {
			t.Fatalf("the held request: %s", r.raw)
		}
	})

	// An empty request and a terminate sent together, the terminate
	// arriving first: the terminate is the one more, so the empty request
	// is not too frequent.
	t.Run("terminate first", func(t *testing.T) {
		c := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "leaving")
		term := async(c, c.rid+1, " type='terminate'", "")
		waitFor(t, "the request to wait for its turn", func() bool { _, a, _ := srv.BOSH().State(c.sid); return a == 1 })
		if r := c.post("", ""); r.attrs["type"] != "" {
			t.Fatalf("the empty request: %s", r.raw)
		}
		if r := await(t, term); r.attrs["type"] != "terminate" || r.attrs["condition"] != "" {
			t.Fatalf("terminate: %s", r.raw)
		}
	})

	// A request with a payload and an empty one sent together, the one
	// with the payload (the later rid) arriving first: the last request
	// of the two is not empty, so they are not too frequent (§11), in
	// whichever order they arrive (§14.2).
	t.Run("later first", func(t *testing.T) {
		c := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "reordered")
		later := async(c, c.rid+1, "", nothing)
		waitFor(t, "the request to wait for its turn", func() bool { _, a, _ := srv.BOSH().State(c.sid); return a == 1 })
		if r := c.post("", ""); r.attrs["type"] != "" {
			t.Fatalf("the empty request: %s", r.raw)
		}
		c.rid++
		heldIs(t, srv, c, 1)
		if r := c.post(" type='terminate'", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "" {
			t.Fatalf("terminate: %s", r.raw)
		}
		if r := await(t, later); r.attrs["type"] != "" {
			t.Fatalf("the later request: %s", r.raw)
		}
	})

	// One request held (rid), one ahead of its turn (rid+2), then rid+1:
	// three open at once.
	threeOpen := func(t *testing.T, resource, attrs string) (c *client, held, later <-chan response, r response) {
		c = login(t, srv, 30, "PLAIN", "alice", "alice-secret", resource)
		held = async(c, c.rid, "", "")
		heldIs(t, srv, c, 1)
		later = async(c, c.rid+2, "", nothing)
		waitFor(t, "the request to wait for its turn", func() bool { _, a, _ := srv.BOSH().State(c.sid); return a == 1 })
		r = c.postRID(c.rid+1, attrs, "")
		c.rid += 3
		return c, held, later, r
	}

	t.Run("too many", func(t *testing.T) {
		c, held, later, r := threeOpen(t, "many", "")
		for what, r := range map[string]response{"the third request": r, "the held request": await(t, held), "the later request": await(t, later)} {
			if !isTerminate(r, "policy-violation") {
				t.Fatalf("%s: %s", what, r.raw)
			}
		}
		gone(t, srv, c, "the session to end")
	})

	t.Run("one more to pause", func(t *testing.T) {
		c, held, later, r := threeOpen(t, "pausing", " pause='60'")
		if r.attrs["type"] != "" {
			t.Fatalf("the pause request: %s", r.raw)
		}
		if r := await(t, held); r.attrs["type"] != "" {
			t.Fatalf("the held request: %s", r.raw)
		}
		heldIs(t, srv, c, 1) // later, in its turn
		if r := c.post(" type='terminate'", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "" {
			t.Fatalf("terminate: %s", r.raw)
		}
		if r := await(t, later); r.attrs["condition"] != "" {
			t.Fatalf("the later request: %s", r.raw)
		}
	})
}

// In a polling session ('hold' 0, XEP-0124 §12) every request is answered
// at once. An empty request less than 'polling' seconds after an empty one
// whose response had no payload ends the session with policy-violation;
// one after a response with a payload, or 'polling' seconds later, is
// fine.
func TestPolling(t *testing.T) {
	srv := startServer(t, nil)
	clk := newClock(srv)
	c := create(t, srv, 1, 0)
	if c.created.attrs["hold"] != "0" || c.created.attrs["requests"] != "1" || c.created.attrs["polling"] != "2" {
		t.Fatalf("creation response: %s", c.created.raw)
	}
	if _, ok := c.created.find(nsStreams, "features"); !ok || c.created.attrs["authid"] == "" {
		t.Fatalf("creation response without the features or authid: %s", c.created.raw)
	}
	// At once after the features: there is nothing more to send before
	// authentication.
	if r := c.post("", ""); r.attrs["type"] != "" || len(r.els) != 0 {
		t.Fatalf("a poll after a response with payload: %s", r.raw)
	}
	clk.Advance(polling)
	if r := c.post("", ""); r.attrs["type"] != "" || len(r.els) != 0 {
		t.Fatalf("a poll 'polling' seconds after the last: %s", r.raw)
	}
	clk.Advance(polling - time.Millisecond)
	if r := c.post("", ""); !isTerminate(r, "policy-violation") {
		t.Fatalf("a poll too soon after an empty response: %s", r.raw)
	}
	gone(t, srv, c, "the session to end")
}

// The session creation response of a polling session ('hold' or 'wait'
// 0, XEP-0124 §12), answered at once, has 'authid' and the stream
// features every time (XEP-0206's Session Creation Response), whether c2s
// has written them when the creation request arrives or not; so does the
// response to a stream restart (XEP-0206 §5).
func TestPollingCreation(t *testing.T) {
	srv := startServer(t, nil)
	clk := newClock(srv)
	for _, tc := range []struct{ wait, hold int }{{1, 0}, {0, 1}, {0, 0}} {
		t.Run(fmt.Sprintf("wait=%d,hold=%d", tc.wait, tc.hold), func(t *testing.T) {
			for range 20 {
				c := create(t, srv, tc.wait, tc.hold)
				if _, ok := c.created.find(nsStreams, "features"); !ok || c.created.attrs["authid"] == "" {
					t.Fatalf("creation response without the features or authid: %s", c.created.raw)
				}
				c.post(" type='terminate'", "")
			}
			c := create(t, srv, tc.wait, tc.hold)
			r := c.post("", "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>")
			// Answered at once: the success may come in the next
			// response, polled for 'polling' later.
			if _, ok := r.find(nsSASL, "success"); !ok {
				waitFor(t, "the SASL success", func() bool { return bosh.Waiting(srv.BOSH(), c.sid) > 0 })
				clk.Advance(polling)
				if r = c.post("", ""); !strings.Contains(string(r.raw), "<success") {
					t.Fatalf("no SASL success: %s", r.raw)
				}
			}
			r = c.post(" to='localhost' xml:lang='en' xmpp:restart='true'", "")
			if f, ok := r.find(nsStreams, "features"); !ok || !strings.Contains(string(f.raw), "urn:ietf:params:xml:ns:xmpp-bind") {
				t.Fatalf("restart response without the features: %s", r.raw)
			}
		})
	}
}
