package anchor

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testca"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// The addresses of this package's tests, which no other test uses.
const (
	plainAddr = "127.0.0.26"
	peerAddr  = "127.0.0.27"
)

var install struct {
	once sync.Once
	err  error
}

// requireServers skips (or fails under STARLING_REQUIRE_ALL=1) unless the
// servers can run here: root, and the packages installed or installable.
func requireServers(t *testing.T) {
	t.Helper()
	testbin.Require(t, "root (to install and run Prosody and ejabberd)", os.Getuid() == 0)
	install.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		install.err = Install(ctx)
	})
	testbin.Require(t, fmt.Sprintf("prosody and ejabberd from Debian packages: %v", install.err), install.err == nil)
}

// workDir is a directory ejabberd, which runs as its own user, may enter
// (t.TempDir's parent is root's only).
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "starling-anchor-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestAnchor: each server as conformance/anchors and bench/compare run
// it: Domain, its self-signed certificate, a client logs in.
func TestAnchor(t *testing.T) {
	requireServers(t)
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			a, err := Start(context.Background(), Options{Name: name, Addr: plainAddr, Dir: workDir(t), Accounts: map[string]string{"alice": "secret"}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Stop()
			if a.Domain != Domain || a.CAFile != filepath.Join(a.Dir, Domain+".crt") {
				t.Errorf("domain %q, CA file %q", a.Domain, a.CAFile)
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(plainAddr, S2SPort), time.Second); err == nil {
				c.Close()
				t.Errorf("an anchor that is no federation peer listens on %s", S2SPort)
			}
			c := xmpptest.Login(t, net.JoinHostPort(plainAddr, StartTLSPort), Domain, "alice", "secret", "PLAIN", "r")
			if !strings.HasPrefix(c.JID, "alice@"+Domain+"/") {
				t.Errorf("bound %s", c.JID)
			}
			if !strings.Contains(a.Log(), "==> "+a.LogFiles()[0]) {
				t.Errorf("Log does not name its files:\n%s", a.Log())
			}
		})
	}
}

// TestPeer: a federation peer serves its own domain with a certificate
// from the CA, listens for servers, and sees the test's names in its
// own /etc/hosts and /etc/resolv.conf, which the machine does not.
func TestPeer(t *testing.T) {
	requireServers(t)
	ca, err := testca.New("anchor test CA")
	if err != nil {
		t.Fatal(err)
	}
	hostsBefore, _ := os.ReadFile("/etc/hosts")
	resolvBefore, _ := os.ReadFile("/etc/resolv.conf")
	for _, name := range []string{"prosody", "ejabberd"} {
		for _, auth := range []Auth{External, DialbackOnly} {
			t.Run(name+"/"+auth.String(), func(t *testing.T) {
				domain := name + ".test"
				a, err := Start(context.Background(), Options{
					Name: name, Addr: peerAddr, Dir: workDir(t), Domain: domain,
					Accounts: map[string]string{"alice": "secret"},
					CA:       ca,
					S2S:      &S2S{Auth: auth, Hosts: map[string]string{"other.test": "127.0.0.99"}, Nameserver: "127.0.0.98"},
				})
				if err != nil {
					t.Fatal(err)
				}
				defer a.Stop()
				c := xmpptest.Login(t, net.JoinHostPort(peerAddr, StartTLSPort), domain, "alice", "secret", "PLAIN", "r")
				if !strings.HasPrefix(c.JID, "alice@"+domain+"/") {
					t.Errorf("bound %s", c.JID)
				}
				// What the server process sees as /etc: its mount
				// namespace's.
				pid, err := a.PID()
				if err != nil {
					t.Fatal(err)
				}
				root := filepath.Join("/proc", strconv.Itoa(pid), "root")
				if b, err := os.ReadFile(filepath.Join(root, "etc/hosts")); err != nil || !bytes.Contains(b, []byte("127.0.0.99\tother.test")) {
					t.Errorf("the server's /etc/hosts: %v\n%s", err, b)
				}
				if b, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); err != nil || !bytes.Contains(b, []byte("nameserver 127.0.0.98")) {
					t.Errorf("the server's /etc/resolv.conf: %v\n%s", err, b)
				}
				// Both s2s ports speak TLS with the CA's certificate
				// for the domain: STARTTLS on one, direct TLS on the
				// other.
				for _, port := range []string{S2SPort, S2SDirectTLSPort} {
					checkS2STLS(t, ca, net.JoinHostPort(peerAddr, port), domain, port == S2SDirectTLSPort)
				}
			})
		}
	}
	if b, _ := os.ReadFile("/etc/hosts"); !bytes.Equal(b, hostsBefore) {
		t.Errorf("/etc/hosts changed:\n%s", b)
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(b, resolvBefore) {
		t.Errorf("/etc/resolv.conf changed:\n%s", b)
	}
}

// checkS2STLS connects to a server's s2s port at addr as a server would:
// STARTTLS (RFC 6120 §5) or direct TLS with ALPN xmpp-server (XEP-0368),
// and checks that its certificate verifies for domain against ca.
func checkS2STLS(t *testing.T, ca *testca.CA, addr, domain string, direct bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, xmpptest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(xmpptest.Timeout))
	cfg := &tls.Config{ServerName: domain, RootCAs: ca.Pool(), NextProtos: []string{"xmpp-server"}}
	if !direct {
		r := stream.NewReader(conn, stream.Limits{MaxElementBytes: 1 << 16, MaxDepth: 20})
		fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='other.test' to='%s' version='1.0'>", domain)
		if _, err := r.ReadHeader(); err != nil {
			t.Fatalf("%s: stream header: %v", addr, err)
		}
		features, err := r.Next()
		if err != nil || !bytes.Contains(features.Raw, []byte("urn:ietf:params:xml:ns:xmpp-tls")) {
			t.Fatalf("%s: features without STARTTLS: %v %s", addr, err, features.Raw)
		}
		fmt.Fprint(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		if el, err := r.Next(); err != nil || el.Name.Local != "proceed" {
			t.Fatalf("%s: starttls: %v %s", addr, err, el.Raw)
		}
		cfg.NextProtos = nil
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("%s: TLS handshake verifying %s against the CA: %v", addr, domain, err)
	}
	if direct && tc.ConnectionState().NegotiatedProtocol != "xmpp-server" {
		t.Logf("%s: ALPN %q (XEP-0368 asks for xmpp-server; servers may ignore it)", addr, tc.ConnectionState().NegotiatedProtocol)
	}
}

// TestUpload: with Options.Upload, each server's upload service is in
// the host's disco#items with the XEP-0363 feature and a max-file-size
// of UploadMaxSize, hands out a slot for a file above Prosody's 10 MiB
// of buffered HTTP body, takes the PUT with the slot's headers on the
// HTTPS port and serves the same bytes back.
func TestUpload(t *testing.T) {
	requireServers(t)
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			a, err := Start(context.Background(), Options{Name: name, Addr: plainAddr, Dir: workDir(t), Upload: true,
				Accounts: map[string]string{"alice": "secret"}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Stop()
			c := xmpptest.Login(t, net.JoinHostPort(plainAddr, StartTLSPort), Domain, "alice", "secret", "PLAIN", "r")
			iq := func(id, to, payload string) []byte {
				t.Helper()
				c.Send(fmt.Sprintf("<iq type='get' id='%s' to='%s'>%s</iq>", id, to, payload))
				for {
					el, err := c.Next()
					if err != nil {
						t.Fatalf("%s: %v", id, err)
					}
					if el.Name.Local == "iq" && (bytes.Contains(el.Raw, []byte("id='"+id+"'")) || bytes.Contains(el.Raw, []byte(`id="`+id+`"`))) {
						if !bytes.Contains(el.Raw, []byte("type='result'")) && !bytes.Contains(el.Raw, []byte(`type="result"`)) {
							t.Fatalf("%s: %s", id, el.Raw)
						}
						return el.Raw
					}
				}
			}
			svc := UploadService(Domain)
			if items := iq("i1", Domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>"); !bytes.Contains(items, []byte(svc)) {
				t.Errorf("disco#items of %s without %s: %s", Domain, svc, items)
			}
			info := iq("i2", svc, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
			if !bytes.Contains(info, []byte("urn:xmpp:http:upload:0")) || !bytes.Contains(info, []byte(strconv.Itoa(UploadMaxSize))) {
				t.Errorf("disco#info of %s: %s", svc, info)
			}
			const size = 12 << 20
			slot := iq("s1", svc, fmt.Sprintf("<request xmlns='urn:xmpp:http:upload:0' filename='a b.bin' size='%d' content-type='application/octet-stream'/>", size))
			var answer struct {
				Put struct {
					URL     string `xml:"url,attr"`
					Headers []struct {
						Name  string `xml:"name,attr"`
						Value string `xml:",chardata"`
					} `xml:"header"`
				} `xml:"slot>put"`
				Get struct {
					URL string `xml:"url,attr"`
				} `xml:"slot>get"`
			}
			if err := xml.Unmarshal(slot, &answer); err != nil || answer.Put.URL == "" || answer.Get.URL == "" {
				t.Fatalf("slot %s: %v", slot, err)
			}
			for _, u := range []string{answer.Put.URL, answer.Get.URL} {
				if !strings.HasPrefix(u, "https://") || !strings.Contains(u, ":"+HTTPSPort+"/") {
					t.Errorf("URL %s: not on the HTTPS port", u)
				}
			}
			// Whatever host the URLs name, the connection goes to the
			// anchor's address.
			hc := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					_, port, _ := net.SplitHostPort(addr)
					return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(plainAddr, port))
				},
			}}
			body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			req, _ := http.NewRequest(http.MethodPut, answer.Put.URL, bytes.NewReader(body))
			for _, h := range answer.Put.Headers {
				req.Header.Set(h.Name, h.Value)
			}
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT %s: %s", answer.Put.URL, resp.Status)
			}
			resp, err = hc.Get(answer.Get.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
				t.Fatalf("GET %s: %s, %d bytes, %v", answer.Get.URL, resp.Status, len(got), err)
			}
		})
	}
}
