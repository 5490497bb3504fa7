package bosh_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// startServer runs a server with alice and bob.
func startServer(t *testing.T, edit func(*config.Config)) *testserver.Server {
	t.Helper()
	srv := testserver.Start(t, edit)
	for _, u := range []string{"alice", "bob"} {
		srv.AddUser(t, u, u+"-secret")
	}
	return srv
}

type message struct {
	From string `xml:"from,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
}

// nextMessage reads bob's next message, skipping anything else.
func nextMessage(t *testing.T, bob *xmpptest.Client) (message, *stream.Element) {
	t.Helper()
	for {
		el := bob.MustNext()
		if el.Name.Local != "message" {
			continue
		}
		var m message
		if err := xml.Unmarshal(el.Raw, &m); err != nil {
			t.Fatal(err)
		}
		return m, el
	}
}

// A web client logs in over BOSH with SCRAM-SHA-1 and PLAIN (the session
// is over HTTPS), with the stream restart of XEP-0206 §5, chats with a TCP
// client both ways (a message for it arrives in a held request), and
// terminates the session, which ends like any other: the unavailable
// presence goes where its presence went, and the sid is gone.
func TestLoginChatTerminate(t *testing.T) {
	srv := startServer(t, nil)
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	for _, mech := range []string{"SCRAM-SHA-1", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			c := create(t, srv, 2, 1)
			// XEP-0124 §7.2, XEP-0206 §3; 'ver' is the client's 1.6,
			// lower than ours.
			want := map[string]string{"wait": "2", "hold": "1", "requests": "2", "inactivity": "60", "polling": "2", "maxpause": "120",
				"ver": "1.6", "from": "localhost", "secure": "true", "xmpp:version": "1.0", "xmpp:restartlogic": "true"}
			for k, v := range want {
				if c.created.attrs[k] != v {
					t.Errorf("creation response %s=%q, want %q: %s", k, c.created.attrs[k], v, c.created.raw)
				}
			}
			if c.created.attrs["authid"] == "" || c.created.attrs["authid"] == c.sid {
				t.Errorf("authid is not the stream id: %s", c.created.raw)
			}
			if _, ok := c.created.attrs["ack"]; ok {
				t.Errorf("acknowledgements offered: %s", c.created.raw)
			}
			if f := c.features(c.created); !strings.Contains(f, "<mechanism>"+mech+"</mechanism>") || strings.Contains(f, "starttls") {
				t.Fatalf("features: %s", f)
			}
			if f := c.auth(mech, "alice", "alice-secret"); !strings.Contains(f, "urn:ietf:params:xml:ns:xmpp-bind") {
				t.Fatalf("features after the restart: %s", f)
			}
			alice := c.bind("web-" + mech)

			body := "over BOSH with " + mech + " <&> ☃"
			c.post("", fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message><presence xmlns='jabber:client' to='%s'/>", bob.JID, xmlEscape(body), bob.JID))
			if m, el := nextMessage(t, bob); m.From != alice || m.Body != body {
				t.Fatalf("bob got %s", el.Raw)
			}

			// A request the server holds gets bob's message as soon as
			// it is routed.
			held := async(c, c.rid, "", "")
			c.rid++
			waitFor(t, "the request to be held", func() bool { h, _, _ := srv.BOSH().State(c.sid); return h == 1 })
			reply := "to the web " + mech
			bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", alice, reply))
			r := await(t, held)
			el := c.expect(r, "jabber:client", "message")
			var m message
			if err := xml.Unmarshal(el.raw, &m); err != nil || m.From != bob.JID || m.Body != reply {
				t.Fatalf("alice got %s", r.raw)
			}

			// The client terminates (XEP-0124 §13): the session ends as
			// any other, with unavailable presence from alice.
			r = c.post(" type='terminate'", "<presence xmlns='jabber:client' type='unavailable'/>")
			if r.attrs["type"] != "terminate" {
				t.Fatalf("terminate answered with %s", r.raw)
			}
			for {
				el := bob.MustNext()
				if el.Name.Local == "presence" && strings.Contains(string(el.Raw), "unavailable") {
					if !strings.Contains(string(el.Raw), alice) {
						t.Fatalf("unavailable presence: %s", el.Raw)
					}
					break
				}
			}
			if r := c.post("", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "item-not-found" {
				t.Fatalf("a request of the terminated session: %s", r.raw)
			}
		})
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Requests are processed in rid order (XEP-0124 §14.2): later ones within
// the window wait for their turn. A retransmitted rid gets the same
// response (§14.3); a rid outside the window ends the session with
// item-not-found (§14.2).
func TestRIDs(t *testing.T) {
	srv := startServer(t, nil)
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	c := login(t, srv, 1, "PLAIN", "alice", "alice-secret", "rids")

	// The response of the last request, again.
	last := c.rid - 1
	first := c.postRID(last, "", "")
	again := c.postRID(last, "", "")
	if string(again.raw) != string(first.raw) || !strings.Contains(string(first.raw), "<jid>") {
		t.Fatalf("retransmission of rid %d: %s, then %s", last, first.raw, again.raw)
	}

	// rid+1 before rid: processed after it. The window is 'requests'
	// (2): rid and rid+1.
	msg := func(n int) string {
		return fmt.Sprintf("<message xmlns='jabber:client' to='%s' type='chat'><body>%d</body></message>", bob.JID, n)
	}
	later := async(c, c.rid+1, "", msg(2))
	waitFor(t, "the request to wait for its turn", func() bool { _, a, _ := srv.BOSH().State(c.sid); return a == 1 })
	earlier := async(c, c.rid, "", msg(1))
	c.rid += 2
	await(t, earlier)
	await(t, later)
	for _, want := range []string{"1", "2"} {
		if m, el := nextMessage(t, bob); m.Body != want {
			t.Fatalf("bob got %s, want body %s", el.Raw, want)
		}
	}

	// A rid beyond the window ends the session.
	if r := c.postRID(c.rid+2, "", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "item-not-found" {
		t.Fatalf("rid beyond the window: %s", r.raw)
	}
	waitFor(t, "the session to end", func() bool { _, _, ok := srv.BOSH().State(c.sid); return !ok })
}

// A request sent again before it was answered, held or waiting for its
// turn, takes the place of the first, which is answered at once with the
// recoverable binding condition (XEP-0124 §14.3, §17.3: type='error');
// the session goes on, and what the server has for the client comes in
// the new request.
func TestRepeatedRID(t *testing.T) {
	srv := startServer(t, nil)
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	c := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "repeat")
	msg := func(body string) {
		bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", c.jid, body))
	}
	got := func(r response, body string) {
		t.Helper()
		if el, ok := r.find("jabber:client", "message"); r.attrs["type"] != "" || !ok || !strings.Contains(string(el.raw), "<body>"+body+"</body>") {
			t.Fatalf("expected the message %q: %s", body, r.raw)
		}
	}
	isError := func(what string, r response) {
		t.Helper()
		if r.attrs["type"] != "error" || r.attrs["condition"] != "" || len(r.els) != 0 {
			t.Fatalf("%s: %s; want <body type='error'/>", what, r.raw)
		}
	}

	// Held.
	first := async(c, c.rid, "", "")
	heldIs(t, srv, c, 1)
	second := async(c, c.rid, "", "")
	isError("the first request", await(t, first))
	heldIs(t, srv, c, 1)
	msg("to the second")
	got(await(t, second), "to the second")
	c.rid++

	// Waiting for its turn (rid+1 before rid; not empty, or rid, empty,
	// would come too often: TestOveractivity).
	first = async(c, c.rid+1, "", nothing)
	waitFor(t, "the request to wait for its turn", func() bool { _, a, _ := srv.BOSH().State(c.sid); return a == 1 })
	second = async(c, c.rid+1, "", nothing)
	isError("the first request ahead of its turn", await(t, first))
	if r := c.post("", ""); r.attrs["type"] != "" {
		t.Fatalf("the request before: %s", r.raw)
	}
	c.rid++
	heldIs(t, srv, c, 1)
	msg("to the later")
	got(await(t, second), "to the later")
	if _, _, ok := srv.BOSH().State(c.sid); !ok {
		t.Fatal("the session ended")
	}
}

// A rid too old to have its response kept ends the session too.
func TestOldRID(t *testing.T) {
	srv := startServer(t, nil)
	c := login(t, srv, 1, "PLAIN", "alice", "alice-secret", "old")
	if r := c.postRID(1000, "", ""); r.attrs["type"] != "terminate" || r.attrs["condition"] != "item-not-found" {
		t.Fatalf("old rid: %s", r.raw)
	}
}

// With hold=1, a second request answers the held one at once, empty
// (XEP-0124 §8); a held request is answered empty after 'wait'.
func TestHoldAndWait(t *testing.T) {
	srv := startServer(t, nil)
	c := login(t, srv, 1, "PLAIN", "alice", "alice-secret", "hold")
	start := time.Now()
	if r := c.post("", ""); len(r.els) != 0 || r.attrs["type"] != "" {
		t.Fatalf("after wait: %s", r.raw)
	} else if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("an empty response after %v, before wait='1'", d)
	}

	c2 := login(t, srv, 30, "PLAIN", "alice", "alice-secret", "hold2")
	a := async(c2, c2.rid, "", "")
	waitFor(t, "a held request", func() bool { h, _, _ := srv.BOSH().State(c2.sid); return h == 1 })
	// The second request has something to send (an IQ result, which
	// nobody answers): an empty one, so soon, would be too frequent
	// (TestOveractivity).
	b := async(c2, c2.rid+1, "", nothing)
	c2.rid += 2
	if r := await(t, a); len(r.els) != 0 {
		t.Fatalf("the older request: %s", r.raw)
	}
	waitFor(t, "the newer request to be held", func() bool { h, _, _ := srv.BOSH().State(c2.sid); return h == 1 })
	// So does the request that terminates the session, which gets the
	// end.
	if r := c2.post(" type='terminate'", ""); r.attrs["type"] != "terminate" {
		t.Fatalf("terminate: %s", r.raw)
	}
	if r := await(t, b); len(r.els) != 0 || r.attrs["type"] != "" {
		t.Fatalf("the request held before terminate: %s", r.raw)
	}
}

// Bad requests get the conditions of XEP-0124 §17.2; a method other than
// POST or OPTIONS is 405.
func TestBadRequests(t *testing.T) {
	srv := startServer(t, nil)
	hc := httpClient(t, srv)
	url := boshURL(srv)
	ns := "xmlns='http://jabber.org/protocol/httpbind'"
	for _, tc := range []struct {
		name, body string
		status     int
		cond       string
	}{
		{"unknown sid", "<body " + ns + " sid='nope' rid='5'/>", 200, "item-not-found"},
		{"not XML", "<body " + ns + " rid='5'><message>", 200, "bad-request"},
		{"not a body", "<bodies " + ns + " rid='5'/>", 200, "bad-request"},
		{"wrong namespace", "<body xmlns='jabber:client' rid='5' to='localhost' wait='1' hold='1'/>", 200, "bad-request"},
		{"no rid", "<body " + ns + " to='localhost' wait='1' hold='1'/>", 200, "bad-request"},
		{"a DTD", "<!DOCTYPE body><body " + ns + " rid='5' to='localhost' wait='1' hold='1'/>", 200, "bad-request"},
		{"bad payload", "<body " + ns + " rid='5' to='localhost' wait='1' hold='1'><message xmlns='jabber:client'><!-- c --></message></body>", 200, "bad-request"},
		{"unknown host", "<body " + ns + " rid='5' to='example.net' wait='1' hold='1'/>", 200, "host-unknown"},
		{"no wait", "<body " + ns + " rid='5' to='localhost' hold='1'/>", 200, "bad-request"},
		{"too large", "<body " + ns + " rid='5'>" + strings.Repeat(" ", srv.Config.Limits.MaxStanzaBytes+8192) + "</body>", 413, "policy-violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, hc, url, tc.body, nil)
			if r.status != tc.status || r.attrs["type"] != "terminate" || r.attrs["condition"] != tc.cond {
				t.Fatalf("%d %s; want %d with condition %s", r.status, r.raw, tc.status, tc.cond)
			}
		})
	}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("GET: %s %v", resp.Status, resp.Header)
	}

	// A bad request of a session ends it (XEP-0124 §17.2): its held
	// request gets the condition too, and the sid is gone.
	big := fmt.Sprintf("<message xmlns='jabber:client'><body>%s</body></message>", strings.Repeat("a", srv.Config.Limits.MaxStanzaBytes))
	for _, tc := range []struct {
		name, body string
		status     int
		cond       string
	}{
		{"not XML", "<body " + ns + " sid='%s' rid='%d'><iq></body>", 200, "bad-request"},
		{"a DTD", "<!DOCTYPE body><body " + ns + " sid='%s' rid='%d'/>", 200, "bad-request"},
		{"an element too large", "<body " + ns + " sid='%s' rid='%d'>" + big + "</body>", 200, "policy-violation"},
		{"too large", "<body " + ns + " sid='%s' rid='%d'>" + strings.Repeat(" ", srv.Config.Limits.MaxStanzaBytes+8192) + "</body>", 413, "policy-violation"},
	} {
		t.Run("session/"+tc.name, func(t *testing.T) {
			c := create(t, srv, 30, 1)
			held := async(c, c.rid, "", "")
			c.rid++
			waitFor(t, "a held request", func() bool { h, _, _ := srv.BOSH().State(c.sid); return h == 1 })
			r := do(t, hc, url, fmt.Sprintf(tc.body, c.sid, c.rid), nil)
			if r.status != tc.status || !isTerminate(r, tc.cond) {
				t.Fatalf("%d %s; want %d with condition %s", r.status, r.raw, tc.status, tc.cond)
			}
			if r := await(t, held); !isTerminate(r, tc.cond) {
				t.Fatalf("the held request: %s", r.raw)
			}
			if _, _, ok := srv.BOSH().State(c.sid); ok {
				t.Fatal("the session outlived its terminal condition")
			}
		})
	}
}

// A client that stops sending requests loses its session after
// 'inactivity' (XEP-0124 §10): it ends like any other, with unavailable
// presence, and its sid is gone.
func TestInactivity(t *testing.T) {
	srv := startServer(t, func(c *config.Config) { c.HTTP.BOSHInactivity.Duration = 200 * time.Millisecond })
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "tcp")
	c := login(t, srv, 1, "SCRAM-SHA-1", "alice", "alice-secret", "vanishing")
	if c.created.attrs["inactivity"] != "1" {
		t.Fatalf("inactivity: %s", c.created.raw)
	}
	c.post("", "<presence xmlns='jabber:client' to='"+bob.JID+"'/>")
	// The client vanishes: no more requests.
	for {
		el := bob.MustNext()
		if el.Name.Local == "presence" && strings.Contains(string(el.Raw), "unavailable") {
			break
		}
	}
	waitFor(t, "the session to go", func() bool { _, _, ok := srv.BOSH().State(c.sid); return !ok })
	if r := c.post("", ""); r.attrs["condition"] != "item-not-found" {
		t.Fatalf("a request after inactivity: %s", r.raw)
	}
}

// Pages of an allowed origin get CORS headers, after a preflight; others
// are refused, as on WebSocket.
func TestCORS(t *testing.T) {
	srv := startServer(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"https://chat.example.org"} })
	hc := httpClient(t, srv)
	url := boshURL(srv)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := preflight("https://chat.example.org")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.org" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") || !strings.EqualFold(resp.Header.Get("Access-Control-Allow-Headers"), "content-type") {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
	if resp := preflight("https://evil.example"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight of another origin: %s %v", resp.Status, resp.Header)
	}
	// The server's own origin is allowed.
	if resp := preflight("https://" + srv.HTTPSAddr); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight of the server's origin: %s %v", resp.Status, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='1' hold='1'/>"))
	req.Header.Set("Origin", "https://chat.example.org")
	post, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(post.Body)
	post.Body.Close()
	if post.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.org" || !strings.Contains(string(b), "sid=") {
		t.Fatalf("POST from an allowed page: %v %s", post.Header, b)
	}
}

// A stream error ends the session with remote-stream-error, carrying the
// error (XEP-0206 §7), even when no request was open at the time: the
// client's next request gets it.
func TestStreamError(t *testing.T) {
	srv := startServer(t, nil)
	c := login(t, srv, 1, "PLAIN", "alice", "alice-secret", "twice")
	// Binding the same resource over TCP replaces the session
	// (RFC 6120 §7.7.2.2).
	xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "twice")
	waitFor(t, "the session to end", func() bool {
		srv := srv.BOSH()
		h, _, _ := srv.State(c.sid)
		return h == 0 && bosh.Ended(srv, c.sid)
	})
	r := c.post("", "")
	el, ok := r.find(nsStreams, "error")
	if r.attrs["type"] != "terminate" || r.attrs["condition"] != "remote-stream-error" || !ok || !strings.Contains(string(el.raw), "conflict") {
		t.Fatalf("after a conflict: %s", r.raw)
	}
}

// A request waiting for a rid that never comes (the client would have
// retransmitted it within 'wait') ends the session with item-not-found.
func TestRIDGap(t *testing.T) {
	srv := startServer(t, nil)
	c := login(t, srv, 1, "PLAIN", "alice", "alice-secret", "gap")
	r := await(t, async(c, c.rid+1, "", ""))
	if r.attrs["type"] != "terminate" || r.attrs["condition"] != "item-not-found" {
		t.Fatalf("a gap never filled: %s", r.raw)
	}
	waitFor(t, "the session to end", func() bool { _, _, ok := srv.BOSH().State(c.sid); return !ok })
}
