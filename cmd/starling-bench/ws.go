package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// XMPP over WebSocket (RFC 7395): with --url, every session is an HTTP
// upgrade to the subprotocol "xmpp" (over TLS for wss://) instead of a TCP
// connection with STARTTLS. wsConn is the transport: it is both the conn's
// writer and its element reader, so the rest of the client — SASL, bind,
// the scenarios — is the same over both. The bench's stream header and
// closing tag become <open/> and <close/> (§3.4, §3.6), every element it
// writes is sent as one message (§3.3.3), with the default namespace it
// needs to stand alone, and every message the server sends is one element
// (no scanning). STARTTLS is not used (§3.9): the wss connection is the
// TLS.

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// maxElement bounds an element read from the server, over either
// transport.
const maxElement = 1 << 20

var (
	closeFrame = []byte("<close xmlns='" + nsFraming + "'/>")
	nsClient   = []byte(" xmlns='jabber:client'")
)

// wsConn is one XMPP over WebSocket stream. Reads belong to one goroutine
// at a time, writes are serialized by the conn's wmu; the deadlines may be
// set from anywhere.
type wsConn struct {
	ws     *websocket.Conn
	in     []byte       // the last message read, owned by the reader
	out    []byte       // the message being written, owned by the writer
	rd, wd atomic.Int64 // read and write deadlines, Unix ns; 0: none
}

// httpClient is the HTTP client every WebSocket upgrade goes through:
// HTTP/1.1 (RFC 6455's upgrade), the bench's TLS settings, its source
// addresses, no proxy from the environment.
func (cfg *config) httpClient() *http.Client {
	tc := cfg.tlsConfig()
	tc.NextProtos = nil
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: cfg.timeout}
			if cfg.source != nil {
				d.LocalAddr = &net.TCPAddr{IP: cfg.source()}
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// connectWS opens a WebSocket to --url and an XMPP stream on it, and
// returns it with the features offered.
func connectWS(ctx context.Context, cfg *config) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, cfg.url, &websocket.DialOptions{
		HTTPClient:   cfg.http,
		Subprotocols: []string{"xmpp"},
	})
	if err != nil {
		return nil, err
	}
	if p := ws.Subprotocol(); p != "xmpp" {
		ws.CloseNow()
		return nil, fmt.Errorf("websocket: the server chose subprotocol %q, not xmpp", p)
	}
	ws.SetReadLimit(maxElement)
	w := &wsConn{ws: ws}
	c := &conn{cfg: cfg, c: w, sc: w, tls: resp.TLS}
	w.SetDeadline(time.Now().Add(cfg.timeout))
	if err := c.openStream(); err != nil {
		w.Close()
		return nil, err
	}
	return c, nil
}

// deadline is a context for one read or write; context.Background (no
// cost) when no deadline is set.
func deadline(d *atomic.Int64) (context.Context, context.CancelFunc) {
	t := d.Load()
	if t == 0 {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), time.Unix(0, t))
}

func setDeadline(d *atomic.Int64, t time.Time) {
	if t.IsZero() {
		d.Store(0)
	} else {
		d.Store(t.UnixNano())
	}
}

// SetDeadline bounds reads and writes, as on a net.Conn; a read or write
// that passes it closes the WebSocket.
func (w *wsConn) SetDeadline(t time.Time) error {
	setDeadline(&w.rd, t)
	setDeadline(&w.wd, t)
	return nil
}

func (w *wsConn) SetWriteDeadline(t time.Time) error {
	setDeadline(&w.wd, t)
	return nil
}

// Close ends the WebSocket with its closing handshake (RFC 6455 §7.1.2),
// after the XMPP stream's <close/>.
func (w *wsConn) Close() error { return w.ws.Close(websocket.StatusNormalClosure, "") }

// Write sends b, which holds whole top-level units of a TCP stream (a
// stream header, elements, the closing tag), one WebSocket message each,
// in RFC 7395's form.
func (w *wsConn) Write(b []byte) (int, error) {
	ctx, cancel := deadline(&w.wd)
	defer cancel()
	n := len(b)
	for {
		for len(b) > 0 && b[0] != '<' {
			b = b[1:] // whitespace between elements
		}
		if len(b) == 0 {
			return n, nil
		}
		var msg []byte
		switch {
		case bytes.HasPrefix(b, []byte("<?")): // the XML declaration
			i := bytes.Index(b, []byte("?>"))
			if i < 0 {
				return 0, errors.New("websocket: unterminated XML declaration")
			}
			b = b[i+2:]
			continue
		case bytes.HasPrefix(b, []byte("<stream:stream")):
			end := startTagEnd(b)
			hdr := b[:end]
			w.out = append(w.out[:0], "<open xmlns='"+nsFraming+"' to='"...)
			w.out = append(w.out, attr(hdr, "to")...)
			w.out = append(w.out, "' version='1.0'/>"...)
			msg, b = w.out, b[end:]
		case bytes.HasPrefix(b, []byte("</stream:stream>")):
			msg, b = closeFrame, b[len("</stream:stream>"):]
		default:
			end, kind := scanElement(b, true)
			if end == 0 || kind != kindElem {
				return 0, fmt.Errorf("websocket: not one complete element: %.60q", b)
			}
			msg, b = w.qualify(b[:end]), b[end:]
		}
		if err := w.ws.Write(ctx, websocket.MessageText, msg); err != nil {
			return 0, err
		}
	}
}

// qualify returns el with xmlns='jabber:client' if it declares no default
// namespace (the bench's stanzas do not): each message is a document of
// its own (RFC 7395 §3.3.3).
func (w *wsConn) qualify(el []byte) []byte {
	if attr(el, "xmlns") != nil {
		return el
	}
	k := 1 + len(name(el))
	w.out = append(append(append(w.out[:0], el[:k]...), nsClient...), el[k:]...)
	return w.out
}

// next returns the next message, one element: <open/> as the stream
// header, <close/> as its end (with errClosed), anything else as an
// element. The slice is valid until the next call.
func (w *wsConn) next() ([]byte, int, error) {
	for {
		ctx, cancel := deadline(&w.rd)
		typ, r, err := w.ws.Reader(ctx)
		if err == nil {
			w.in, err = readMessage(w.in[:0], r)
		}
		cancel()
		if err != nil {
			return nil, 0, err
		}
		if typ != websocket.MessageText {
			return nil, 0, errors.New("websocket: a binary message from the server")
		}
		el := bytes.TrimSpace(w.in)
		switch {
		case len(el) == 0:
			continue // a whitespace keepalive
		case is(el, "open"):
			return el, kindHeader, nil
		case is(el, "close"):
			return el, kindClose, errClosed
		}
		return el, kindElem, nil
	}
}

// restart begins a new stream after SASL: nothing to reset, the server's
// next message is its <open/>.
func (w *wsConn) restart() {}

// readMessage appends the rest of r (a message, at most maxElement bytes
// by the read limit) to buf.
func readMessage(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(4096, cap(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
