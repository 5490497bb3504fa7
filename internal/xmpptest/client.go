// Package xmpptest is a small XMPP client for tests: it speaks raw XML so
// that tests can send anything, and logs in with STARTTLS or direct TLS and
// SASL (PLAIN and SCRAM from mellium.im/sasl, an implementation independent
// of the server's).
package xmpptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/stream"
)

// Timeout bounds every read: a test waiting longer has failed.
const Timeout = 10 * time.Second

// Client is one test connection over TCP.
type Client struct {
	session
	Conn net.Conn
	r    *stream.Reader
	// opened reports that the server's stream header has been read.
	opened bool
}

// Dial opens a TCP connection to addr for domain; nothing is sent.
func Dial(t testing.TB, addr, domain string) *Client {
	t.Helper()
	return DialFrom(t, "", addr, domain)
}

// DialFrom is Dial from the local IP address from ("" for any), such as
// 127.0.0.2 to appear as another client.
func DialFrom(t testing.TB, from, addr, domain string) *Client {
	t.Helper()
	d := net.Dialer{Timeout: Timeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &Client{Conn: conn, r: stream.NewReader(conn, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100})}
	c.session = session{t: t, conn: c, Domain: domain}
	return c
}

// DialTLS opens a direct TLS connection (XEP-0368) with ALPN xmpp-client.
func DialTLS(t testing.TB, addr, domain string) *Client {
	t.Helper()
	c := Dial(t, addr, domain)
	tc := tls.Client(c.Conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	c.Conn.SetDeadline(time.Now().Add(Timeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.Conn.SetDeadline(time.Time{})
	c.Conn = tc
	c.r.Reset(tc)
	return c
}

// Send writes raw as it is.
func (c *Client) Send(raw string) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.Conn.Write([]byte(raw)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Next reads the next top-level element (or a stream error / close as an
// error).
func (c *Client) Next() (*stream.Element, error) {
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	return c.r.Next()
}

// OpenStream sends a stream header and reads the server's header and
// features.
func (c *Client) OpenStream() {
	c.t.Helper()
	c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.Domain + "' version='1.0'>")
	c.ReadHeader()
	c.Features = c.MustNext()
	if c.Features.Name.Local != "features" {
		c.t.Fatalf("expected features, got %s", c.Features.Raw)
	}
}

// ReadHeader reads the server's stream header.
func (c *Client) ReadHeader() stream.Header {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatalf("server stream header: %v", err)
	}
	c.opened = true
	return h
}

// StartTLS negotiates STARTTLS (RFC 6120 §5) and reopens the stream.
func (c *Client) StartTLS(maxVersion uint16) {
	c.t.Helper()
	c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el := c.MustNext(); el.Name.Local != "proceed" {
		c.t.Fatalf("expected proceed, got %s", el.Raw)
	}
	tc := tls.Client(c.Conn, &tls.Config{ServerName: c.Domain, InsecureSkipVerify: true, MaxVersion: maxVersion})
	c.Conn.SetDeadline(time.Now().Add(Timeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.Conn.SetDeadline(time.Time{})
	c.Conn = tc
	c.r.Reset(tc)
	c.opened = false
	c.OpenStream()
}

// Auth runs SASL with mech; on success the stream is reopened.
func (c *Client) Auth(mech, user, password string) error {
	c.t.Helper()
	var state *tls.ConnectionState
	if tc, ok := c.Conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		state = &cs
	}
	err := c.authenticate(state, mech, user, password)
	if err == nil {
		c.r.Reset(c.Conn)
		c.opened = false
		c.OpenStream()
	}
	return err
}

// Close closes the connection, without closing the stream.
func (c *Client) Close() error { return c.Conn.Close() }

// Login connects to addr, negotiates STARTTLS, authenticates with mech and
// binds resource.
func Login(t testing.TB, addr, domain, user, password, mech, resource string) *Client {
	t.Helper()
	return LoginFrom(t, "", addr, domain, user, password, mech, resource)
}

// LoginFrom is Login from the local IP address from ("" for any).
func LoginFrom(t testing.TB, from, addr, domain, user, password, mech, resource string) *Client {
	t.Helper()
	c := DialFrom(t, from, addr, domain)
	c.OpenStream()
	c.StartTLS(0)
	c.login(c.Auth, mech, user, password, resource)
	return c
}

// ExpectStreamError reads until the stream error and checks its condition,
// then the end of the stream.
func (c *Client) ExpectStreamError(cond string) {
	c.t.Helper()
	if !c.opened {
		c.ReadHeader()
	}
	for {
		el, err := c.Next()
		if err != nil {
			c.t.Fatalf("expected stream error %s, got %v", cond, err)
		}
		if el.Name.Space == "http://etherx.jabber.org/streams" && el.Name.Local == "error" {
			if !bytes.Contains(el.Raw, []byte("<"+cond+" ")) && !bytes.Contains(el.Raw, []byte("<"+cond+"/>")) {
				c.t.Fatalf("expected stream error %s, got %s", cond, el.Raw)
			}
			break
		}
		// Anything queued before the error may arrive first.
	}
	c.ExpectClosed()
}

// ExpectClosed checks that the server closes the stream.
func (c *Client) ExpectClosed() {
	c.t.Helper()
	for {
		el, err := c.Next()
		if err == nil {
			c.t.Fatalf("expected the stream to close, got %s", el.Raw)
		}
		if errors.Is(err, stream.ErrClosed) || isEOF(err) {
			return
		}
		var se *stream.Error
		if errors.As(err, &se) {
			c.t.Fatalf("expected the stream to close, got error %v", err)
		}
		c.t.Fatalf("expected the stream to close, got %v", err)
	}
}

func isEOF(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "EOF") || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer"))
}
