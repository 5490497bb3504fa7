package websocket_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/internal/testserver"
	ws "github.com/starling-xmpp/starling/websocket"
)

// timeout bounds every read and write of a test client.
const timeout = 10 * time.Second

const (
	nsStreams = "http://etherx.jabber.org/streams"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	open      = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	closeEl   = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
)

// client is an RFC 7395 test client on github.com/coder/websocket, a
// WebSocket implementation independent of the server's framing. Every
// message it receives must be one standalone element (frame).
type client struct {
	t        testing.TB
	ws       *websocket.Conn
	features frame
	jid      string
}

// frame is one message received, parsed as a standalone XML document:
// namespaces are only those it declares itself.
type frame struct {
	name  xml.Name
	attrs []xml.Attr
	raw   []byte
}

func (f frame) attr(name string) string {
	for _, a := range f.attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (f frame) is(space, local string) bool { return f.name.Space == space && f.name.Local == local }

// parseFrame checks that msg is exactly one element, with nothing but
// whitespace around it and every prefix declared.
func parseFrame(msg []byte) (frame, error) {
	d := xml.NewDecoder(bytes.NewReader(msg))
	var f frame
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || f.name.Local == "" {
				return f, errors.New("not one complete element")
			}
			f.raw = msg
			return f, nil
		}
		if err != nil {
			return f, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 && f.name.Local != "" {
				return f, errors.New("more than one element")
			}
			if depth == 0 {
				f.name, f.attrs = tok.Name, tok.Attr
			}
			// encoding/xml leaves an undeclared prefix as the space.
			if !strings.Contains(tok.Name.Space, ":") {
				return f, errors.New("element <" + tok.Name.Space + ":" + tok.Name.Local + "> is not namespaced")
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return f, errors.New("text outside the element")
			}
		case xml.ProcInst, xml.Comment, xml.Directive:
			return f, errors.New("markup other than the element")
		}
	}
}

// dialOptions are the options of a dial: the subprotocol "xmpp", and the
// server's self-signed certificate trusted for "localhost".
func dialOptions(t testing.TB, srv *testserver.Server) *websocket.DialOptions {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(srv.Config.Server.DataDir, "certs", "localhost.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &websocket.DialOptions{
		Subprotocols: []string{ws.Subprotocol},
		HTTPClient: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		}},
		HTTPHeader: http.Header{},
	}
}

// wssURL and wsURL are the server's WebSocket endpoints.
func wssURL(srv *testserver.Server) string { return "wss://" + srv.HTTPSAddr + ws.Path }
func wsURL(srv *testserver.Server) string  { return "ws://" + srv.HTTPAddr + ws.Path }

// dial connects to url; nothing is sent.
func dial(t testing.TB, url string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != ws.Subprotocol {
		t.Fatalf("server chose subprotocol %q", p)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, ws: c}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.sendType(websocket.MessageText, s)
}

func (c *client) sendType(typ websocket.MessageType, s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.ws.Write(ctx, typ, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read reads the next message.
func (c *client) read() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, msg, err := c.ws.Read(ctx)
	if err == nil && typ != websocket.MessageText {
		err = errors.New("a binary message")
	}
	return msg, err
}

// next reads the next message as a frame.
func (c *client) next() frame {
	c.t.Helper()
	msg, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	f, err := parseFrame(msg)
	if err != nil {
		c.t.Fatalf("message %q: %v", msg, err)
	}
	return f
}

// expect reads the next frame and checks its name.
func (c *client) expect(space, local string) frame {
	c.t.Helper()
	f := c.next()
	if !f.is(space, local) {
		c.t.Fatalf("expected {%s}%s, got %s", space, local, f.raw)
	}
	return f
}

// openStream sends <open/> and reads the server's <open/> and features.
func (c *client) openStream() {
	c.t.Helper()
	c.send(open)
	o := c.expect(ws.NSFraming, "open")
	if o.attr("from") != "localhost" || o.attr("version") != "1.0" || o.attr("id") == "" {
		c.t.Fatalf("server's open: %s", o.raw)
	}
	c.features = c.expect(nsStreams, "features")
}

// hasFeature reports whether the features contain substr.
func (c *client) hasFeature(substr string) bool {
	return bytes.Contains(c.features.raw, []byte(substr))
}

// mechanisms are the SASL mechanisms offered.
func (c *client) mechanisms() []string {
	var f struct {
		Mechanisms []string `xml:"mechanisms>mechanism"`
	}
	xml.Unmarshal(c.features.raw, &f)
	return f.Mechanisms
}

var mechanisms = map[string]sasl.Mechanism{"PLAIN": sasl.Plain, "SCRAM-SHA-1": sasl.ScramSha1, "SCRAM-SHA-256": sasl.ScramSha256}

// auth runs SASL with mech and, on success, restarts the stream with a
// new <open/> (RFC 7395 §3.7). It returns the failure, if any.
func (c *client) auth(mech, user, password string) *frame {
	c.t.Helper()
	neg := sasl.NewClient(mechanisms[mech], sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }), sasl.RemoteMechanisms(c.mechanisms()...))
	_, resp, err := neg.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString(resp) + "</auth>")
	for {
		f := c.next()
		var data string
		xml.Unmarshal(f.raw, &data)
		switch {
		case f.is(nsSASL, "challenge"):
			in, _ := base64.StdEncoding.DecodeString(data)
			_, resp, err := neg.Step(in)
			if err != nil {
				c.t.Fatal(err)
			}
			c.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case f.is(nsSASL, "success"):
			if data != "" {
				in, _ := base64.StdEncoding.DecodeString(data)
				if _, _, err := neg.Step(in); err != nil {
					c.t.Fatalf("server signature: %v", err)
				}
			}
			c.openStream()
			return nil
		case f.is(nsSASL, "failure"):
			return &f
		default:
			c.t.Fatalf("unexpected during SASL: %s", f.raw)
		}
	}
}

// bind binds resource and returns the full JID.
func (c *client) bind(resource string) string {
	c.t.Helper()
	c.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	f := c.expect("jabber:client", "iq")
	var iq struct {
		JID string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal(f.raw, &iq); err != nil || f.attr("type") != "result" {
		c.t.Fatalf("bind: %s", f.raw)
	}
	c.jid = iq.JID
	return c.jid
}

// login dials url, authenticates with mech and binds resource.
func login(t testing.TB, srv *testserver.Server, url string, opts *websocket.DialOptions, mech, user, password, resource string) *client {
	t.Helper()
	c := dial(t, url, opts)
	c.openStream()
	if c.hasFeature("<starttls") {
		t.Fatalf("STARTTLS offered on a WebSocket (RFC 7395 §3.9): %s", c.features.raw)
	}
	if f := c.auth(mech, user, password); f != nil {
		t.Fatalf("login %s with %s: %s", user, mech, f.raw)
	}
	c.bind(resource)
	return c
}

// expectStreamError reads until a stream error with condition cond, then
// checks that the server closes the stream (<close/>) and then the
// WebSocket connection (RFC 7395 §3.5, §3.6).
func (c *client) expectStreamError(cond string) {
	c.t.Helper()
	for {
		f := c.next()
		if !f.is(nsStreams, "error") {
			continue // anything queued before the error may come first
		}
		if !bytes.Contains(f.raw, []byte("<"+cond+" xmlns='urn:ietf:params:xml:ns:xmpp-streams'")) {
			c.t.Fatalf("expected stream error %s, got %s", cond, f.raw)
		}
		break
	}
	c.expectClose()
}

// expectClose checks that the server sends <close/>, answers it with the
// client's own and sees the server close the WebSocket connection.
func (c *client) expectClose() {
	c.t.Helper()
	c.expect(ws.NSFraming, "close")
	c.send(closeEl)
	c.expectClosed()
}

// expectClosed checks that the server closes the WebSocket connection
// normally, with nothing more sent.
func (c *client) expectClosed() {
	c.t.Helper()
	msg, err := c.read()
	if err == nil {
		c.t.Fatalf("expected the connection to close, got %q", msg)
	}
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		c.t.Fatalf("expected a normal closure, got %v", err)
	}
}
