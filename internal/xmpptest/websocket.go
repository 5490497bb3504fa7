package xmpptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of RFC 7395 and RFC 6120 that the web clients use.
const (
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStreams = "http://etherx.jabber.org/streams"
)

// WebSocket is an RFC 7395 test client on github.com/coder/websocket, a
// WebSocket implementation independent of the server's framing: each
// message it sends is one text message, and every message it receives
// must be one standalone element (§3.3.3).
type WebSocket struct {
	session
	WS *websocket.Conn
	// State is the TLS connection of a wss:// dial (nil for ws://).
	State *tls.ConnectionState
	// closing reports that the client has sent <close/> (§3.6).
	closing bool
}

// DialWebSocketResult dials url with opts and returns the connection and
// the HTTP response of the upgrade, or only the response of a refused
// one; a dial that fails before a response fails the test.
func DialWebSocketResult(t testing.TB, url, domain string, opts *websocket.DialOptions) (*WebSocket, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return nil, resp
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	w := &WebSocket{WS: c, State: resp.TLS}
	w.session = session{t: t, conn: w, Domain: domain}
	return w, resp
}

// DialWebSocket connects to url for domain; the server must accept and
// choose the subprotocol xmpp (RFC 7395 §3.1). Nothing is sent.
func DialWebSocket(t testing.TB, url, domain string, opts *websocket.DialOptions) *WebSocket {
	t.Helper()
	c, resp := DialWebSocketResult(t, url, domain, opts)
	if c == nil {
		t.Fatalf("dial %s: refused with %s", url, resp.Status)
	}
	if p := c.WS.Subprotocol(); p != "xmpp" {
		t.Fatalf("server chose subprotocol %q", p)
	}
	return c
}

// Send writes raw as one text message.
func (c *WebSocket) Send(raw string) {
	c.t.Helper()
	c.SendMessage(websocket.MessageText, raw)
}

// SendMessage writes raw as one message of type typ.
func (c *WebSocket) SendMessage(typ websocket.MessageType, raw string) {
	c.t.Helper()
	if typ == websocket.MessageText && strings.HasPrefix(raw, "<close") && strings.Contains(raw, NSFraming) {
		c.closing = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.WS.Write(ctx, typ, []byte(raw)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Read reads the next message, which must be text.
func (c *WebSocket) Read() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	typ, msg, err := c.WS.Read(ctx)
	if err == nil && typ != websocket.MessageText {
		err = fmt.Errorf("a binary message (RFC 7395 §3.2 requires text): %q", msg)
	}
	return msg, err
}

// Next reads the next message as an element; a message that is not one
// standalone element is an error.
func (c *WebSocket) Next() (*stream.Element, error) {
	msg, err := c.Read()
	if err != nil {
		return nil, err
	}
	el, err := parseFrame(msg)
	if err != nil {
		return nil, fmt.Errorf("message %q: %w", msg, err)
	}
	return el, nil
}

// OpenStream sends <open/> and reads the server's <open/> and features
// (RFC 7395 §3.4).
func (c *WebSocket) OpenStream() {
	c.t.Helper()
	c.Send("<open xmlns='" + NSFraming + "' to='" + c.Domain + "' version='1.0'/>")
	o := c.Expect(NSFraming, "open")
	if Attr(o, "from") != c.Domain || Attr(o, "version") != "1.0" || Attr(o, "id") == "" {
		c.t.Fatalf("server's open: %s", o.Raw)
	}
	c.Features = c.Expect(nsStreams, "features")
}

// Auth runs SASL with mech and, on success, restarts the stream with a
// new <open/> (RFC 7395 §3.7).
func (c *WebSocket) Auth(mech, user, password string) error {
	c.t.Helper()
	err := c.authenticate(c.State, mech, user, password)
	if err == nil {
		c.OpenStream()
	}
	return err
}

// LoginWebSocket dials url, checks that STARTTLS is not offered
// (RFC 7395 §3.9), authenticates with mech and binds resource.
func LoginWebSocket(t testing.TB, url, domain string, opts *websocket.DialOptions, mech, user, password, resource string) *WebSocket {
	t.Helper()
	c := DialWebSocket(t, url, domain, opts)
	c.OpenStream()
	if c.HasFeature("<starttls") {
		t.Fatalf("STARTTLS offered on a WebSocket (RFC 7395 §3.9): %s", c.Features.Raw)
	}
	c.login(c.Auth, mech, user, password, resource)
	return c
}

// ExpectStreamError reads until a stream error with condition cond, then
// checks that the server closes the stream and the connection
// (ExpectClosed; RFC 7395 §3.5, §3.6).
func (c *WebSocket) ExpectStreamError(cond string) {
	c.t.Helper()
	for {
		el := c.MustNext()
		if el.Name.Space != nsStreams || el.Name.Local != "error" {
			continue // anything queued before the error may come first
		}
		if !bytes.Contains(el.Raw, []byte("<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-streams'")) {
			c.t.Fatalf("expected stream error %s, got %s", cond, el.Raw)
		}
		break
	}
	c.ExpectClosed()
}

// ExpectClosed checks that the server closes the stream with <close/>,
// answers it with the client's own (unless the client closed first) and
// sees the server close the WebSocket connection normally (RFC 7395 §3.6).
func (c *WebSocket) ExpectClosed() {
	c.t.Helper()
	c.Expect(NSFraming, "close")
	if !c.closing {
		c.Send("<close xmlns='" + NSFraming + "'/>")
	}
	c.ExpectClosure(websocket.StatusNormalClosure)
}

// ExpectClosure checks that the server closes the WebSocket connection
// with code, with no message before.
func (c *WebSocket) ExpectClosure(code websocket.StatusCode) {
	c.t.Helper()
	msg, err := c.Read()
	if err == nil {
		c.t.Fatalf("expected the connection to close, got %q", msg)
	}
	if got := websocket.CloseStatus(err); got != code {
		c.t.Fatalf("expected the connection to close with %d, got %v", code, err)
	}
}

// Close ends the connection without the closing handshake.
func (c *WebSocket) Close() error { return c.WS.CloseNow() }

// parseFrame checks that msg is exactly one element, with nothing but
// whitespace around it and every prefix declared (RFC 7395 §3.3.3): a
// standalone document, parsed as such.
func parseFrame(msg []byte) (*stream.Element, error) {
	d := xml.NewDecoder(bytes.NewReader(msg))
	var el *stream.Element
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || el == nil {
				return nil, errors.New("not one complete element")
			}
			el.Raw = msg
			return el, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 && el != nil {
				return nil, errors.New("more than one element")
			}
			if depth == 0 {
				el = &stream.Element{Name: tok.Name, Attr: tok.Attr}
			}
			// encoding/xml leaves an undeclared prefix as the space.
			if !strings.Contains(tok.Name.Space, ":") {
				return nil, errors.New("element <" + tok.Name.Space + ":" + tok.Name.Local + "> is not namespaced")
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return nil, errors.New("text outside the element")
			}
		case xml.ProcInst, xml.Comment, xml.Directive:
			return nil, errors.New("markup other than the element")
		}
	}
}
