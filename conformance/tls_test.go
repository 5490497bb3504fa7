package conformance

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestDirectTLS: XEP-0368 direct TLS negotiates ALPN xmpp-client, TLS 1.3
// by default, and the stream then offers SASL straight away.
func TestDirectTLS(t *testing.T) {
	srv := testserver.Start(t, nil)
	c := xmpptest.DialTLS(t, srv.DirectTLSAddr, srv.Domain)
	cs := c.Conn.(*tls.Conn).ConnectionState()
	if cs.NegotiatedProtocol != "xmpp-client" {
		t.Errorf("ALPN = %q, want xmpp-client", cs.NegotiatedProtocol)
	}
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", cs.Version)
	}
	c.OpenStream()
	if c.HasFeature("<starttls") || !c.HasFeature("SCRAM-SHA-256-PLUS") {
		t.Errorf("features after direct TLS: %s", c.Features.Raw)
	}
}

// TestTLSVersions: TLS 1.2 and 1.3 only (issue 2 part 4; RFC 9325 §3.1.1).
// On TLS 1.2 there is no tls-exporter (RFC 9266 §3), only
// tls-server-end-point.
func TestTLSVersions(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "alice", "alice-secret")

	c := xmpptest.Dial(t, srv.Addr, srv.Domain)
	c.OpenStream()
	c.StartTLS(tls.VersionTLS12)
	if c.HasFeature("tls-exporter") || !c.HasFeature("tls-server-end-point") {
		t.Errorf("channel bindings on TLS 1.2: %s", c.Features.Raw)
	}
	if err := c.Auth("SCRAM-SHA-1", "alice", "alice-secret"); err != nil {
		t.Errorf("SCRAM-SHA-1 over TLS 1.2: %v", err)
	}

	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := net.DialTimeout("tcp", srv.DirectTLSAddr, xmpptest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(xmpptest.Timeout))
		tc := tls.Client(conn, &tls.Config{ServerName: srv.Domain, InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if err := tc.Handshake(); err == nil {
			t.Errorf("TLS version %x accepted", v)
		}
		conn.Close()
	}
}

// TestSNI: with several hosts, the certificate follows the name the client
// asks for (RFC 6066 §3), on both listeners.
func TestSNI(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) {
		c.Server.Hosts = []string{"localhost", "chat.example"}
	})
	for _, addr := range []string{srv.DirectTLSAddr} {
		for _, name := range []string{"localhost", "chat.example"} {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: xmpptest.Timeout}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			cert := conn.ConnectionState().PeerCertificates[0]
			if err := cert.VerifyHostname(name); err != nil {
				t.Errorf("SNI %s: %v", name, err)
			}
			conn.Close()
		}
	}
	// A stream for the second host, over STARTTLS.
	c := xmpptest.Dial(t, srv.Addr, "chat.example")
	c.OpenStream()
	c.StartTLS(0)
	cert := c.Conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	if err := cert.VerifyHostname("chat.example"); err != nil {
		t.Errorf("STARTTLS for chat.example: %v", err)
	}
}
