package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/tlsconf"
)

// pebble is Let's Encrypt's test ACME server (Debian's package pebble),
// run on loopback for one test: its validation requests go to the ports
// it was given, for names it resolves through the test's DNS server.
type pebble struct {
	dir   string // the ACME directory URL
	caPEM string // the file of the CA of its HTTPS listener
	roots *x509.CertPool
}

// startPebble runs pebble with PEBBLE_VA_NOSLEEP (no random delays
// before validations), no nonce refused at random and no authorization
// reused (each order proves its names again), asking dns about names and
// validating http-01 on httpPort and tls-alpn-01 on tlsPort of the
// addresses it finds.
func startPebble(t *testing.T, dns *dnstest.Server, httpPort, tlsPort int) *pebble {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	testbin.Require(t, "pebble (the Debian package pebble), the test ACME server", err == nil)
	dir := t.TempDir()
	ca, err := testca.New("pebble's listener")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.WriteFiles(dir, "localhost", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	listen, mgmt := testbin.FreePort(t), testbin.FreePort(t)
	conf, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    cert,
		"privateKey":                     key,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dns.Addr())
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble's output:\n%s", out.String())
		}
	})

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"},
	}}
	p := &pebble{dir: fmt.Sprintf("https://localhost:%d/dir", listen), caPEM: caFile}
	// Its root, made afresh at each start, once both its listeners
	// answer (the management one may start first).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := get(hc, p.dir)
		var root []byte
		if err == nil {
			root, err = get(hc, fmt.Sprintf("https://localhost:%d/roots/0", mgmt))
		}
		if err == nil {
			p.roots = x509.NewCertPool()
			if !p.roots.AppendCertsFromPEM(root) {
				t.Fatalf("pebble's root: no certificate in %q", root)
			}
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer in 30s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a process that starts
	}
}

func get(hc *http.Client, url string) ([]byte, error) {
	res, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, res.Status)
	}
	return b, err
}

// lockedBuffer is a bytes.Buffer for a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// presented makes a TLS handshake with addr for serverName and returns
// the leaf presented if it verifies against roots, else the error.
func presented(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitIssued waits until the handshakes with addr for every name present
// a certificate of pebble's, other than the one with serial not (nil:
// any), and returns the host's.
func waitIssued(t *testing.T, p *pebble, addr string, names []string, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var leaf *x509.Certificate
	for _, name := range names {
		for {
			l, err := presented(addr, name, p.roots)
			if err == nil && (not == nil || l.SerialNumber.Cmp(not.SerialNumber) != 0) {
				if leaf == nil {
					leaf = l
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not present a new certificate of pebble's for %s in 60s (last: %v)", addr, name, err)
			}
			time.Sleep(50 * time.Millisecond) // polling the server's issuance
		}
	}
	return leaf
}

// TestACME: with [tls] acme on, the server gets a certificate from an
// ACME CA (pebble) for its host and the domains of its services, by
// http-01 and by tls-alpn-01; the TLS listeners present it for each name;
// it is kept under data_dir/acme; a renewal replaces it for new
// handshakes while an XMPP session made before stays connected: the
// manager's own when its clock passes two thirds of the certificate's
// lifetime (http-01), or one asked for (tls-alpn-01).
func TestACME(t *testing.T) {
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	httpPort, tlsPort := testbin.FreePort(t), testbin.FreePort(t)
	p := startPebble(t, dns, httpPort, tlsPort)

	for _, tc := range []struct {
		challenge, host string
		clock           bool // renewal by the clock, else by Renew
	}{
		{config.ChallengeHTTP01, "http.example", true},
		{config.ChallengeTLSALPN01, "alpn.example", false},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			names := []string{tc.host, "conference." + tc.host, "upload." + tc.host}
			for _, n := range names {
				dns.SetA(n, netip.MustParseAddr("127.0.0.1"))
			}
			srv := testserver.Start(t, func(c *config.Config) {
				c.Server.Hosts = []string{tc.host}
				c.TLS.ACME = true
				c.TLS.ACMEDirectory = p.dir
				c.TLS.ACMECAFile = p.caPEM
				c.TLS.ACMEEmail = "admin@" + tc.host
				c.TLS.ACMEChallenge = tc.challenge
				c.TLS.ACMEHTTPListen = ""
				if tc.challenge == config.ChallengeHTTP01 {
					c.TLS.ACMEHTTPListen = "127.0.0.1:" + strconv.Itoa(httpPort)
				} else {
					// The CA's port 443.
					c.HTTP.TLSListen = []string{"127.0.0.1:" + strconv.Itoa(tlsPort)}
				}
			})
			// Every name on every TLS listener, the XMPP direct TLS
			// one and HTTPS.
			first := waitIssued(t, p, srv.DirectTLSAddr, names, nil)
			waitIssued(t, p, srv.HTTPSAddr, names, nil)
			for _, n := range names {
				if err := first.VerifyHostname(n); err != nil {
					t.Errorf("the certificate: %v", err)
				}
			}
			if _, err := os.Stat(filepath.Join(tlsconf.ACMEDir(srv.Config), tc.host+".crt")); err != nil {
				t.Errorf("kept in data_dir/acme: %v", err)
			}
			if lines := srv.LogLines("acme: new certificate"); len(lines) != 1 {
				t.Errorf("log lines of new certificates: %q, want one", lines)
			}

			// A session made with the first certificate outlives its
			// renewal.
			srv.AddUser(t, "alice", "alice-secret")
			alice := xmpptest.Login(t, srv.Addr, tc.host, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
			if tc.clock {
				due := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 2 / 3)
				srv.ACME().SetClock(func() time.Time { return due.Add(time.Second) })
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := srv.ACME().Renew(ctx, tc.host); err != nil {
					t.Fatalf("Renew: %v", err)
				}
			}
			second := waitIssued(t, p, srv.DirectTLSAddr, names, first)
			// Back to the real time, so that the new certificate is
			// not due: pebble dates it by that.
			srv.ACME().SetClock(time.Now)
			if !second.NotBefore.After(first.NotBefore.Add(-time.Second)) {
				t.Errorf("renewed certificate from %v, the first from %v", second.NotBefore, first.NotBefore)
			}
			alice.Send("<iq type='get' id='after-renewal'><ping xmlns='urn:xmpp:ping'/></iq>")
			if el := alice.MustNext(); el.Name.Local != "iq" || el.AttrValue("id") != "after-renewal" || el.AttrValue("type") != "result" {
				t.Fatalf("the session after the renewal: %s", el.Raw)
			}
		})
	}
}

// TestACMEFailureExplained: a CA that cannot validate the names (nothing
// answers on its http-01 port) is logged with what it could not reach,
// and the hosts keep their self-signed certificates meanwhile.
func TestACMEFailureExplained(t *testing.T) {
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	p := startPebble(t, dns, testbin.FreePort(t), testbin.FreePort(t))
	dns.SetA("fail.example", netip.MustParseAddr("127.0.0.1"))
	dns.SetA("conference.fail.example", netip.MustParseAddr("127.0.0.1"))
	dns.SetA("upload.fail.example", netip.MustParseAddr("127.0.0.1"))
	srv := testserver.Start(t, func(c *config.Config) {
		c.Server.Hosts = []string{"fail.example"}
		c.TLS.ACME = true
		c.TLS.ACMEDirectory = p.dir
		c.TLS.ACMECAFile = p.caPEM
		c.TLS.ACMEHTTPListen = "127.0.0.1:0" // not the port pebble asks
	})
	deadline := time.Now().Add(60 * time.Second)
	for len(srv.LogLines("acme: no certificate")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no failure logged in 60s")
		}
		time.Sleep(50 * time.Millisecond) // polling the server's log
	}
	line := srv.LogLines("acme: no certificate")[0]
	for _, want := range []string{"fail.example", "http-01", "port 80", "retry_in=1m0s"} {
		if !strings.Contains(line, want) {
			t.Errorf("the failure's log line lacks %q: %s", want, line)
		}
	}
	if _, err := presented(srv.DirectTLSAddr, "fail.example", srv.CertPool(t)); err != nil {
		t.Errorf("the self-signed certificate meanwhile: %v", err)
	}
}
