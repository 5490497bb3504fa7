// Package xmpptest is a small XMPP client for tests: it speaks raw XML so
// that tests can send anything, and logs in with STARTTLS or direct TLS and
// SASL (PLAIN and SCRAM from mellium.im/sasl, an implementation independent
// of the server's).
package xmpptest

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/stream"
)

// Timeout bounds every read: a test waiting longer has failed.
const Timeout = 10 * time.Second

// Client is one test connection.
type Client struct {
	t      testing.TB
	Conn   net.Conn
	r      *stream.Reader
	Domain string
	// Features is the last <stream:features/> received.
	Features *stream.Element
	// JID is the bound full JID.
	JID string
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
	return &Client{t: t, Conn: conn, r: stream.NewReader(conn, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100}), Domain: domain}
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

// MustNext is Next, failing the test on error.
func (c *Client) MustNext() *stream.Element {
	c.t.Helper()
	el, err := c.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return el
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

// HasFeature reports whether the features contain substr (a quick check
// for tests: "<starttls", "SCRAM-SHA-256-PLUS").
func (c *Client) HasFeature(substr string) bool {
	return c.Features != nil && bytes.Contains(c.Features.Raw, []byte(substr))
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

// Mechanisms maps SASL mechanism names to mellium.im/sasl clients.
var Mechanisms = map[string]sasl.Mechanism{
	"PLAIN":              sasl.Plain,
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
}

// ErrAuth is returned by Auth when the server answers <failure/>; the
// error text holds the failure element.
var ErrAuth = errors.New("authentication failed")

// Auth runs SASL with mech; on success the stream is reopened.
func (c *Client) Auth(mech, user, password string) error {
	c.t.Helper()
	m, ok := Mechanisms[mech]
	if !ok {
		c.t.Fatalf("no test client for %s", mech)
	}
	opts := []sasl.Option{sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil })}
	if tc, ok := c.Conn.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	// The advertised mechanisms tell the client whether the server supports
	// channel binding (the GS2 'y' versus 'p=' choice, RFC 5802 §6).
	if c.Features != nil {
		var f struct {
			Mechanisms []string `xml:"mechanisms>mechanism"`
		}
		xml.Unmarshal(c.Features.Raw, &f)
		opts = append(opts, sasl.RemoteMechanisms(f.Mechanisms...))
	}
	neg := sasl.NewClient(m, opts...)
	_, resp, err := neg.Step(nil)
	if err != nil {
		c.t.Fatalf("sasl client: %v", err)
	}
	c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" + b64(resp) + "</auth>")
	for {
		el := c.MustNext()
		switch el.Name.Local {
		case "challenge":
			data, err := base64.StdEncoding.DecodeString(text(el))
			if err != nil {
				c.t.Fatalf("challenge: %v", err)
			}
			_, resp, err := neg.Step(data)
			if err != nil {
				return fmt.Errorf("sasl client step: %w", err)
			}
			c.Send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>")
		case "success":
			if t := text(el); t != "" {
				data, err := base64.StdEncoding.DecodeString(t)
				if err != nil {
					c.t.Fatalf("success data: %v", err)
				}
				if _, _, err := neg.Step(data); err != nil {
					return fmt.Errorf("server signature: %w", err)
				}
			}
			c.r.Reset(c.Conn)
			c.opened = false
			c.OpenStream()
			return nil
		case "failure":
			return fmt.Errorf("%w: %s", ErrAuth, el.Raw)
		default:
			c.t.Fatalf("unexpected during SASL: %s", el.Raw)
		}
	}
}

// Bind binds resource ("" lets the server choose) and returns the JID.
func (c *Client) Bind(resource string) string {
	c.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	c.Send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	el := c.MustNext()
	var iq struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal(el.Raw, &iq); err != nil || iq.Type != "result" {
		c.t.Fatalf("bind: %s", el.Raw)
	}
	c.JID = iq.JID
	return iq.JID
}

// Login connects to addr, negotiates STARTTLS, authenticates with mech and
// binds resource.
func Login(t testing.TB, addr, domain, user, password, mech, resource string) *Client {
	t.Helper()
	c := Dial(t, addr, domain)
	c.OpenStream()
	c.StartTLS(0)
	if err := c.Auth(mech, user, password); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	c.Bind(resource)
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

func text(el *stream.Element) string {
	var s string
	xml.Unmarshal(el.Raw, &s)
	return strings.TrimSpace(s)
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}
