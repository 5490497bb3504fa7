package tlsconf

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/fakeclock"
)

// issuedFor is a certificate for exactly names, valid for 90 days from
// now, as Let's Encrypt issues them.
func issuedFor(t *testing.T, names []string, now time.Time) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		DNSNames:     slices.Clone(names),
		NotBefore:    now,
		NotAfter:     now.Add(90 * 24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// fakeCA stands for the CA: it issues what it is asked for, or fails.
type fakeCA struct {
	t     *testing.T
	clock *fakeclock.Clock
	mu    sync.Mutex
	asked [][]string
	fail  error
}

func (ca *fakeCA) issue(_ context.Context, names []string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.fail != nil {
		return nil, ca.fail
	}
	ca.asked = append(ca.asked, slices.Clone(names))
	return issuedFor(ca.t, names, ca.clock.Now()), nil
}

func (ca *fakeCA) count() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return len(ca.asked)
}

// TestACMESchedule: the manager gets a missing certificate at once, for
// the host and its services; renews it when two thirds of its lifetime
// have passed and not before; at once when a service's name is not
// covered; after a failure, tries again after a minute, then two; and the
// store presents each new certificate for every name.
func TestACMESchedule(t *testing.T) {
	const day = 24 * time.Hour
	cfg := testConfig(t, "a.example", "b.example")
	cfg.TLS.ACME = true
	cfg.Hosts["b.example"] = hostWithFiles(t)
	s := newStore(t, cfg)
	services := []string{"conference.a.example"}
	var mu sync.Mutex
	m, err := NewACME(cfg, s, slog.New(slog.DiscardHandler), func(host string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(services)
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ca := &fakeCA{t: t, clock: clock}
	m.issue = ca.issue
	m.SetClock(clock.Now)
	ctx := context.Background()

	// Before the CA answers: the self-signed certificate.
	selfSigned := s.Certificate("a.example")
	round := func(wantIssued int, wantNext time.Duration) {
		t.Helper()
		next := m.round(ctx)
		if n := ca.count(); n != wantIssued {
			t.Fatalf("%d certificates issued, want %d", n, wantIssued)
		}
		if d := next.Sub(clock.Now()); d != wantNext {
			t.Errorf("next round in %v, want %v", d, wantNext)
		}
	}
	round(1, 60*day)
	if got := ca.asked[0]; !slices.Equal(got, []string{"a.example", "conference.a.example"}) {
		t.Errorf("names asked for: %q", got)
	}
	first := s.Certificate("a.example")
	if first == selfSigned || s.Certificate("conference.a.example") != first {
		t.Fatal("the store does not present the new certificate for the host and its service")
	}
	if s.Certificate("b.example") == first {
		t.Fatal("a host with files of its own got the ACME certificate")
	}

	clock.Advance(59 * day)
	round(1, day)
	clock.Advance(day)
	round(2, 60*day)
	if s.Certificate("a.example") == first {
		t.Fatal("the renewed certificate is not presented")
	}

	// A new service: its name is not covered.
	mu.Lock()
	services = append(services, "upload.a.example")
	mu.Unlock()
	round(3, 60*day)
	if err := s.Certificate("upload.a.example").Leaf.VerifyHostname("upload.a.example"); err != nil {
		t.Fatalf("the new service's name: %v", err)
	}

	// Failures: a minute, then two; then success.
	ca.fail = errors.New("the CA is down")
	clock.Advance(60 * day)
	round(3, time.Minute)
	clock.Advance(time.Minute)
	round(3, 2*time.Minute)
	clock.Advance(time.Minute)
	round(3, time.Minute) // not yet
	ca.fail = nil
	clock.Advance(time.Minute)
	round(4, 60*day)

	if err := m.Renew(ctx, "b.example"); err == nil {
		t.Error("Renew of a host with files of its own succeeded")
	}
}

// TestACMERun: Run gets the missing certificate, then, told of a clock
// past two thirds of its lifetime (SetClock), renews it, and stops with
// its context.
func TestACMERun(t *testing.T) {
	cfg := testConfig(t, "a.example")
	cfg.TLS.ACME = true
	s := newStore(t, cfg)
	m, err := NewACME(cfg, s, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	ca := &fakeCA{t: t, clock: clock}
	m.issue = ca.issue
	m.SetClock(clock.Now)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	// The certificate presented is the one issued at the clock's time.
	waitPresented := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !s.Certificate("a.example").Leaf.NotBefore.Equal(clock.Now()) {
			if time.Now().After(deadline) {
				t.Fatalf("no certificate from %v presented in 10s (%d issued)", clock.Now(), ca.count())
			}
			time.Sleep(time.Millisecond) // polling the manager's goroutine
		}
	}
	waitPresented()
	clock.Advance(61 * 24 * time.Hour)
	m.SetClock(clock.Now)
	waitPresented()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := ca.count(); n != 2 {
		t.Errorf("%d certificates issued, want 2", n)
	}
}

// hostWithFiles is a host override with certificate files.
func hostWithFiles(t *testing.T) config.Host {
	t.Helper()
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writePair(t, crt, key, "b.example", time.Now())
	return config.Host{TLS: config.CertFiles{Cert: crt, Key: key}}
}

// TestACMEHTTPChallenge: the http-01 handler answers a known token with
// its key authorization, and 404 to anything else.
func TestACMEHTTPChallenge(t *testing.T) {
	cfg := testConfig(t, "a.example")
	cfg.TLS.ACME = true
	s := newStore(t, cfg)
	m, err := NewACME(cfg, s, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.tokens["tok"] = "tok.thumbprint"
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", ACMEChallengePath + "tok", 200, "tok.thumbprint"},
		{"GET", ACMEChallengePath + "other", 404, ""},
		{"POST", ACMEChallengePath + "tok", 404, ""},
		{"GET", "/tok", 404, ""},
	} {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code || (tc.code == http.StatusOK && w.Body.String() != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

// TestACMEChallengeHandshake: a handshake offering only acme-tls/1 gets
// the challenge certificate of its server name (RFC 8737 §3), or fails
// when there is none; other handshakes are not affected.
func TestACMEChallengeHandshake(t *testing.T) {
	cfg := testConfig(t, "a.example")
	cfg.TLS.ACME = true
	cfg.TLS.ACMEChallenge = "tls-alpn-01"
	s := newStore(t, cfg)
	m, err := NewACME(cfg, s, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	chal, err := m.client.TLSALPN01ChallengeCert("token", "a.example")
	if err != nil {
		t.Fatal(err)
	}
	m.alpn["a.example"] = &chal
	cs, err := handshake(t, s.ServerConfig("xmpp-client"), &tls.Config{ServerName: "a.example", InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}})
	if err != nil {
		t.Fatal(err)
	}
	if cs.NegotiatedProtocol != "acme-tls/1" || !bytes.Equal(cs.PeerCertificates[0].Raw, chal.Certificate[0]) {
		t.Errorf("acme-tls/1 handshake: protocol %q, certificate for %q", cs.NegotiatedProtocol, cs.PeerCertificates[0].DNSNames)
	}
	if _, err := handshake(t, s.ServerConfig("xmpp-client"), &tls.Config{ServerName: "other.example", InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}}); err == nil {
		t.Error("acme-tls/1 handshake without a challenge succeeded")
	}
	cs, err = handshake(t, s.ServerConfig("xmpp-client"), &tls.Config{ServerName: "a.example", InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	if !cs.PeerCertificates[0].Equal(s.Leaf("a.example")) {
		t.Error("an ordinary handshake did not get the host's certificate")
	}
}
