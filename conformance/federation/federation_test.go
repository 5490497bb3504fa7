// Package federation tests server-to-server streams (RFC 6120 §4–§6,
// XEP-0178 SASL EXTERNAL, XEP-0220 dialback, XEP-0368 direct TLS) between
// real servers on loopback addresses, each serving its own domain:
//
//   - TestProsodyEjabberd, the reference: Prosody on prosody.test and
//     ejabberd on ejabberd.test (internal/anchor), federated with each
//     other. It proves the harness: when it passes and a Starling test
//     fails, the fault is Starling's.
//   - TestStarlingProsody, TestStarlingEjabberd: the same exchanges with
//     the built starling binary on starling.test in the place of one
//     of them; TestSpoofedDomain: a stream claiming a domain it cannot
//     authenticate gets nothing delivered.
//   - TestMUCFederation: group chat (XEP-0045) across federation: a
//     user of each peer in a room of Starling's service on
//     conference.starling.test, whose streams to and from the peer
//     authenticate as the host's do, and a Starling user in a room of
//     Prosody's muc component.
//
// Every test runs in three trust modes (anchor.Auth: External, where
// everybody trusts one test CA, internal/testca, and SASL EXTERNAL is
// the only way; DialbackOnly, where nobody trusts it and dialback over
// TLS is the only way; ExternalOrDialback, both, with the serverAuth-only
// certificates Let's Encrypt issues since 2026, which ejabberd 23.01
// refuses for EXTERNAL, so that the dialback fallback is exercised) and
// over three ways of finding a server (transports): the domain's address
// on port 5269 with no SRV record, an _xmpp-server SRV record
// (STARTTLS), and an _xmpps-server SRV record (direct TLS; the STARTTLS
// record then names a port where nothing listens, so that only direct
// TLS can succeed). Names are served by internal/dnstest on dnsAddr,
// which the peers ask through their private /etc/resolv.conf (their
// private /etc/hosts has the addresses for the first transport) and
// Starling through its [s2s] resolver. How every stream authenticated is
// checked in the servers' logs.
//
// The peers are installed from Debian packages (make deps, or
// anchor.Install) and run as root; without root or packages the tests
// skip, and fail under STARLING_REQUIRE_ALL=1. The Starling tests skip
// while the binary refuses an [s2s] table (federation not implemented).
package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// The addresses and domains of the servers, which no other test uses.
const (
	dnsAddr        = "127.0.0.20:53" // port 53: a resolv.conf cannot name another
	starlingAddr   = "127.0.0.21"
	prosodyAddr    = "127.0.0.22"
	ejabberdAddr   = "127.0.0.23"
	starlingDomain = "starling.test"
	prosodyDomain  = "prosody.test"
	ejabberdDomain = "ejabberd.test"
	// closedPort is where nothing listens on any of the addresses: the
	// STARTTLS SRV record of the direct TLS transport names it.
	closedPort = 5271
)

// addrs maps each domain to its server's address.
var addrs = map[string]string{
	starlingDomain: starlingAddr,
	prosodyDomain:  prosodyAddr,
	ejabberdDomain: ejabberdAddr,
}

// waitTimeout bounds every wait for something a server sends: the first
// stanza to a domain waits for a whole s2s negotiation (for dialback,
// with a second connection back to the sender).
const waitTimeout = 30 * time.Second

// modes are the trust modes every test runs in.
var modes = []anchor.Auth{anchor.External, anchor.DialbackOnly, anchor.ExternalOrDialback}

// A transport is how servers find each other: DNS records set for every
// domain.
type transport string

const (
	// aFallback: no SRV record; the domain's address on port 5269
	// (RFC 6120 §3.2.2).
	aFallback transport = "a-fallback"
	// srvStartTLS: _xmpp-server._tcp SRV record, port 5269.
	srvStartTLS transport = "srv-starttls"
	// srvDirectTLS: _xmpps-server._tcp SRV record, port 5270 (XEP-0368),
	// and an _xmpp-server._tcp one on closedPort.
	srvDirectTLS transport = "srv-directtls"
)

var transports = []transport{aFallback, srvStartTLS, srvDirectTLS}

// --- prerequisites ---

var install struct {
	once sync.Once
	err  error
}

// requirePeers checks that this test can run federation peers: root,
// and Prosody and ejabberd installed (anchor.Install installs them the
// first time).
func requirePeers(t *testing.T) {
	t.Helper()
	testbin.Require(t, "root (to install and run Prosody and ejabberd in mount namespaces)", os.Getuid() == 0)
	install.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		install.err = anchor.Install(ctx)
	})
	testbin.Require(t, fmt.Sprintf("prosody and ejabberd from Debian packages: %v", install.err), install.err == nil)
}

// --- the world: a CA and DNS ---

// world is what the servers of one run share: the test CA, the names
// the peers have in their private /etc/hosts, a directory; and the DNS
// server, which runs until the test ends.
type world struct {
	t     *testing.T
	ca    *testca.CA
	hosts map[string]string
	dir   string
	dns   *dnstest.Server
}

// srvTarget is the host an SRV record of domain names: not the domain
// itself, which then has no address record, so that a server that
// ignored the SRV records would find nothing.
func srvTarget(domain string) string { return "xmpp." + domain }

// newWorld makes a CA and starts the DNS server with every domain's
// records for tr:
//
//   - aFallback: the domains' addresses, in the peers' private
//     /etc/hosts, and in DNS only if starling, whose resolver asks DNS
//     alone, is part of the run; so that the reference proves that the
//     peers find each other through their hosts files.
//   - srvStartTLS: _xmpp-server._tcp.DOMAIN → srvTarget(DOMAIN):5269,
//     and the target's address; nothing for DOMAIN itself, nothing in
//     the hosts files.
//   - srvDirectTLS: _xmpps-server._tcp.DOMAIN → srvTarget(DOMAIN):5270
//     and _xmpp-server._tcp.DOMAIN → srvTarget(DOMAIN):closedPort.
//
// Both go at the end of the test.
func newWorld(t *testing.T, tr transport, starling bool) *world {
	t.Helper()
	ca, err := testca.New("Starling federation test CA")
	if err != nil {
		t.Fatal(err)
	}
	dns, err := dnstest.Start(dnsAddr)
	if err != nil {
		t.Fatalf("DNS server: %v", err)
	}
	t.Cleanup(func() { dns.Close() })
	hosts := map[string]string{}
	for domain, ip := range addrs {
		switch tr {
		case aFallback:
			hosts[domain] = ip
			if starling {
				dns.SetA(domain, netip.MustParseAddr(ip))
			}
		case srvStartTLS:
			dns.SetSRV("_xmpp-server._tcp."+domain, dnstest.SRV{Target: srvTarget(domain), Port: 5269})
			dns.SetA(srvTarget(domain), netip.MustParseAddr(ip))
		case srvDirectTLS:
			dns.SetSRV("_xmpps-server._tcp."+domain, dnstest.SRV{Target: srvTarget(domain), Port: 5270})
			dns.SetSRV("_xmpp-server._tcp."+domain, dnstest.SRV{Target: srvTarget(domain), Port: closedPort})
			dns.SetA(srvTarget(domain), netip.MustParseAddr(ip))
		}
	}
	// Not t.TempDir, whose parent only root may enter: ejabberd runs as
	// its own user.
	dir, err := os.MkdirTemp("", "starling-federation-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &world{t: t, ca: ca, hosts: hosts, dir: dir, dns: dns}
}

// peer starts Prosody or ejabberd as a federation peer in mode, with
// the account alice, and stops it at the end of the test, showing its
// logs if the test failed. With clientAuth its certificate has the
// clientAuth extended key usage too. more may change its options.
func (w *world) peer(name string, mode anchor.Auth, clientAuth bool, more ...func(*anchor.Options)) (*anchor.Server, user) {
	t := w.t
	t.Helper()
	domain, addr := prosodyDomain, prosodyAddr
	if name == "ejabberd" {
		domain, addr = ejabberdDomain, ejabberdAddr
	}
	password := randomHex(12)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := anchor.Options{
		Name:       name,
		Addr:       addr,
		Dir:        filepath.Join(w.dir, name),
		Domain:     domain,
		Accounts:   map[string]string{"alice": password},
		CA:         w.ca,
		ClientAuth: clientAuth,
		S2S: &anchor.S2S{
			Auth:       mode,
			Hosts:      w.hosts,
			Nameserver: strings.TrimSuffix(dnsAddr, ":53"),
		},
	}
	for _, f := range more {
		f(&o)
	}
	a, err := anchor.Start(ctx, o)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s %s logs:\n%s", name, a.Version, a.Tail())
		}
		a.Stop()
	})
	t.Logf("%s %s on %s (%s), s2s %s:%s and %s:%s", name, a.Version, domain, mode, addr, anchor.S2SPort, addr, anchor.S2SDirectTLSPort)
	return a, user{server: name, addr: net.JoinHostPort(addr, anchor.StartTLSPort), domain: domain, name: "alice", password: password}
}

// --- the exchanges ---

// user is an account on one of the servers.
type user struct {
	server   string // "prosody", "ejabberd", "starling"
	addr     string // its server's c2s address (STARTTLS)
	domain   string
	name     string
	password string
}

func (u user) bare() string { return u.name + "@" + u.domain }

// session is a logged-in client of a user.
type session struct {
	*xmpptest.Client
	u   user
	jid string // the bound full JID
}

// login logs u in over STARTTLS with PLAIN (which every server offers
// over TLS) and binds a resource.
func login(t *testing.T, u user) *session {
	t.Helper()
	c := xmpptest.Login(t, u.addr, u.domain, u.name, u.password, "PLAIN", "fed-"+randomHex(4))
	return &session{Client: c, u: u, jid: c.JID}
}

// exchange runs, between a user of each of two federated servers, what
// the tests check both ways: messages, a presence subscription handshake
// and presence, and a vCard (vcard-temp) of the remote user.
func exchange(t *testing.T, ua, ub user) {
	t.Helper()
	a, b := login(t, ua), login(t, ub)
	tag := randomHex(6)
	for _, s := range []*session{a, b} {
		s.Send("<presence/>")
		s.roundTrip(t)
	}

	// Messages, a to b first: the first stanza opens the first s2s
	// stream.
	for _, p := range [][2]*session{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		body := fmt.Sprintf("%s to %s %s <&> héllo", from.u.server, to.u.server, tag)
		from.Send(fmt.Sprintf("<message to='%s' type='chat' id='m-%s'><body>%s</body></message>", to.u.bare(), tag, escape(body)))
		to.await(t, "message from "+from.jid, func(el *stream.Element) bool {
			var m struct {
				Body string `xml:"body"`
			}
			return el.Name.Local == "message" && xmpptest.Attr(el, "from") == from.jid &&
				xml.Unmarshal(el.Raw, &m) == nil && m.Body == body
		})
		t.Logf("message %s → %s delivered", from.jid, to.jid)
	}

	// Subscriptions, both ways (RFC 6121 §3.1): subscribe, subscribed,
	// then the contact's current presence reaches the new subscriber.
	for _, p := range [][2]*session{{a, b}, {b, a}} {
		sub, contact := p[0], p[1]
		sub.Send(fmt.Sprintf("<presence to='%s' type='subscribe' id='s-%s'/>", contact.u.bare(), tag))
		contact.await(t, "subscription request from "+sub.u.bare(), func(el *stream.Element) bool {
			return el.Name.Local == "presence" && xmpptest.Attr(el, "type") == "subscribe" && bareOf(xmpptest.Attr(el, "from")) == sub.u.bare()
		})
		contact.Send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", sub.u.bare()))
		sub.await(t, "presence of "+contact.jid+" after subscribed", func(el *stream.Element) bool {
			return el.Name.Local == "presence" && xmpptest.Attr(el, "type") == "" && xmpptest.Attr(el, "from") == contact.jid
		})
		t.Logf("%s subscribed to %s", sub.u.bare(), contact.u.bare())
	}
	for _, s := range []*session{a, b} {
		other := b
		if s == b {
			other = a
		}
		if got := s.rosterSubscription(t, other.u.bare()); got != "both" {
			t.Fatalf("%s's roster: subscription to %s is %q, want both", s.u.bare(), other.u.bare(), got)
		}
	}
	// Presence broadcast to the new contact.
	for _, p := range [][2]*session{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		status := "away from " + from.u.server + " " + tag
		from.Send("<presence><show>away</show><status>" + status + "</status></presence>")
		to.await(t, "presence of "+from.jid+" with status "+status, func(el *stream.Element) bool {
			var pr struct {
				Show   string `xml:"show"`
				Status string `xml:"status"`
			}
			return el.Name.Local == "presence" && xmpptest.Attr(el, "from") == from.jid &&
				xml.Unmarshal(el.Raw, &pr) == nil && pr.Show == "away" && pr.Status == status
		})
		t.Logf("presence %s → %s seen", from.jid, to.jid)
	}

	// vCards: each sets its own, then reads the other's over federation.
	for _, s := range []*session{a, b} {
		s.iq(t, "", "set", "<vCard xmlns='vcard-temp'><FN>"+s.u.server+" "+tag+"</FN><NICKNAME>"+s.u.name+"</NICKNAME></vCard>")
	}
	for _, p := range [][2]*session{{a, b}, {b, a}} {
		from, to := p[0], p[1]
		res := from.iq(t, to.u.bare(), "get", "<vCard xmlns='vcard-temp'/>")
		var v struct {
			FN string `xml:"vCard>FN"`
		}
		if err := xml.Unmarshal(res.Raw, &v); err != nil || v.FN != to.u.server+" "+tag {
			t.Fatalf("%s's vCard as %s reads it: FN %q (want %q): %s", to.u.bare(), from.u.bare(), v.FN, to.u.server+" "+tag, res.Raw)
		}
		t.Logf("vCard of %s read by %s", to.u.bare(), from.jid)
	}
}

// await reads until an element satisfies match, skipping others (roster
// pushes, presence of others), and fails the test after waitTimeout.
func (s *session) await(t *testing.T, what string, match func(*stream.Element) bool) *stream.Element {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var skipped []string
	for {
		el, err := s.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
				continue // the reader resumes after a timeout
			}
			t.Fatalf("%s waiting for %s: %v; skipped meanwhile:\n%s", s.jid, what, err, strings.Join(skipped, "\n"))
		}
		if match(el) {
			return el
		}
		if typ := xmpptest.Attr(el, "type"); el.Name.Local == "iq" && (typ == "get" || typ == "set") {
			// Answer what a server asks (pings), so nothing waits on us.
			s.Send(fmt.Sprintf("<iq type='error' to='%s' id='%s'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
				escape(xmpptest.Attr(el, "from")), escape(xmpptest.Attr(el, "id"))))
		}
		skipped = append(skipped, string(el.Raw))
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %v; skipped meanwhile:\n%s", s.jid, what, waitTimeout, strings.Join(skipped, "\n"))
		}
	}
}

// iq sends an IQ of type typ to to ("" for the account) and returns its
// result, failing the test on an error.
func (s *session) iq(t *testing.T, to, typ, payload string) *stream.Element {
	t.Helper()
	id := "iq-" + randomHex(6)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	s.Send(fmt.Sprintf("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload))
	el := s.await(t, "the answer to "+id, func(el *stream.Element) bool {
		return el.Name.Local == "iq" && xmpptest.Attr(el, "id") == id &&
			(xmpptest.Attr(el, "type") == "result" || xmpptest.Attr(el, "type") == "error")
	})
	if xmpptest.Attr(el, "type") != "result" {
		t.Fatalf("%s: %s: %s", s.jid, payload, el.Raw)
	}
	return el
}

// roundTrip waits until the server has handled everything sent before:
// a ping to the server, answered in order.
func (s *session) roundTrip(t *testing.T) {
	t.Helper()
	s.iq(t, s.u.domain, "get", "<ping xmlns='urn:xmpp:ping'/>")
}

// rosterSubscription is the subscription of contact in s's roster.
func (s *session) rosterSubscription(t *testing.T, contact string) string {
	t.Helper()
	res := s.iq(t, "", "get", "<query xmlns='jabber:iq:roster'/>")
	var r struct {
		Items []struct {
			JID          string `xml:"jid,attr"`
			Subscription string `xml:"subscription,attr"`
		} `xml:"query>item"`
	}
	if err := xml.Unmarshal(res.Raw, &r); err != nil {
		t.Fatalf("roster: %v: %s", err, res.Raw)
	}
	for _, it := range r.Items {
		if it.JID == contact {
			return it.Subscription
		}
	}
	return ""
}

// --- how the streams authenticated ---

// The ways a server authenticates to another, as checkAuth looks for
// them.
const (
	external = "EXTERNAL" // SASL EXTERNAL, XEP-0178
	dialback = "dialback" // XEP-0220
)

// checkAuth checks in a peer's logs that the stream from remote to it
// authenticated with inbound and the stream from it to remote with
// outbound, and not the other way. The logs are read until they show it
// or waitTimeout passes: servers write them asynchronously.
//
// What each server logs (Prosody at debug level, ejabberd at info):
//
//	Prosody, in, EXTERNAL:   Accepting SASL EXTERNAL identity from R
//	Prosody, in, dialback:   asking R if key … belongs to them
//	                         Incoming s2s connection R->L complete
//	Prosody, out, EXTERNAL:  SASL EXTERNAL with R succeeded
//	Prosody, out, dialback:  Sending[s2sout_unauthed]: <db:result from='L' to='R'>
//	                         Outgoing s2s connection L->R complete
//	ejabberd, in:            Accepted inbound s2s EXTERNAL|dialback authentication R -> L
//	ejabberd, out:           Accepted outbound s2s EXTERNAL|dialback authentication L -> R
func checkAuth(t *testing.T, a *anchor.Server, remote, inbound, outbound string) {
	t.Helper()
	local := a.Domain
	type rule struct {
		what    string
		present [][]string // each a line's substrings, all on one line
		absent  [][]string
	}
	var rules []rule
	switch a.Name {
	case "prosody":
		in := map[string][][]string{
			external: {{"Accepting SASL EXTERNAL identity from " + remote}},
			dialback: {{"asking " + remote + " if key"}, {"Incoming s2s connection " + remote + "->" + local + " complete"}},
		}
		out := map[string][][]string{
			external: {{"SASL EXTERNAL with " + remote + " succeeded"}},
			dialback: {{"Sending[s2sout_unauthed]", "db:result", "from='" + local + "'", "to='" + remote + "'"}, {"Outgoing s2s connection " + local + "->" + remote + " complete"}},
		}
		rules = []rule{
			{"inbound " + inbound, in[inbound], in[other(inbound)][:1]},
			{"outbound " + outbound, out[outbound], out[other(outbound)][:1]},
		}
	case "ejabberd":
		in := func(m string) [][]string {
			return [][]string{{"Accepted inbound s2s " + m + " authentication " + remote + " -> " + local}}
		}
		out := func(m string) [][]string {
			return [][]string{{"Accepted outbound s2s " + m + " authentication " + local + " -> " + remote}}
		}
		rules = []rule{
			{"inbound " + inbound, in(inbound), in(other(inbound))},
			{"outbound " + outbound, out(outbound), out(other(outbound))},
		}
	default:
		t.Fatalf("checkAuth: no rules for %s", a.Name)
	}
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(50 * time.Millisecond) // polling files another process writes
	defer tick.Stop()
	for _, r := range rules {
		for {
			log := a.Log()
			missing := slices.IndexFunc(r.present, func(subs []string) bool { return !hasLine(log, subs) })
			if missing < 0 {
				for _, subs := range r.absent {
					if hasLine(log, subs) {
						t.Errorf("%s: %s ↔ %s: %s expected, but its log shows a line with %q", a.Name, local, remote, r.what, subs)
					}
				}
				t.Logf("%s: %s ↔ %s: %s, as expected", a.Name, local, remote, r.what)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %s ↔ %s: %s expected, but its log has no line with %q", a.Name, local, remote, r.what, r.present[missing])
				break
			}
			<-tick.C
		}
	}
}

func other(method string) string {
	if method == external {
		return dialback
	}
	return external
}

// hasLine reports whether a line of log contains every one of subs.
func hasLine(log string, subs []string) bool {
	for line := range strings.Lines(log) {
		if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(line, s) }) {
			return true
		}
	}
	return false
}

// --- helpers ---

func bareOf(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
