package s2s_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// world is two Starling servers federating on loopback: a.test and b.test,
// found through a DNS server of the test's own, with certificates from a
// test CA that they trust (trustCA) or not (dialback only).
type world struct {
	ca   *testca.CA
	dns  *dnstest.Server
	a, b *testserver.Server
	dir  string
}

func newWorld(t *testing.T, trustCA bool, edit func(*config.Config)) *world {
	t.Helper()
	ca, err := testca.New("Starling test CA")
	if err != nil {
		t.Fatal(err)
	}
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	w := &world{ca: ca, dns: dns, dir: t.TempDir()}
	caFile := filepath.Join(w.dir, "ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	start := func(domain string) *testserver.Server {
		port := testbin.FreePort(t)
		dns.SetSRV("_xmpp-server._tcp."+domain, dnstest.SRV{Target: "xmpp." + domain, Port: uint16(port)})
		dns.SetA("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
		cert, key, err := ca.WriteFiles(w.dir, domain, domain)
		if err != nil {
			t.Fatal(err)
		}
		return testserver.Start(t, func(c *config.Config) {
			c.Server.Hosts = []string{domain}
			c.TLS = config.TLS{Cert: cert, Key: key}
			c.S2S.Enabled = true
			c.S2S.Listen = []string{fmt.Sprintf("127.0.0.1:%d", port)}
			c.S2S.Resolver = dns.Addr()
			if trustCA {
				c.S2S.CAFile = caFile
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
	for {
		el, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for %q: %v", subs, err)
		}
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
			w := newWorld(t, mode.trustCA, nil)
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
			for _, srv := range []*testserver.Server{w.a, w.b} {
				if got := srv.LogLines("s2s stream authenticated"); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), strings.TrimPrefix(mode.method, "")) {
					t.Errorf("%s: expected an authenticated stream with %s, log: %q", srv.Domain, mode.method, got)
				}
			}
		})
	}
}
