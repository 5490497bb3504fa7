package s2s_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/server"
	"github.com/starling-xmpp/starling/stream"
)

// world is two Starling servers federating on loopback: a.test and b.test,
// found through a DNS server of the test's own, with certificates from a
// test CA that they trust (trustCA) or not (dialback only).
type world struct {
	fed  *testserver.Federation
	a, b *testserver.Server
}

func newWorld(t testing.TB, trustCA bool, edit func(*config.Config)) *world {
	t.Helper()
	return newWorldTLS(t, trustCA, false, edit)
}

// newWorldTLS is newWorld with, when direct, servers reachable only by
// direct TLS (XEP-0368: _xmpps-server records; the STARTTLS port is
// published but closed).
func newWorldTLS(t testing.TB, trustCA, direct bool, edit func(*config.Config)) *world {
	t.Helper()
	w := &world{fed: testserver.NewFederation(t)}
	start := func(domain string) *testserver.Server {
		return testserver.Start(t, func(c *config.Config) {
			w.fed.Configure(t, c, domain, trustCA)
			if direct {
				port := testbin.FreePort(t)
				c.S2S.DirectTLSListen = []string{fmt.Sprintf("127.0.0.1:%d", port)}
				w.fed.DNS.SetSRV("_xmpps-server._tcp."+domain, dnstest.SRV{Target: "xmpp." + domain, Port: uint16(port)})
				w.fed.DNS.SetSRV("_xmpp-server._tcp."+domain, dnstest.SRV{Target: "xmpp." + domain, Port: uint16(testbin.FreePort(t))})
			}
			if edit != nil {
				edit(c)
			}
		})
	}
	w.a = start("a.test")
	w.b = start("b.test")
	w.a.AddUser(t, "alice", "alice-pw")
	w.b.AddUser(t, "bob", "bob-pw")
	return w
}

// expect reads from c until an element containing every substring
// arrives.
func expect(t *testing.T, c *xmpptest.Client, subs ...string) *stream.Element {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer c.Conn.SetReadDeadline(time.Time{})
	var seen []string
	for {
		el, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for %q: %v; received meanwhile: %q", subs, err, seen)
		}
		seen = append(seen, string(el.Raw))
		ok := true
		for _, s := range subs {
			if !bytes.Contains(el.Raw, []byte(s)) {
				ok = false
			}
		}
		if ok {
			return el
		}
	}
}

func TestMessagesBothWays(t *testing.T) {
	for _, mode := range []struct {
		name    string
		trustCA bool
		method  string
	}{{"EXTERNAL", true, "method=EXTERNAL"}, {"dialback", false, "method=dialback"}} {
		t.Run(mode.name, func(t *testing.T) {
			w := newWorld(t, mode.trustCA, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
			alice := xmpptest.Login(t, w.a.Addr, "a.test", "alice", "alice-pw", "SCRAM-SHA-256", "phone")
			bob := xmpptest.Login(t, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
			alice.Send("<presence/>")
			bob.Send("<presence/>")
			expect(t, alice, "<presence")
			expect(t, bob, "<presence")
			alice.Send("<message to='bob@b.test' type='chat' id='m1'><body>hello bob</body></message>")
			expect(t, bob, "from='alice@a.test/phone'", "hello bob")
			bob.Send("<message to='alice@a.test/phone' type='chat' id='m2'><body>hi alice</body></message>")
			expect(t, alice, "from='bob@b.test/laptop'", "hi alice")
			// A remote ping of the server, answered by it (XEP-0199).
			alice.Send("<iq to='b.test' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
			expect(t, alice, "id='p1'", "type='result'", "from='b.test'")
			// The operator's view (`starling s2s`, through the admin socket).
			// With valid certificates, a's stream to b is bidirectional
			// (XEP-0288): b answers over it; with dialback only, b opens
			// its own.
			statusA, err := server.Admin(t.Context(), w.a.Config, "s2s")
			if err != nil {
				t.Fatal(err)
			}
			statusB, err := server.Admin(t.Context(), w.b.Config, "s2s")
			if err != nil {
				t.Fatal(err)
			}
			wantA := []string{"out a.test -> b.test up " + mode.method}
			wantB := []string{"in a.test ", "authenticated=[a.test -> b.test]"}
			if mode.trustCA {
				wantB = append(wantB, "out b.test -> a.test up method=bidi")
			} else {
				wantA = append(wantA, "in b.test ", "authenticated=[b.test -> a.test]")
				wantB = append(wantB, "out b.test -> a.test up method=dialback")
			}
			for _, c := range []struct {
				status string
				want   []string
			}{{statusA, wantA}, {statusB, wantB}} {
				for _, want := range c.want {
					if !strings.Contains(c.status, want) {
						t.Errorf("starling s2s: want %q in:\n%s", want, c.status)
					}
				}
			}
			// The metrics endpoint counts the same streams.
			inA := "0"
			if !mode.trustCA {
				inA = "1"
			}
			for _, c := range []struct {
				srv  *testserver.Server
				want []string
			}{
				{w.a, []string{`starling_s2s_streams{direction="out",state="up"} 1`, `starling_s2s_streams{direction="in",state="authenticated"} ` + inA}},
				{w.b, []string{`starling_s2s_streams{direction="out",state="up"} 1`, `starling_s2s_streams{direction="in",state="authenticated"} 1`}},
			} {
				resp, err := http.Get("http://" + c.srv.MetricsAddr().String() + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, want := range c.want {
					if !strings.Contains(string(body), "\n"+want+"\n") {
						t.Errorf("%s: no %q in the metrics", c.srv.Domain, want)
					}
				}
			}
			for _, srv := range []*testserver.Server{w.a, w.b} {
				if got := srv.LogLines("s2s stream authenticated"); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), strings.TrimPrefix(mode.method, "")) {
					t.Errorf("%s: expected an authenticated stream with %s, log: %q", srv.Domain, mode.method, got)
				}
			}
		})
	}
}

// TestDirectTLS federates over direct TLS only (XEP-0368): the servers
// find each other by _xmpps-server records, connect with TLS at once and
// ALPN xmpp-server, and authenticate with SASL EXTERNAL.
func TestDirectTLS(t *testing.T) {
	w := newWorldTLS(t, true, true, nil)
	alice := xmpptest.Login(t, w.a.Addr, "a.test", "alice", "alice-pw", "SCRAM-SHA-256", "phone")
	bob := xmpptest.Login(t, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
	alice.Send("<message to='bob@b.test/laptop' type='chat' id='m1'><body>over direct TLS</body></message>")
	expect(t, bob, "from='alice@a.test/phone'", "over direct TLS")
	bob.Send("<message to='alice@a.test/phone' type='chat' id='m2'><body>and back</body></message>")
	expect(t, alice, "from='bob@b.test/laptop'", "and back")
	status, err := server.Admin(t.Context(), w.b.Config, "s2s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "in a.test ") || !strings.Contains(status, "method=EXTERNAL") {
		t.Errorf("starling s2s on b.test:\n%s", status)
	}
}

// TestDirectTLSFallback checks that a direct TLS target on which TLS
// fails does not hide the STARTTLS one: b.test's _xmpps-server record
// points at its plain STARTTLS listener, which answers a TLS hello with
// XML; a.test then goes on to _xmpp-server.
func TestDirectTLSFallback(t *testing.T) {
	w := newWorld(t, true, nil)
	port, err := strconv.Atoi(strings.TrimPrefix(w.b.Config.S2S.Listen[0], "127.0.0.1:"))
	if err != nil {
		t.Fatal(err)
	}
	w.fed.DNS.SetSRV("_xmpps-server._tcp.b.test", dnstest.SRV{Target: "xmpp.b.test", Port: uint16(port)})
	alice := xmpptest.Login(t, w.a.Addr, "a.test", "alice", "alice-pw", "SCRAM-SHA-256", "phone")
	bob := xmpptest.Login(t, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
	alice.Send("<message to='bob@b.test/laptop' type='chat' id='m1'><body>after the direct TLS target failed</body></message>")
	expect(t, bob, "from='alice@a.test/phone'", "after the direct TLS target failed")
	// The direct TLS attempt did happen: b.test refused its TLS hello.
	if len(w.b.LogLines("s2s incoming stream refused")) == 0 {
		t.Error("b.test never saw the direct TLS attempt")
	}
}

// TestUnauthenticatedCap checks that one address may hold only
// max_unauthenticated_per_address incoming streams that have not
// authenticated (RFC 6120 §13.9): the next gets <policy-violation/>, and
// a place given back is taken again.
func TestUnauthenticatedCap(t *testing.T) {
	w := newWorld(t, true, func(c *config.Config) { c.Limits.MaxUnauthenticatedPerAddress = 2 })
	addr := w.b.Config.S2S.Listen[0]
	first := xmpptest.Dial(t, addr, "b.test")
	xmpptest.Dial(t, addr, "b.test")
	third := xmpptest.Dial(t, addr, "b.test")
	third.ExpectStreamError("policy-violation")
	if status, err := server.Admin(t.Context(), w.b.Config, "s2s"); err != nil || !strings.Contains(status, "refused 1 incoming streams") {
		t.Errorf("starling s2s: %v\n%s", err, status)
	}
	first.Close()
	// The first's place comes back once b.test has seen it close; until
	// then a new stream may still be refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := xmpptest.Dial(t, addr, "b.test")
		c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>")
		c.ReadHeader()
		el, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if el.Name.Local == "features" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place given back: %s", el.Raw)
		}
		c.Close()
	}
}

// TestIMAcrossServers runs the instant messaging of RFC 6121 between
// accounts of two federating servers: the subscription handshake, roster
// pushes, presence both ways and on logout, a vCard read on the account's
// behalf, offline storage of a remote sender's message, and blocking of a
// remote JID (XEP-0191).
func TestIMAcrossServers(t *testing.T) {
	w := newWorld(t, true, nil)
	alice := xmpptest.Login(t, w.a.Addr, "a.test", "alice", "alice-pw", "SCRAM-SHA-256", "phone")
	bob := xmpptest.Login(t, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
	alice.Send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	expect(t, alice, "id='r1'", "type='result'")
	bob.Send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	expect(t, bob, "id='r2'", "type='result'")
	alice.Send("<presence/>")
	expect(t, alice, "<presence", "from='alice@a.test/phone'")
	bob.Send("<presence><status>at work</status></presence>")
	expect(t, bob, "<presence", "from='bob@b.test/laptop'")

	// RFC 6121 §3.1: alice asks, bob approves.
	alice.Send("<presence to='bob@b.test' type='subscribe'/>")
	expect(t, alice, "jid='bob@b.test'", "ask='subscribe'")
	expect(t, bob, "type='subscribe'", "from='alice@a.test'")
	bob.Send("<presence to='alice@a.test' type='subscribed'/>")
	expect(t, bob, "jid='alice@a.test'", "subscription='from'")
	expect(t, alice, "jid='bob@b.test'", "subscription='to'")
	// bob's current presence follows the approval (§3.1.5, §4.3.2).
	expect(t, alice, "from='bob@b.test/laptop'", "at work")

	// And back: bob subscribes to alice.
	bob.Send("<presence to='alice@a.test' type='subscribe'/>")
	expect(t, alice, "type='subscribe'", "from='bob@b.test'")
	alice.Send("<presence to='bob@b.test' type='subscribed'/>")
	expect(t, bob, "jid='alice@a.test'", "subscription='both'")
	expect(t, bob, "from='alice@a.test/phone'")

	// Presence broadcast to the remote contact (§4.4).
	alice.Send("<presence><show>away</show></presence>")
	expect(t, bob, "from='alice@a.test/phone'", "<show>away</show>")

	// vCard of a remote account, answered on its behalf (XEP-0054 §3.1).
	bob.Send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard></iq>")
	expect(t, bob, "id='v1'", "type='result'")
	alice.Send("<iq to='bob@b.test' type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
	expect(t, alice, "id='v2'", "type='result'", "Bob Builder")

	// Unavailable on logout reaches the remote contact (§4.5.2).
	bob.Send("<presence type='unavailable'/>")
	expect(t, alice, "from='bob@b.test/laptop'", "type='unavailable'")
	bob.Close()

	// A message to bob while he is offline waits for him (XEP-0160).
	alice.Send("<message to='bob@b.test' type='chat' id='o1'><body>while you were out</body></message>")
	// An IQ to the same bare JID is routed after it (one queue per
	// recipient): its answer means the message was stored.
	alice.Send("<iq to='bob@b.test' type='get' id='o2'><vCard xmlns='vcard-temp'/></iq>")
	expect(t, alice, "id='o2'", "type='result'")
	if msgs, err := w.b.Store().OfflineMessages(t.Context(), "b.test", "bob"); err != nil || len(msgs) != 1 {
		t.Fatalf("offline messages for bob: %d, %v", len(msgs), err)
	}
	bob = xmpptest.Login(t, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
	bob.Send("<presence/>")
	expect(t, bob, "from='alice@a.test/phone'", "while you were out")

	// Blocking a remote JID (XEP-0191 §3.3): alice's message is refused.
	bob.Send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='alice@a.test'/></block></iq>")
	expect(t, bob, "id='b1'", "type='result'")
	alice.Send("<message to='bob@b.test' type='chat' id='x1'><body>blocked?</body></message>")
	expect(t, alice, "id='x1'", "type='error'", "service-unavailable")

	// When a.test shuts down, alice's unavailable presence still reaches
	// bob (RFC 6121 §4.5.2): federation stops after the sessions.
	bob.Send("<iq type='set' id='b2'><unblock xmlns='urn:xmpp:blocking'/></iq>")
	expect(t, bob, "id='b2'", "type='result'")
	alice.Send("<presence/>")
	expect(t, bob, "from='alice@a.test/phone'")
	w.a.Stop(t)
	expect(t, bob, "from='alice@a.test/phone'", "type='unavailable'")
}

// BenchmarkFederatedMessage measures a chat message from a user of one
// server to a user of another through their server-to-server stream:
// alice's c2s read, a.test's routing and s2s write, b.test's s2s read,
// recipient queue and routing, and bob's c2s write (both servers in this
// process, so the allocations are both sides').
func BenchmarkFederatedMessage(b *testing.B) {
	w := newWorld(b, true, nil)
	alice := xmpptest.Login(b, w.a.Addr, "a.test", "alice", "alice-pw", "SCRAM-SHA-256", "phone")
	bob := xmpptest.Login(b, w.b.Addr, "b.test", "bob", "bob-pw", "SCRAM-SHA-256", "laptop")
	msg := []byte("<message to='bob@b.test/laptop' type='chat' id='m1'><body>Hello Bob, this is a typical short chat message of a realistic length.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='8a7d2e1c-7f4b-4c39-9b1e-3c0f5c2f9d11'/></message>")
	// The stream is set up before the clock starts.
	alice.Conn.Write(msg)
	readMessages(b, bob, 1, nil)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	const window = 100
	inflight := make(chan struct{}, window)
	sent := make(chan error, 1)
	go func() {
		for range b.N {
			inflight <- struct{}{}
			if _, err := alice.Conn.Write(msg); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	readMessages(b, bob, b.N, inflight)
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
}

// readMessages reads n messages from c, releasing a slot of inflight
// (if any) for each.
func readMessages(b *testing.B, c *xmpptest.Client, n int, inflight chan struct{}) {
	end := []byte("</message>")
	buf := make([]byte, 64<<10)
	var carry []byte
	for got := 0; got < n; {
		k, err := c.Conn.Read(buf)
		if err != nil {
			b.Fatalf("read after %d messages: %v", got, err)
		}
		data := append(carry, buf[:k]...)
		m := bytes.Count(data, end)
		if inflight != nil {
			for range m {
				<-inflight
			}
		}
		got += m
		carry = append(carry[:0], data[max(0, len(data)-len(end)+1):]...)
	}
}
