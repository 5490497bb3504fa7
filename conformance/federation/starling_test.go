package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// TestStarlingProsody: Starling and Prosody federated, every exchange of
// the reference both ways, in each trust mode and over each transport.
func TestStarlingProsody(t *testing.T) { testStarlingWith(t, "prosody") }

// TestStarlingEjabberd: Starling and ejabberd federated, as
// TestStarlingProsody.
func TestStarlingEjabberd(t *testing.T) { testStarlingWith(t, "ejabberd") }

// testStarlingWith runs the reference's exchanges between Starling and
// the peer name, and checks on both sides how each stream authenticated:
//
//   - External: Starling's certificate has clientAuth too (ejabberd
//     takes EXTERNAL from nothing else) and the peer has no dialback:
//     EXTERNAL both ways, and Starling accepts the peer's serverAuth-only
//     certificate as a client certificate.
//   - DialbackOnly: Starling has no ca_file and the peer does not trust
//     the CA: dialback both ways (ejabberd still offers EXTERNAL, which
//     fails, and Starling must fall back).
//   - ExternalOrDialback: everybody trusts the CA and has dialback, and
//     Starling's certificate is serverAuth only, as Let's Encrypt's:
//     EXTERNAL both ways with Prosody; with ejabberd, EXTERNAL towards
//     Starling, and dialback towards ejabberd after its EXTERNAL refuses
//     the certificate's purpose.
//
// Starling speaks first (its outgoing stream opens first), except over
// srvDirectTLS where the peer does, so that both orders are covered.
func testStarlingWith(t *testing.T, peer string) {
	requirePeers(t)
	for _, mode := range modes {
		for _, tr := range transports {
			t.Run(mode.String()+"/"+string(tr), func(t *testing.T) {
				w := newWorld(t, tr, true)
				st, us := w.starling(mode, mode == anchor.External)
				p, up := w.peer(peer, mode, false)
				toStarling, toPeer := external, external
				switch {
				case mode == anchor.DialbackOnly:
					toStarling, toPeer = dialback, dialback
				case mode == anchor.ExternalOrDialback && peer == "ejabberd":
					toPeer = dialback
				}
				if tr == srvDirectTLS {
					exchange(t, up, us)
				} else {
					exchange(t, us, up)
				}
				checkAuth(t, p, starlingDomain, toPeer, toStarling)
				st.checkAuth(t, p.Domain, toStarling, toPeer)
			})
		}
	}
}

// --- Starling ---

// starlingServer is the built binary running on starling.test.
type starlingServer struct {
	proc   *testbin.Proc
	bin    string
	config string
}

// starling starts the built Starling on starling.test at starlingAddr,
// with the CA's certificate for starling.test and its group chat
// service, starlingMUC (with clientAuth too, if clientAuth), federation
// on, and the account alice. It trusts the CA (ca_file) in every mode
// but DialbackOnly. The test is skipped if the binary refuses the [s2s]
// table: federation not implemented yet.
func (w *world) starling(mode anchor.Auth, clientAuth bool) (*starlingServer, user) {
	t := w.t
	t.Helper()
	bin := testbin.Build(t)
	dir := filepath.Join(w.dir, "starling")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	usages := testca.ServerAuth
	if clientAuth {
		usages = testca.ServerAndClientAuth
	}
	// Its group chat service (xep/muc, on by default) is a domain of its
	// own, conference.starling.test, which the certificate covers too:
	// the room's stanzas go to other servers from that domain.
	cert, key, err := w.ca.WriteFilesUsages(dir, starlingDomain, usages, starlingDomain, starlingMUC)
	if err != nil {
		t.Fatal(err)
	}
	caLine := ""
	if mode != anchor.DialbackOnly {
		caFile := filepath.Join(dir, "ca.crt")
		if err := w.ca.WriteCA(caFile); err != nil {
			t.Fatal(err)
		}
		caLine = fmt.Sprintf("ca_file = %q\n", caFile)
	}
	cfg := fmt.Sprintf(`[server]
hosts = [%[1]q]
data_dir = %[2]q

[c2s]
listen = ["%[3]s:5222"]
direct_tls_listen = ["%[3]s:5223"]

[tls]
cert = %[4]q
key = %[5]q

[s2s]
enabled = true
listen = ["%[3]s:5269"]
direct_tls_listen = ["%[3]s:5270"]
%[6]srequire_valid_certificates = false
resolver = %[7]q

[log]
level = "debug"
`, starlingDomain, filepath.Join(dir, "data"), starlingAddr, cert, key, caLine, dnsAddr)
	path := filepath.Join(dir, "starling.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	requireFederation(t, bin, path)
	t.Logf("starling config %s:\n%s", path, cfg)
	proc := testbin.Start(t, bin, path)
	password := randomHex(12)
	testbin.AddUser(t, bin, path, "alice@"+starlingDomain, password)
	s := &starlingServer{proc: proc, bin: bin, config: path}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("starling s2s status: %s", s.status())
		}
	})
	return s, user{server: "starling", addr: net.JoinHostPort(starlingAddr, "5222"), domain: starlingDomain, name: "alice", password: password}
}

// requireFederation skips the test when the binary's check-config
// refuses the [s2s] table of the config at path: federation not
// implemented yet. Any other refusal fails the test.
func requireFederation(t *testing.T, bin, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbin.CLITimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check-config", path).CombinedOutput()
	if err == nil {
		return
	}
	if bytes.Contains(out, []byte("s2s")) {
		t.Skipf("federation not implemented yet: starling check-config refuses the [s2s] table: %s", bytes.TrimSpace(out))
	}
	t.Fatalf("starling check-config %s: %v\n%s", path, err, out)
}

// status is `starling s2s`: the running server's federation streams.
func (s *starlingServer) status() string {
	ctx, cancel := context.WithTimeout(context.Background(), testbin.CLITimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, "s2s", "--config", s.config).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return "\n" + string(out)
}

// checkAuth checks in Starling's log that the stream from remote
// authenticated with inbound and the stream to it with outbound:
//
//	level=INFO msg="s2s stream authenticated" direction=in remote=R local=L method=EXTERNAL …
//
// (method dialback, or "dialback (certificate)" for dialback with a
// certificate that validated).
func (s *starlingServer) checkAuth(t *testing.T, remote, inbound, outbound string) {
	t.Helper()
	for _, d := range []struct{ direction, method string }{{"in", inbound}, {"out", outbound}} {
		what := fmt.Sprintf("an %s stream with %s authenticated with %s", d.direction, remote, d.method)
		match := func(line string) bool {
			if !strings.Contains(line, `msg="s2s stream authenticated"`) || !strings.Contains(line, "direction="+d.direction+" ") ||
				!strings.Contains(line, "remote="+remote+" ") {
				return false
			}
			if d.method == external {
				return strings.Contains(line, "method=EXTERNAL")
			}
			return strings.Contains(line, "method=dialback") || strings.Contains(line, `method="dialback`)
		}
		line, _ := s.proc.WaitLog(t, 0, waitTimeout, what, match)
		t.Logf("starling: %s: %s", what, line)
	}
}

// --- spoofing ---

// TestSpoofedDomain: a server that claims prosody.test but cannot
// authenticate as it gets nothing delivered to Starling's users, and an
// error: it connects to Starling's s2s port, negotiates STARTTLS with a
// client certificate, and claims from='prosody.test' with
//
//   - a certificate from the trusted CA, but for another domain, then
//     SASL EXTERNAL for prosody.test anyway (refused or not offered),
//     then a dialback key it made up (refused: the real Prosody, which
//     Starling asks, does not know it);
//   - a certificate for prosody.test from a CA Starling does not trust,
//     then the same;
//   - no authentication at all: a stanza right after TLS.
//
// In every case it then sends alice@starling.test a message from
// alice@prosody.test, which must not arrive: the stream must end with an
// error (or a dialback result of type invalid and the end of the
// stream), and a marker sent afterwards reaches alice first.
func TestSpoofedDomain(t *testing.T) {
	requirePeers(t)
	w := newWorld(t, srvStartTLS, true)
	_, us := w.starling(anchor.ExternalOrDialback, false)
	// The real prosody.test, the authoritative server Starling asks
	// about dialback keys from it (XEP-0220 §2.1.2).
	p, _ := w.peer("prosody", anchor.DialbackOnly, false)
	defer func() {
		if hasLine(p.Log(), []string{"Asked to verify a dialback key that was incorrect"}) {
			t.Logf("prosody was asked about the made-up keys and said they were not its own")
		}
	}()
	alice := login(t, us)
	alice.Send("<presence/>")
	alice.roundTrip(t)

	other, err := w.ca.Issue("intruder.test")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := testca.New("untrusted CA")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := untrusted.Issue(prosodyDomain)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		cert     tls.Certificate
		external bool // try SASL EXTERNAL
		dialback bool // try a made-up dialback key
	}{
		{"trusted-cert-for-another-domain", other, true, true},
		{"untrusted-cert-for-the-domain", forged, true, true},
		{"no-authentication", other, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tag := randomHex(6)
			s := dialS2S(t, net.JoinHostPort(starlingAddr, anchor.S2SPort), prosodyDomain, starlingDomain, c.cert)
			ended := false // the stream has ended: nothing more can be sent
			if c.external {
				// Tried whether offered or not: a spoofer would.
				if s.offers("EXTERNAL") {
					t.Errorf("EXTERNAL offered to a stream from %s with a certificate for %v", prosodyDomain, c.cert.Leaf.DNSNames)
				}
				s.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte(prosodyDomain)) + "</auth>")
				el, end := s.next(t)
				switch {
				case end != "":
					t.Logf("SASL EXTERNAL refused by ending the stream: %s", end)
					ended = true
				case el.Name.Local == "success":
					t.Fatalf("SASL EXTERNAL as %s succeeded with a certificate for %v: %s", prosodyDomain, c.cert.Leaf.DNSNames, el.Raw)
				case el.Name.Local == "failure":
					t.Logf("SASL EXTERNAL refused: %s", el.Raw)
				default:
					t.Fatalf("after SASL EXTERNAL: %s", el.Raw)
				}
			}
			if c.dialback && !ended {
				s.send(fmt.Sprintf("<db:result from='%s' to='%s'>%s</db:result>", prosodyDomain, starlingDomain, randomHex(32)))
				el, end := s.next(t)
				switch {
				case end != "":
					t.Logf("dialback key refused by ending the stream: %s", end)
					ended = true
				case el.Name.Local == "result" && xmpptest.Attr(el, "type") == "valid":
					t.Fatalf("a made-up dialback key for %s was taken: %s", prosodyDomain, el.Raw)
				case el.Name.Local == "result" && (xmpptest.Attr(el, "type") == "invalid" || xmpptest.Attr(el, "type") == "error"):
					t.Logf("dialback key refused: %s", el.Raw)
				default:
					t.Fatalf("after a made-up dialback key: %s", el.Raw)
				}
			}
			if !ended {
				s.send(fmt.Sprintf("<message from='alice@%s/spoof' to='%s' type='chat' id='spoof-%s'><body>spoofed %s</body></message>", prosodyDomain, us.bare(), tag, tag))
				end := s.waitEnd(t)
				t.Logf("the spoofed stanza ended the stream: %s", end)
			}
			// Whatever Starling read before the stream ended has been
			// routed; a marker sent now comes after it.
			marker := "marker " + tag
			alice.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", us.bare(), marker))
			alice.await(t, "the marker", func(el *stream.Element) bool {
				if bytes.Contains(el.Raw, []byte("spoofed "+tag)) {
					t.Fatalf("a message from a spoofed %s was delivered: %s", prosodyDomain, el.Raw)
				}
				return el.Name.Local == "message" && bytes.Contains(el.Raw, []byte(marker))
			})
		})
	}
}

// s2sClient is a raw server-to-server stream for spoofing.
type s2sClient struct {
	t        *testing.T
	conn     net.Conn
	r        *stream.Reader
	features *stream.Element
	from, to string
}

// dialS2S connects to addr, opens a jabber:server stream from from to
// to, negotiates STARTTLS presenting cert, and opens the stream again.
func dialS2S(t *testing.T, addr, from, to string, cert tls.Certificate) *s2sClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, xmpptest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &s2sClient{t: t, conn: conn, r: stream.NewReader(conn, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100}), from: from, to: to}
	s.open()
	if !s.offers("urn:ietf:params:xml:ns:xmpp-tls") {
		t.Fatalf("no STARTTLS offered: %s", s.features.Raw)
	}
	s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el, end := s.next(t); end != "" || el.Name.Local != "proceed" {
		t.Fatalf("STARTTLS: %v %s", end, el.Raw)
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName:   to,
		Certificates: []tls.Certificate{cert},
		// The spoofer does not care who Starling is.
		InsecureSkipVerify: true,
		VerifyConnection:   func(tls.ConnectionState) error { return nil },
	})
	conn.SetDeadline(time.Now().Add(xmpptest.Timeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conn.SetDeadline(time.Time{})
	s.conn = tc
	s.r.Reset(tc)
	s.open()
	return s
}

// open sends the stream header and reads the server's and its features.
func (s *s2sClient) open() {
	s.t.Helper()
	s.send(fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>", s.from, s.to))
	s.conn.SetReadDeadline(time.Now().Add(xmpptest.Timeout))
	if _, err := s.r.ReadHeader(); err != nil {
		s.t.Fatalf("stream header: %v", err)
	}
	el, end := s.next(s.t)
	if end != "" || el.Name.Local != "features" {
		s.t.Fatalf("expected stream features, got %v %s", end, el.Raw)
	}
	s.features = el
}

// offers reports whether the features mention substr.
func (s *s2sClient) offers(substr string) bool {
	return s.features != nil && bytes.Contains(s.features.Raw, []byte(substr))
}

// send writes raw; a write error (the server closed first) is ignored.
func (s *s2sClient) send(raw string) {
	s.conn.SetWriteDeadline(time.Now().Add(xmpptest.Timeout))
	s.conn.Write([]byte(raw))
}

// next reads the next element, or says how the stream ended: a stream
// error (its raw XML), the closing tag, the end of the connection.
func (s *s2sClient) next(t *testing.T) (*stream.Element, string) {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	el, err := s.r.Next()
	switch {
	case err == nil && el.Name.Space == "http://etherx.jabber.org/streams" && el.Name.Local == "error":
		return nil, "stream error " + string(el.Raw)
	case err == nil:
		return el, ""
	case errors.Is(err, stream.ErrClosed):
		return nil, "</stream:stream>"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("nothing from Starling within %v", waitTimeout)
	}
	return nil, "connection ended: " + err.Error()
}

// waitEnd reads until the stream ends, and fails the test if anything but
// an error or the end comes: an unauthenticated stanza must end it.
func (s *s2sClient) waitEnd(t *testing.T) string {
	t.Helper()
	for {
		el, end := s.next(t)
		if end != "" {
			return end
		}
		if el.Name.Local == "result" && xmpptest.Attr(el, "type") != "valid" {
			continue // a dialback result may still come before the end
		}
		t.Fatalf("expected the stream to end with an error, got %s", el.Raw)
	}
}
