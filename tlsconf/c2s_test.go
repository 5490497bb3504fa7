package tlsconf_test

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/stream"
	"github.com/starling-xmpp/starling/tlsconf"
)

// client is a minimal XMPP client: STARTTLS or direct TLS with a given
// tls.Config, then SCRAM-SHA-256-PLUS by hand (mellium's client has no
// tls-server-end-point).
type client struct {
	t    *testing.T
	conn net.Conn
	r    *stream.Reader
	tc   *tls.Conn
	host string
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next() *stream.Element {
	c.t.Helper()
	el, err := c.r.Next()
	if err != nil {
		c.t.Fatal(err)
	}
	return el
}

// open sends a stream header and returns the features.
func (c *client) open() *stream.Element {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.host + "' version='1.0'>")
	if _, err := c.r.ReadHeader(); err != nil {
		c.t.Fatal(err)
	}
	return c.next()
}

func (c *client) handshake(cfg *tls.Config) {
	c.t.Helper()
	c.tc = tls.Client(c.conn, cfg)
	if err := c.tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = c.tc
	c.r = stream.NewReader(c.tc, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100})
}

// connect logs in over STARTTLS (direct false) or direct TLS and returns
// the features offered after TLS.
func connect(t *testing.T, addr, host string, direct bool, cfg *tls.Config) (*client, *stream.Element) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, conn: nc, host: host}
	if direct {
		c.handshake(cfg)
	} else {
		c.r = stream.NewReader(nc, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100})
		c.open()
		c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		if el := c.next(); el.Name.Local != "proceed" {
			t.Fatalf("got %s", el.Raw)
		}
		c.handshake(cfg)
	}
	return c, c.open()
}

// scramPlus runs SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) with the channel
// binding cbType: tls-server-end-point (RFC 5929 §4.1) from the
// certificate the client saw, or tls-exporter (RFC 9266).
func (c *client) scramPlus(cbType, user, password string) error {
	c.t.Helper()
	cs := c.tc.ConnectionState()
	var cb []byte
	switch cbType {
	case "tls-server-end-point":
		// The test certificates are signed with SHA-256.
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		cb = sum[:]
	case "tls-exporter":
		var err error
		if cb, err = cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err != nil {
			return err
		}
	}
	gs2 := "p=" + cbType + ",,"
	nonce := rand.Text()
	first := "n=" + user + ",r=" + nonce
	b64 := base64.StdEncoding.EncodeToString
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>" + b64([]byte(gs2+first)) + "</auth>")
	el := c.next()
	if el.Name.Local != "challenge" {
		return fmt.Errorf("got %s", el.Raw)
	}
	sf, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
	var snonce, salt string
	var iter int
	for _, p := range strings.Split(string(sf), ",") {
		switch {
		case strings.HasPrefix(p, "r="):
			snonce = p[2:]
		case strings.HasPrefix(p, "s="):
			salt = p[2:]
		case strings.HasPrefix(p, "i="):
			fmt.Sscan(p[2:], &iter)
		}
	}
	saltB, _ := base64.StdEncoding.DecodeString(salt)
	salted, err := pbkdf2.Key(sha256.New, password, saltB, iter, 32)
	if err != nil {
		return err
	}
	mac := func(k []byte, s string) []byte { h := hmac.New(sha256.New, k); h.Write([]byte(s)); return h.Sum(nil) }
	final := "c=" + b64(append([]byte(gs2), cb...)) + ",r=" + snonce
	authMsg := first + "," + string(sf) + "," + final
	ck := mac(salted, "Client Key")
	sk := sha256.Sum256(ck)
	sig := mac(sk[:], authMsg)
	for i := range ck {
		ck[i] ^= sig[i]
	}
	c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64([]byte(final+",p="+b64(ck))) + "</response>")
	el = c.next()
	if el.Name.Local != "success" {
		return fmt.Errorf("got %s", el.Raw)
	}
	v, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
	if string(v) != "v="+b64(mac(mac(salted, "Server Key"), authMsg)) {
		return fmt.Errorf("server signature %q", v)
	}
	return nil
}

// Through c2s, STARTTLS and direct TLS alike, a second connection resumes
// its TLS session, and SCRAM-SHA-256-PLUS succeeds on each, with
// tls-server-end-point over the certificate the client got (of a host
// with an RSA and an ECDSA one) and tls-exporter on TLS 1.3.
func TestC2SResumptionAndChannelBinding(t *testing.T) {
	var files config.CertFiles
	srv := testserver.Start(t, func(c *config.Config) {
		files = tlsconf.WriteDual(t, t.TempDir(), c.Server.Hosts[0])
		c.TLS.Cert, c.TLS.Key, c.TLS.ECDSACert, c.TLS.ECDSAKey = files.Cert, files.Key, files.ECDSACert, files.ECDSAKey
	})
	srv.AddUser(t, "alice", "alice-secret")
	for _, tc := range []struct {
		name    string
		version uint16
		suites  []uint16
		key     string // the key type presented
		cbTypes []string
	}{
		{"TLS1.3", tls.VersionTLS13, nil, "ECDSA", []string{"tls-exporter", "tls-server-end-point"}},
		{"TLS1.2 ECDSA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, "ECDSA", []string{"tls-server-end-point"}},
		{"TLS1.2 RSA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, "RSA", []string{"tls-server-end-point"}},
	} {
		for _, direct := range []bool{false, true} {
			name, addr := tc.name+"/STARTTLS", srv.Addr
			if direct {
				name, addr = tc.name+"/direct", srv.DirectTLSAddr
			}
			t.Run(name, func(t *testing.T) {
				for _, cbType := range tc.cbTypes {
					cfg := &tls.Config{
						ServerName: srv.Domain, InsecureSkipVerify: true,
						MinVersion: tc.version, MaxVersion: tc.version, CipherSuites: tc.suites,
						ClientSessionCache: tls.NewLRUClientSessionCache(4),
					}
					if direct {
						cfg.NextProtos = []string{"xmpp-client"}
					}
					for i, resumed := range []bool{false, true} {
						c, features := connect(t, addr, srv.Domain, direct, cfg)
						cs := c.tc.ConnectionState()
						if cs.DidResume != resumed {
							t.Fatalf("connection %d: resumed %v", i, cs.DidResume)
						}
						if got := cs.PeerCertificates[0].PublicKeyAlgorithm.String(); got != tc.key {
							t.Errorf("connection %d: %s certificate", i, got)
						}
						if !strings.Contains(string(features.Raw), cbType) {
							t.Fatalf("%s not offered: %s", cbType, features.Raw)
						}
						if err := c.scramPlus(cbType, "alice", "alice-secret"); err != nil {
							t.Errorf("connection %d (resumed %v): SCRAM-SHA-256-PLUS with %s: %v", i, resumed, cbType, err)
						}
					}
				}
			})
		}
	}
}
