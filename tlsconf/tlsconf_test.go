package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
)

func testConfig(t testing.TB, hosts ...string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Hosts = hosts
	cfg.Server.DataDir = t.TempDir()
	return cfg
}

func newStore(t *testing.T, cfg *config.Config) *Store {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake runs a TLS handshake over net.Pipe between srv and a client
// with cli, and returns the client's view of the connection.
func handshake(t *testing.T, srv, cli *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	server, client := tls.Server(sc, srv), tls.Client(cc, cli)
	serr := make(chan error, 1)
	go func() {
		err := server.Handshake()
		if err != nil {
			sc.Close() // unblock the client
		}
		serr <- err
	}()
	cerr := client.Handshake()
	if cerr != nil {
		cc.Close()
	} else {
		// net.Pipe is synchronous: keep reading so that the server can
		// finish writing (TLS 1.3 session tickets).
		go io.Copy(io.Discard, client)
	}
	err := <-serr
	sc.Close()
	cc.Close()
	if cerr != nil {
		return tls.ConnectionState{}, cerr
	}
	if err != nil {
		return tls.ConnectionState{}, err
	}
	return client.ConnectionState(), nil
}

func clientConfig(serverName string) *tls.Config {
	// Self-signed certificates: the tests compare the presented
	// certificate with the expected one instead of verifying a chain.
	return &tls.Config{ServerName: serverName, InsecureSkipVerify: true}
}

func TestSelfSignedGeneratedAndReused(t *testing.T) {
	cfg := testConfig(t, "a.example", "bücher.example")
	s := newStore(t, cfg)
	dir := filepath.Join(cfg.Server.DataDir, "certs")

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("certs dir mode %v, want 0700", fi.Mode().Perm())
	}
	for _, name := range []string{"a.example", "xn--bcher-kva.example"} {
		fi, err := os.Stat(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %v, want 0600", name, fi.Mode().Perm())
		}
		leaf := s.Leaf(name)
		if !slices.Equal(leaf.DNSNames, []string{name, "*." + name}) {
			t.Errorf("%s: DNSNames %v", name, leaf.DNSNames)
		}
		if err := leaf.VerifyHostname(name); err != nil {
			t.Error(err)
		}
		// A service on a subdomain (XEP-0045's conference.host) is
		// covered, and presented the host's certificate.
		if got := s.Leaf("conference." + name); got != leaf {
			t.Errorf("conference.%s presented %v", name, got.DNSNames)
		} else if err := leaf.VerifyHostname("conference." + name); err != nil {
			t.Error(err)
		}
		if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Errorf("%s: expires in %v, want a year", name, d)
		}
		if leaf.NotBefore.After(time.Now()) {
			t.Errorf("%s: not valid yet", name)
		}
		if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", name, leaf.PublicKey)
		}
	}
	certFile := filepath.Join(dir, "a.example.crt")
	before, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}

	// A second start reuses the files.
	s2 := newStore(t, cfg)
	for _, h := range cfg.Server.Hosts {
		if !bytes.Equal(s.Leaf(h).Raw, s2.Leaf(h).Raw) {
			t.Errorf("%s: certificate regenerated on second start", h)
		}
	}
	after, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("certificate file rewritten on second start")
	}
	// And so does Reload.
	if err := s2.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Leaf("a.example").Raw, s2.Leaf("a.example").Raw) {
		t.Error("certificate regenerated on reload")
	}
}

func TestSelfSignedRegenerated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, crt, key string)
	}{
		{"expired", func(t *testing.T, crt, key string) {
			writePair(t, crt, key, "a.example", time.Now().Add(-2*selfSignedLifetime))
		}},
		{"expiring in days", func(t *testing.T, crt, key string) {
			writePair(t, crt, key, "a.example", time.Now().Add(-selfSignedLifetime+3*24*time.Hour))
		}},
		{"for another name", func(t *testing.T, crt, key string) {
			writePair(t, crt, key, "b.example", time.Now())
		}},
		{"damaged", func(t *testing.T, crt, key string) {
			if err := os.WriteFile(crt, []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "a.example")
			dir := filepath.Join(cfg.Server.DataDir, "certs")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			crt, key := filepath.Join(dir, "a.example.crt"), filepath.Join(dir, "a.example.key")
			writePair(t, crt, key, "a.example", time.Now()) // key file present in every case
			tc.write(t, crt, key)
			old, _ := os.ReadFile(crt)

			s := newStore(t, cfg)
			leaf := s.Leaf("a.example")
			if time.Until(leaf.NotAfter) < 364*24*time.Hour || leaf.VerifyHostname("a.example") != nil {
				t.Errorf("not regenerated: expires %v, names %v", leaf.NotAfter, leaf.DNSNames)
			}
			now, _ := os.ReadFile(crt)
			if bytes.Equal(old, now) {
				t.Error("file not replaced")
			}
			// The replacement is what the next start uses.
			if s2 := newStore(t, cfg); !bytes.Equal(s2.Leaf("a.example").Raw, leaf.Raw) {
				t.Error("replacement not reused")
			}
		})
	}
}

func TestSNISelectsHostCertificate(t *testing.T) {
	s := newStore(t, testConfig(t, "a.example", "b.example", "bücher.example"))
	srv := s.ServerConfig()
	for _, tc := range []struct{ sni, want string }{
		{"a.example", "a.example"},
		{"b.example", "b.example"},
		{"B.Example", "b.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"conference.b.example", "b.example"}, // a service of b.example
		{"unknown.example", "a.example"},      // default: the first host
		{"", "a.example"},                     // no SNI
	} {
		t.Run(tc.sni, func(t *testing.T) {
			st, err := handshake(t, srv, clientConfig(tc.sni))
			if err != nil {
				t.Fatal(err)
			}
			got := st.PeerCertificates[0]
			if !slices.Equal(got.DNSNames, []string{tc.want, "*." + tc.want}) {
				t.Errorf("presented %v, want %s", got.DNSNames, tc.want)
			}
			if !bytes.Equal(got.Raw, s.Leaf(tc.sni).Raw) {
				t.Error("Leaf does not match the presented certificate")
			}
		})
	}
}

func TestTLSVersions(t *testing.T) {
	s := newStore(t, testConfig(t, "a.example"))
	for _, tc := range []struct {
		name     string
		min, max uint16
		want     uint16 // 0: refused
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, 0},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, 0},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, tls.VersionTLS13},
		{"best", 0, 0, tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := clientConfig("a.example")
			cli.MinVersion, cli.MaxVersion = tc.min, tc.max
			st, err := handshake(t, s.ServerConfig(), cli)
			if err != nil {
				t.Log(err)
			}
			switch {
			case tc.want == 0 && err == nil:
				t.Errorf("handshake succeeded with version %x", st.Version)
			case tc.want != 0 && err != nil:
				t.Error(err)
			case tc.want != 0 && st.Version != tc.want:
				t.Errorf("version %x, want %x", st.Version, tc.want)
			}
		})
	}
}

// The direct TLS listener negotiates ALPN "xmpp-client" (XEP-0368 §3).
func TestALPN(t *testing.T) {
	s := newStore(t, testConfig(t, "a.example"))
	direct := s.ServerConfig("xmpp-client")

	cli := clientConfig("a.example")
	cli.NextProtos = []string{"xmpp-client"}
	st, err := handshake(t, direct, cli)
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocol != "xmpp-client" {
		t.Errorf("negotiated %q", st.NegotiatedProtocol)
	}

	// A client that sends no ALPN still connects.
	st, err = handshake(t, direct, clientConfig("a.example"))
	if err != nil || st.NegotiatedProtocol != "" {
		t.Errorf("without ALPN: %q, %v", st.NegotiatedProtocol, err)
	}

	// The STARTTLS listener offers none.
	st, err = handshake(t, s.ServerConfig(), cli)
	if err != nil || st.NegotiatedProtocol != "" {
		t.Errorf("STARTTLS config: %q, %v", st.NegotiatedProtocol, err)
	}
}

func TestPerHostCertificateFiles(t *testing.T) {
	cfg := testConfig(t, "a.example", "b.example")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writePair(t, crt, key, "b.example", time.Now())
	cfg.Hosts["b.example"] = config.Host{TLS: config.CertFiles{Cert: crt, Key: key}}
	s := newStore(t, cfg)

	if got, want := s.Leaf("b.example").Raw, readLeaf(t, crt).Raw; !bytes.Equal(got, want) {
		t.Error("b.example does not use its configured certificate")
	}
	if _, err := os.Stat(filepath.Join(cfg.Server.DataDir, "certs", "b.example.crt")); err == nil {
		t.Error("a self-signed certificate was generated for a host with its own")
	}
	if s.Leaf("a.example").VerifyHostname("a.example") != nil {
		t.Error("a.example has no self-signed certificate")
	}

	// A global [tls] applies to every host without its own.
	cfg.TLS = config.TLS{Cert: crt, Key: key}
	cfg.Hosts = nil
	s = newStore(t, cfg)
	if !bytes.Equal(s.Leaf("a.example").Raw, s.Leaf("b.example").Raw) {
		t.Error("global certificate not used for every host")
	}
}

func TestReload(t *testing.T) {
	cfg := testConfig(t, "a.example")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	writePair(t, crt, key, "a.example", time.Now())
	cfg.TLS = config.TLS{Cert: crt, Key: key}
	s := newStore(t, cfg)
	srv := s.ServerConfig("xmpp-client") // taken once, like a listener does

	presented := func() []byte {
		t.Helper()
		st, err := handshake(t, srv, clientConfig("a.example"))
		if err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].Raw
	}
	first := presented()
	if !bytes.Equal(first, readLeaf(t, crt).Raw) {
		t.Fatal("configured certificate not presented")
	}

	// A renewed certificate (say, by certbot) is picked up on reload.
	writePair(t, crt, key, "a.example", time.Now())
	second := readLeaf(t, crt).Raw
	if !bytes.Equal(presented(), first) {
		t.Error("certificate changed before Reload")
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(presented(), second) {
		t.Error("Reload did not pick up the new certificate")
	}
	if !bytes.Equal(s.Leaf("a.example").Raw, second) {
		t.Error("Leaf not updated")
	}

	// A broken file: Reload fails and the old certificate stays.
	if err := os.WriteFile(crt, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err == nil {
		t.Fatal("Reload with a broken certificate succeeded")
	} else {
		t.Log(err)
	}
	if !bytes.Equal(presented(), second) {
		t.Error("broken reload replaced the certificate")
	}
	if !bytes.Equal(s.Leaf("a.example").Raw, second) {
		t.Error("broken reload changed Leaf")
	}

	// New refuses to start with it.
	if _, err := New(cfg); err == nil {
		t.Error("New with a broken certificate succeeded")
	}
}

// Handshakes and Leaf lookups run while certificates are reloaded (run
// with -race).
func TestConcurrentReload(t *testing.T) {
	cfg := testConfig(t, "a.example", "b.example")
	s := newStore(t, cfg)
	srv := s.ServerConfig()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.Leaf("b.example") == nil {
					t.Error("nil leaf")
					return
				}
			}
		})
	}
	for range 5 {
		if err := s.Reload(cfg); err != nil {
			t.Error(err)
		}
		if _, err := handshake(t, srv, clientConfig("b.example")); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

// writePair writes a certificate for host, valid from notBefore for a
// year, and its key.
func writePair(t *testing.T, crt, key, host string, notBefore time.Time) {
	t.Helper()
	certPEM, keyPEM, err := generate(host, notBefore.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crt, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readLeaf(t *testing.T, crt string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", crt)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
