package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testserver"
)

// startRelay runs a relay server on loopback for the test and returns its
// address.
func startRelay(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		newRelayServer(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, io.Discard).serve(ctx, ln)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestExchange: a login's bytes are counted per turn, in plaintext until
// TLS starts, the handshake's own not at all; the script round-trips
// through its text and the relay's frame.
func TestExchange(t *testing.T) {
	x := &exchange{}
	x.wrote(130, false)
	x.read(400, false)
	x.read(12, false)
	x.wrote(50, false)
	x.read(90, false)
	x.wrote(140, true)
	x.wrote(1, false) // plaintext once TLS has started (a handshake's bytes): not counted
	x.read(600, true)
	x.wrote(30, true)
	x.read(20, true)
	want := "130/412,50/90|140/600,30/20"
	if got := x.String(); got != "130/412,50/90|140/600,30/20" {
		t.Fatalf("exchange %q, want %q", got, want)
	}
	p, tl, err := parseScript(want)
	if err != nil || len(p) != 2 || len(tl) != 2 || p[0] != (turn{130, 412}) || tl[1] != (turn{30, 20}) {
		t.Fatalf("parseScript: %v %v %v", p, tl, err)
	}
	f := &relayFrame{mode: relayModeLogin, plain: p, tls: tl}
	f.token[3] = 7
	g, err := parseRelayFrame(f.marshal())
	if err != nil || g.mode != relayModeLogin || g.token != f.token || formatTurns(g.plain)+"|"+formatTurns(g.tls) != want {
		t.Fatalf("frame: %+v %v", g, err)
	}
	for _, bad := range []string{"", "1/2", "|", "1/2|", "a/b|1/2", "1/2|3"} {
		if _, _, err := parseScript(bad); err == nil {
			t.Errorf("parseScript(%q) accepted", bad)
		}
	}
	if _, err := parseRelayFrame(make([]byte, relayFrameSize)); err == nil {
		t.Error("a frame of zeros accepted")
	}
}

// TestRelayLogin: the relay answers each turn with exactly the bytes the
// script says (a byte more or less would stall or fail the client), and
// with --resume every worker's logins after its first resume.
func TestRelayLogin(t *testing.T) {
	addr := startRelay(t)
	common := []string{"--relay", "--addr", addr, "--domain", "localhost", "--scenario", "login"}
	r := bench(t, 0, append(common, "--script", "130/412,50/90|140/600,40000/70000,30/20", "--n", "10", "--concurrency", "3")...)
	if r.Ops != 10 || r.Errors != 0 || !r.Relay || r.LatP50Ms <= 0 || r.ServerCPUUsPerOp <= 0 || r.Resume != nil {
		t.Fatalf("relay login: %+v", r)
	}
	if r.Exchange != "130/412,50/90|140/600,40000/70000,30/20" {
		t.Errorf("exchange %q", r.Exchange)
	}
	r = bench(t, 0, append(common, "--script", "|140/600,30/20", "--n", "12", "--concurrency", "3", "--resume")...)
	if r.Ops != 12 || r.Resume == nil || r.Full < 1 || r.Full > 3 || r.Resumed != 12-r.Full || r.ResumedPct < 70 {
		t.Fatalf("relay login --resume: %+v %+v", r, r.Resume)
	}
	// A client and the relay that disagree fail, not hang.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(strings.Repeat("x", relayFrameSize)))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); err == nil {
		t.Errorf("the relay answered %d bytes to a bad frame", n)
	}
}

// TestRelayMessages: pairs through the relay carry the messages
// scenario's stanzas, each delivered exactly once, and the relay pairs
// only the two connections of one token.
func TestRelayMessages(t *testing.T) {
	addr := startRelay(t)
	r := bench(t, 0, "--relay", "--addr", addr, "--domain", "localhost", "--scenario", "messages", "--n", "3", "--count", "300", "--window", "8", "--concurrency", "2")
	if r.Delivery == nil || !r.ExactlyOnce || r.Sent != 1800 || r.Delivered != 1800 || r.Misrouted != 0 || r.LatP99Ms <= 0 || !r.Relay {
		t.Fatalf("relay messages: %+v %+v", r, r.Delivery)
	}
}

// TestRelayReplaysLogin: the exchange recorded from a real login is one
// the relay can play: the same turns, plaintext (stream header,
// STARTTLS) and inside TLS (stream, SASL, bind, presence and roster,
// close).
func TestRelayReplaysLogin(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "u1", "secret")
	r := bench(t, 0, "--addr", srv.Addr, "--domain", srv.Domain, "--users", "u", "--password", "secret", "--scenario", "login", "--n", "3", "--accounts", "1", "--resume", "--concurrency", "1")
	p, tl, err := parseScript(r.Exchange)
	if err != nil || len(p) != 2 || len(tl) < 5 {
		t.Fatalf("exchange %q: %v", r.Exchange, err)
	}
	for _, tn := range append(p, tl...) {
		if tn.C <= 0 || tn.S <= 0 {
			t.Errorf("turn %+v of %q", tn, r.Exchange)
		}
	}
	if r.Resume == nil || r.Full < 1 || r.Resumed+r.Full != 3 {
		t.Errorf("resume: %+v", r.Resume)
	}
	t.Logf("exchange %s; resumed %d of 3 logins", r.Exchange, r.Resumed)
	addr := startRelay(t)
	rr := bench(t, 0, "--relay", "--addr", addr, "--domain", "localhost", "--scenario", "login", "--script", r.Exchange, "--n", strconv.Itoa(4))
	if rr.Ops != 4 || rr.Exchange != r.Exchange {
		t.Fatalf("relay replay: %+v", rr)
	}
}
