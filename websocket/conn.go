package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/stream"
)

// keepBuffer is the largest buffer given back to its pool; a larger one,
// grown for a large stanza, is dropped once used.
const keepBuffer = 64 << 10

// msgBufs are the buffers of the messages being read (*[]byte): each is
// taken for one message and given back once the message is parsed, so
// that an idle stream holds none.
var msgBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putMsgBuf gives b back to msgBufs, unless a large stanza grew it.
func putMsgBuf(b *[]byte) {
	if cap(*b) <= keepBuffer {
		*b = (*b)[:0]
		msgBufs.Put(b)
	}
}

// Conn is one XMPP over WebSocket stream as c2s sees it: a c2s.Framed. It
// reads the client's messages as <open/>, elements and <close/>
// (ReadHeader, Next), and translates what c2s writes, one top-level unit
// per Write, from the TCP stream's form to RFC 7395's, each its own
// message; the messages written since the last Flush go out together at
// Flush (batch.go).
//
// Reading belongs to the session's reader goroutine; c2s serializes
// writes and flushes. A timer pings the connection to keep it alive
// (RFC 6455 §5.5.2). Between messages a Conn holds no buffer of its own:
// the message being read and the parser's document are borrowed for it
// (msgBufs, docs).
type Conn struct {
	ws            *websocket.Conn
	out           *batchWriter // under ws: the connection, written by ws and by Write
	remote, local net.Addr
	maxBytes      int // limits.max_stanza_bytes: the largest message read

	// Owned by the reader goroutine.
	br         *bufio.Reader // what ws reads the connection through
	frames     frameParser
	cur        io.Reader // the message being read, or one refused before it was read whole
	curType    websocket.MessageType
	peerClosed bool  // the client sent <close/>
	err        error // what ended the stream, returned again

	// Owned by the writer (c2s writes one unit at a time).
	headers headerParser

	pingInterval, pingTimeout time.Duration

	mu        sync.Mutex  // guards the fields below
	readTimer *time.Timer // SetReadDeadline's
	pingTimer *time.Timer // the next ping, or the one being sent
	ended     bool        // Close or CloseNow was called: no more pings

	closeOnce sync.Once
}

// newConn wraps an accepted WebSocket connection, which writes to out, and
// starts pinging it.
func newConn(ws *websocket.Conn, out *batchWriter, br *bufio.Reader, remote, local net.Addr, maxBytes int, pingInterval, pingTimeout time.Duration) *Conn {
	ws.SetReadLimit(-1) // Conn enforces maxBytes itself, to answer with a stream error
	c := &Conn{
		ws: ws, out: out, br: br, remote: remote, local: local, maxBytes: maxBytes,
		frames:       frameParser{limits: stream.Limits{MaxElementBytes: maxBytes}},
		pingInterval: pingInterval, pingTimeout: pingTimeout,
	}
	c.mu.Lock()
	c.pingTimer = time.AfterFunc(pingInterval, c.ping)
	c.mu.Unlock()
	return c
}

// ping sends a WebSocket ping, every pingInterval, from the timer's own
// goroutine, which lives while the ping is unanswered: no goroutine waits
// for the next one. A ping not answered within pingTimeout closes the
// connection (RFC 7395 §3.8 allows WebSocket pings; they also keep proxies
// from closing an idle stream). Pongs are read by the session's reader,
// which always waits for the next message.
func (c *Conn) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), c.pingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	c.mu.Lock()
	ended := c.ended
	if !ended && err == nil {
		c.pingTimer.Reset(c.pingInterval)
	}
	c.mu.Unlock()
	if !ended && err != nil {
		c.ws.CloseNow() // the reader sees the end of the connection
	}
}

// await waits for the next message and keeps its reader (cur). An idle
// stream's reader goroutine spends its life here, under as few frames of
// ours as can be: the stack they take is what an idle stream keeps.
func (c *Conn) await() error {
	if c.cur != nil {
		// The rest of a message refused before it was read whole.
		if err := c.discard(); err != nil {
			return err
		}
	}
	// No deadline here: one passed closes the connection (SetReadDeadline),
	// and a context that can end costs coder/websocket a timer for every
	// frame.
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return err
	}
	c.cur, c.curType = r, typ
	return nil
}

// discard reads what is left of a refused message.
func (c *Conn) discard() error {
	_, err := io.Copy(io.Discard, c.cur)
	c.cur = nil
	return err
}

// Buffered is how many bytes have been read from the connection and not
// yet returned: with none, Next waits for the client. (The TLS connection
// may hold some more, of a record read whole.)
func (c *Conn) Buffered() int { return c.br.Buffered() }

// readMessage reads the message await found whole, into a buffer from
// msgBufs that the caller gives back (putMsgBuf) once done with the
// message. A message that is binary (§3.2 requires text) or larger than
// maxBytes is a stream error; what is left of it is read by the next
// call of await.
func (c *Conn) readMessage() (*[]byte, error) {
	if c.curType != websocket.MessageText {
		return nil, &stream.Error{Condition: stream.UnsupportedEncoding, Text: "a binary WebSocket message: RFC 7395 §3.2 requires text messages"}
	}
	r := c.cur
	buf := msgBufs.Get().(*[]byte)
	b := (*buf)[:0]
	limit := c.maxBytes + 1 // one byte more tells a message too large
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(4096, cap(b)), limit-len(b)))
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		*buf = b
		if len(b) > c.maxBytes {
			putMsgBuf(buf)
			// RFC 6120 §13.12, as for an element too large on TCP.
			return nil, &stream.Error{Condition: stream.PolicyViolation, Text: "element too large"}
		}
		if err == io.EOF {
			c.cur = nil
			return buf, nil
		}
		if err != nil {
			putMsgBuf(buf)
			return nil, err
		}
	}
}

// parseMessage reads the message await found and parses it.
func (c *Conn) parseMessage() (*stream.Element, error) {
	buf, err := c.readMessage()
	if err != nil {
		return nil, err
	}
	el, err := c.frames.parse(*buf)
	putMsgBuf(buf)
	return el, err
}

// setPeerClosed records that the client sent <close/> (RFC 7395 §3.6):
// our <close/> will be the last message, and the close frame follows it
// (batchWriter.holdClose).
func (c *Conn) setPeerClosed() {
	c.peerClosed = true
	c.out.holdClose()
}

// ReadHeader reads the client's <open/> (RFC 7395 §3.4) as the header of
// a stream of jabber:client: the first message of the connection and of
// each stream restart (§3.7).
func (c *Conn) ReadHeader() (stream.Header, error) {
	if c.err == nil {
		c.err = c.await()
	}
	if c.err != nil {
		return stream.Header{}, c.err
	}
	h, err := c.readHeader()
	c.err = err
	return h, err
}

func (c *Conn) readHeader() (stream.Header, error) {
	el, err := c.parseMessage()
	if err != nil {
		return stream.Header{}, err
	}
	switch {
	case el.Name.Space == NSFraming && el.Name.Local == "close":
		c.setPeerClosed()
		return stream.Header{}, stream.ErrClosed
	case el.Name.Local != "open":
		return stream.Header{}, &stream.Error{Condition: stream.BadFormat, Text: "the stream must open with <open xmlns='" + NSFraming + "'/> (RFC 7395 §3.4)"}
	case el.Name.Space != NSFraming:
		return stream.Header{}, &stream.Error{Condition: stream.InvalidNamespace, Text: "<open/> must be qualified by " + NSFraming + " (RFC 7395 §3.3.2)"}
	}
	h := stream.Header{NS: nsClient}
	for _, a := range el.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			h.To = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			h.From = a.Value
		case a.Name.Space == "" && a.Name.Local == "id":
			h.ID = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			h.Version = a.Value
		case a.Name.Space == "http://www.w3.org/XML/1998/namespace" && a.Name.Local == "lang":
			h.Lang = a.Value
		}
	}
	if !supportedVersion(h.Version) {
		// RFC 6120 §4.7.5: no version means 0.9.
		return h, &stream.Error{Condition: stream.UnsupportedVersion, Text: "version 1.0 is required"}
	}
	return h, nil
}

// supportedVersion reports whether v is "major.minor" with major 1
// (RFC 6120 §4.7.5; leading zeros are ignored).
func supportedVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok || strings.TrimLeft(major, "0") != "1" || minor == "" {
		return false
	}
	return strings.Trim(minor, "0123456789") == ""
}

// Next reads the client's next element; its <close/> is stream.ErrClosed
// (RFC 7395 §3.6). An <open/> here is returned as an element, which c2s
// refuses as it refuses any element it does not expect.
func (c *Conn) Next() (*stream.Element, error) {
	if c.err == nil {
		c.err = c.await()
	}
	if c.err != nil {
		return nil, c.err
	}
	el, err := c.next()
	c.err = err
	return el, err
}

func (c *Conn) next() (*stream.Element, error) {
	el, err := c.parseMessage()
	if err != nil {
		return nil, err
	}
	if el.Name.Space == NSFraming && el.Name.Local == "close" {
		c.setPeerClosed()
		return nil, stream.ErrClosed
	}
	return el, nil
}

// Read is for the end of the stream: c2s reads what the client still sends
// after it, to let the client close its side (RFC 6120 §4.4). It returns
// the client's messages (each cut to len(p)) up to its <close/>, then
// io.EOF; the error that ended the connection, if it ends first.
func (c *Conn) Read(p []byte) (int, error) {
	for !c.peerClosed {
		if err := c.await(); err != nil {
			return 0, err
		}
		buf, err := c.readMessage()
		if _, ok := errors.AsType[*stream.Error](err); ok {
			continue // binary or oversized: discarded
		} else if err != nil {
			return 0, err
		}
		el, err := c.frames.parse(*buf)
		if err == nil && el.Name.Space == NSFraming && el.Name.Local == "close" {
			c.setPeerClosed()
			putMsgBuf(buf)
			continue
		}
		n := copy(p, *buf)
		putMsgBuf(buf)
		return n, nil
	}
	return 0, io.EOF
}

// Write adds one top-level unit of the stream c2s writes to the batch, as
// one message: our stream header as <open/>, the closing tag as <close/>,
// an element namespaced to stand alone (RFC 7395 §3.3.3, §3.4, §3.6).
// Nothing is sent before Flush, unless the batch grows large or
// coder/websocket sends a control frame meanwhile.
func (c *Conn) Write(b []byte) (int, error) {
	var err error
	switch {
	case bytes.Equal(b, []byte(stream.Close)):
		err = c.out.closeMessage()
	case bytes.HasPrefix(b, []byte("<?xml")): // stream.AppendHeader's
		var open []byte
		if open, err = c.headers.openFrame(nil, b); err == nil {
			err = c.out.message(open)
		}
	default:
		at, decl := standalone(b)
		err = c.out.message(b[:at], decl, b[at:])
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush sends the messages written since the last Flush, in one write to
// the connection, within the write deadline: c2s calls it once it has
// written everything it had queued. Our <close/> answering the client's
// is the exception: nothing can follow it but the close frame (Close),
// which takes it along, in the same write.
func (c *Conn) Flush() error { return c.out.flush() }

// Close ends the WebSocket connection with the closing handshake
// (RFC 6455 §7), after c2s has closed the XMPP stream. The close frame
// sends whatever is still unflushed before it.
func (c *Conn) Close() error {
	return c.end(func() error { return c.ws.Close(websocket.StatusNormalClosure, "") })
}

// CloseNow ends the connection at once, without the closing handshake:
// for a client known to have left it (c2s: a stream management
// resumption took its session elsewhere, XEP-0198 §5). A <close/> held
// for the close frame is sent first.
func (c *Conn) CloseNow() error {
	return c.end(func() error {
		c.out.flushHeld()
		return c.ws.CloseNow()
	})
}

// end stops the pings and the read timer and closes the WebSocket with
// close, once, whichever of Close and CloseNow comes first. A ping being
// sent ends with the connection.
func (c *Conn) end(close func() error) error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.ended = true
		c.pingTimer.Stop()
		if c.readTimer != nil {
			c.readTimer.Stop()
		}
		c.mu.Unlock()
		err = close()
	})
	return err
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Transport implements c2s.Transporter.
func (c *Conn) Transport() string { return "websocket" }

// RemoteAddr is the client's address: the peer of the connection, or what
// a trusted proxy reported.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds reading. c2s sets it only to bound the wait for
// the client at the end of the stream, so once it has passed, reading has
// ended for good and the connection is closed.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readTimer != nil {
		c.readTimer.Stop()
		c.readTimer = nil
	}
	if !t.IsZero() {
		c.readTimer = time.AfterFunc(time.Until(t), func() { c.ws.CloseNow() })
	}
	return nil
}

// SetWriteDeadline bounds the writes of the batches flushed after it: a
// write still running at the deadline fails, and the stream with it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.out.setDeadline(t)
	return nil
}
