package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/fakeclock"
)

// result is one loopback handshake seen from both ends.
type result struct {
	client tls.ConnectionState
	leaf   *x509.Certificate // the server's PresentedLeaf
	err    error
}

// dialLoopback makes a TLS connection over loopback TCP between srv and a
// client with cli, reads one byte of application data (so that the
// client has taken the server's TLS 1.3 tickets), and closes it.
func dialLoopback(t testing.TB, s *Store, srv, cli *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(nc, srv)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		leaf := s.PresentedLeaf(tc)
		_, err = tc.Write([]byte("x"))
		done <- result{leaf: leaf, err: err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(nc, cli)
	var cerr error
	if cerr = tc.Handshake(); cerr == nil {
		_, cerr = tc.Read(make([]byte, 1))
	}
	if cerr != nil {
		nc.Close()
	}
	r := <-done
	if cerr != nil {
		return result{err: cerr}
	}
	r.client = tc.ConnectionState()
	return r
}

func resumingClient(name string, version uint16, cache tls.ClientSessionCache) *tls.Config {
	c := clientConfig(name)
	c.MinVersion, c.MaxVersion = version, version
	c.ClientSessionCache = cache
	return c
}

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// A client resumes its session (RFC 5077, RFC 8446 §2.2) on every
// configuration the Store hands out, each call's and each set of ALPN
// protocols alike: they share the Store's ticket keys.
func TestSessionResumption(t *testing.T) {
	s := newStore(t, testConfig(t, "a.example"))
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			for _, tc := range []struct {
				name        string
				first, then *tls.Config
			}{
				{"STARTTLS, a config per connection", s.ServerConfig(), s.ServerConfig()},
				{"direct TLS", s.ServerConfig("xmpp-client"), s.ServerConfig("xmpp-client")},
				{"across ALPN sets", s.ServerConfig(), s.ServerConfig("xmpp-client")},
				{"across listeners", s.ServerConfig("http/1.1"), s.ServerConfig("xmpp-server")},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cli := resumingClient("a.example", v.v, tls.NewLRUClientSessionCache(4))
					r := dialLoopback(t, s, tc.first, cli)
					if r.err != nil {
						t.Fatal(r.err)
					}
					if r.client.DidResume {
						t.Fatal("first connection resumed")
					}
					r = dialLoopback(t, s, tc.then, cli)
					if r.err != nil {
						t.Fatal(r.err)
					}
					if !r.client.DidResume {
						t.Error("second connection did not resume")
					}
					if r.client.Version != v.v {
						t.Errorf("version %x", r.client.Version)
					}
					if !bytes.Equal(r.leaf.Raw, s.Leaf("a.example").Raw) {
						t.Error("PresentedLeaf of a resumed session is not the host's certificate")
					}
				})
			}
		})
	}
}

// Tickets survive a Reload that keeps a host's certificates; a host whose
// certificate changed makes its clients do a full handshake, and see the
// new one.
func TestResumptionAfterReload(t *testing.T) {
	cfg := testConfig(t, "a.example", "b.example")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writePair(t, crt, key, "b.example", time.Now())
	cfg.Hosts["b.example"] = config.Host{TLS: config.CertFiles{Cert: crt, Key: key}}
	s := newStore(t, cfg)
	srv := s.ServerConfig("xmpp-client")
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			a := resumingClient("a.example", v.v, tls.NewLRUClientSessionCache(4))
			b := resumingClient("b.example", v.v, tls.NewLRUClientSessionCache(4))
			for _, cli := range []*tls.Config{a, b} {
				if r := dialLoopback(t, s, srv, cli); r.err != nil || r.client.DidResume {
					t.Fatalf("first connection: resumed %v, %v", r.client.DidResume, r.err)
				}
			}
			writePair(t, crt, key, "b.example", time.Now()) // renewed
			if err := s.Reload(cfg); err != nil {
				t.Fatal(err)
			}
			if r := dialLoopback(t, s, srv, a); r.err != nil || !r.client.DidResume {
				t.Errorf("a.example after Reload: resumed %v, %v", r.client.DidResume, r.err)
			}
			r := dialLoopback(t, s, srv, b)
			if r.err != nil || r.client.DidResume {
				t.Errorf("b.example with a new certificate: resumed %v, %v", r.client.DidResume, r.err)
			} else if !bytes.Equal(r.client.PeerCertificates[0].Raw, readLeaf(t, crt).Raw) {
				t.Error("b.example: not the new certificate")
			}
			if r := dialLoopback(t, s, srv, b); r.err != nil || !r.client.DidResume {
				t.Errorf("b.example, then: resumed %v, %v", r.client.DidResume, r.err)
			}
		})
	}
}

// Ticket keys rotate by the Store's clock: a ticket resumes while its key
// is in the ring, and once it has left it the handshake is a full one,
// not an error.
func TestTicketKeyRotation(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			clock := fakeclock.New(time.Now())
			cfg := testConfig(t, "a.example")
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			s, err := newWithClock(cfg, clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			srv := s.ServerConfig()
			connect := func(cli *tls.Config) bool {
				t.Helper()
				r := dialLoopback(t, s, srv, cli)
				if r.err != nil {
					t.Fatal(r.err)
				}
				return r.client.DidResume
			}
			keys := func() int {
				s.tickets.mu.Lock()
				defer s.tickets.mu.Unlock()
				return len(s.tickets.keys)
			}
			early := resumingClient("a.example", v.v, tls.NewLRUClientSessionCache(4))
			connect(early) // a ticket under the first key
			clock.Advance(TicketKeyPeriod + time.Minute)
			later := resumingClient("a.example", v.v, tls.NewLRUClientSessionCache(4))
			connect(later) // rotates: a ticket under the second key
			if n := keys(); n != 2 {
				t.Errorf("%d keys after one period, want 2", n)
			}
			clock.Advance(TicketKeyLifetime - TicketKeyPeriod) // the first key is past its lifetime
			if connect(early) {
				t.Error("a ticket whose key left the ring resumed")
			}
			if !connect(later) {
				t.Error("a ticket whose key is in the ring did not resume")
			}
			for range 10 {
				clock.Advance(TicketKeyPeriod)
				connect(later)
			}
			if n := keys(); n != int(TicketKeyLifetime/TicketKeyPeriod) {
				t.Errorf("%d keys, want %d", n, TicketKeyLifetime/TicketKeyPeriod)
			}
			// Idle for days: no key is left to open any ticket.
			clock.Advance(3 * TicketKeyLifetime)
			if connect(later) {
				t.Error("resumed after days idle")
			}
			if n := keys(); n != 1 {
				t.Errorf("%d keys after days idle, want 1", n)
			}
		})
	}
}

// A host with an RSA and an ECDSA certificate presents ECDSA to clients
// that accept it, RSA to the others, and PresentedLeaf tells which
// (RFC 5929 §4.1).
func TestDualCertificates(t *testing.T) {
	cfg := testConfig(t, "a.example", "b.example")
	dir := t.TempDir()
	files := writeDual(t, dir, "b.example")
	cfg.Hosts["b.example"] = config.Host{TLS: files}
	s := newStore(t, cfg)
	rsaLeaf, ecLeaf := readLeaf(t, files.Cert), readLeaf(t, files.ECDSACert)
	if !bytes.Equal(s.Leaf("b.example").Raw, ecLeaf.Raw) {
		t.Error("Leaf is not the ECDSA certificate")
	}
	srv := s.ServerConfig("xmpp-client")
	for _, tc := range []struct {
		name    string
		version uint16
		suites  []uint16
		want    *x509.Certificate
	}{
		{"TLS1.3", tls.VersionTLS13, nil, ecLeaf},
		{"TLS1.2 any", tls.VersionTLS12, nil, ecLeaf},
		{"TLS1.2 ECDHE_ECDSA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, ecLeaf},
		{"TLS1.2 ECDHE_RSA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, rsaLeaf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := resumingClient("b.example", tc.version, tls.NewLRUClientSessionCache(4))
			cli.CipherSuites = tc.suites
			for i, resumed := range []bool{false, true} {
				r := dialLoopback(t, s, srv, cli)
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.client.DidResume != resumed {
					t.Fatalf("connection %d: resumed %v", i, r.client.DidResume)
				}
				if got := r.client.PeerCertificates[0]; !bytes.Equal(got.Raw, tc.want.Raw) {
					t.Errorf("connection %d: presented the %s certificate", i, got.PublicKeyAlgorithm)
				}
				if !bytes.Equal(r.leaf.Raw, tc.want.Raw) {
					t.Errorf("connection %d: PresentedLeaf is the %s certificate", i, r.leaf.PublicKeyAlgorithm)
				}
			}
		})
	}
	if n := len(s.chosen.m); n != 0 {
		t.Errorf("%d choices left behind", n)
	}
	// a.example, with one certificate, is not concerned.
	r := dialLoopback(t, s, srv, clientConfig("a.example"))
	if r.err != nil || !bytes.Equal(r.leaf.Raw, s.Leaf("a.example").Raw) {
		t.Errorf("a.example: %v", r.err)
	}
}

// Choices nobody takes (failed handshakes, listeners without channel
// binding) are swept.
func TestChosenSwept(t *testing.T) {
	var c chosenLeaves
	now := time.Now()
	a, _ := net.Pipe()
	leaf := &x509.Certificate{}
	c.record(a, leaf, now)
	c.record(a, leaf, now.Add(chosenMaxAge)) // the same conn, replaced
	b, _ := net.Pipe()
	c.record(b, leaf, now.Add(2*chosenMaxAge+time.Minute))
	if len(c.m) != 1 || c.take(b) != leaf || c.take(a) != nil {
		t.Errorf("left %d", len(c.m))
	}
}

// writeDual writes an RSA and an ECDSA certificate for host and its
// subdomains, and their keys, into dir.
func writeDual(t testing.TB, dir, host string) config.CertFiles {
	t.Helper()
	f := config.CertFiles{
		Cert: filepath.Join(dir, host+".rsa.crt"), Key: filepath.Join(dir, host+".rsa.key"),
		ECDSACert: filepath.Join(dir, host+".ec.crt"), ECDSAKey: filepath.Join(dir, host+".ec.key"),
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeCert(t, f.Cert, f.Key, rk, []string{host, "*." + host})
	writeCert(t, f.ECDSACert, f.ECDSAKey, ek, []string{host, "*." + host})
	return f
}

// writeCert writes a self-signed certificate for names with key.
func writeCert(t testing.TB, crt, keyPath string, key crypto.Signer, names []string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}
