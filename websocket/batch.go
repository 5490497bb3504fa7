package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"
)

// What the server writes goes out in batches. coder/websocket reads the
// connection and writes the control frames: pings (Conn.ping), pongs and
// the answer to a client's close (from inside the reader), the closing
// handshake (Close). The data messages — one element each (RFC 7395
// §3.3.3) — Conn frames itself (RFC 6455 §5.2: unfragmented, unmasked,
// uncompressed, as coder/websocket would with compression off) into a
// batch, which c2s's writer sends with Flush once it has written what it
// had queued: the messages of a batch share one write to the connection —
// one syscall, and one TLS record per 16 KiB — instead of one each. Conn
// never calls ws.Write or ws.Writer, so coder/websocket writes control
// frames only.
//
// Both go through a batchWriter, which keeps them in order on the wire.

// flushAt is the size beyond which a batch is written before Flush.
const flushAt = 16 << 10

// opClose is the opcode of a close frame (RFC 6455 §5.5.1).
const opClose = 0x8

// batches are the buffers of open batches: an idle stream holds none.
var batches = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// batchWriter is the connection, written by two parties: the session's
// writer adds data messages to the batch (message) and sends it (flush);
// coder/websocket writes its control frames (Write) from whichever
// goroutine sends one. A control frame is never held: it goes out at
// once, after what the batch holds so far (the frames keep the order in
// which they were written), and ends the batch.
type batchWriter struct {
	conn net.Conn // the hijacked connection, set before the first write

	mu       sync.Mutex    // guards the fields below, and is held for every write to conn
	batch    *bytes.Buffer // the open batch, from batches; nil when none is open
	deadline time.Time     // SetWriteDeadline's: bounds the writes of a batch
	set      time.Time     // the write deadline in force on conn
	closed   bool          // a close frame went out: no data message may follow (RFC 6455 §5.5.1)
	err      error         // a write to conn failed: every later one fails with it

	// The client sent <close/>: a batch that ends with our <close/> waits
	// for the close frame, which Close sends next (Conn.Flush).
	peerClosed bool
	endsClosed bool // the open batch ends with our <close/>
}

// closeMessage is closeFrame's bytes.
var closeMessage = []byte(closeFrame)

// holdClose records that the client has sent <close/>.
func (w *batchWriter) holdClose() {
	w.mu.Lock()
	w.peerClosed = true
	w.mu.Unlock()
}

// closeMessage adds our <close/> to the batch.
func (w *batchWriter) closeMessage() error {
	if err := w.message(closeMessage); err != nil {
		return err
	}
	w.mu.Lock()
	w.endsClosed = w.batch != nil
	w.mu.Unlock()
	return nil
}

// Write is how coder/websocket writes, one complete control frame per
// call: it flushes its buffered writer at the end of every frame, and
// control frames (at most 127 bytes) fit in that buffer whole. It sends
// the frame at once, after the open batch, with no deadline of ours
// (coder/websocket bounds a control frame's write itself, by closing the
// connection).
func (w *batchWriter) Write(frame []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(frame) > 0 && frame[0]&0x0f == opClose {
		w.closed = true
	}
	p := frame
	if w.batch != nil {
		w.batch.Write(frame)
		p = w.batch.Bytes()
	}
	err := w.write(p, time.Time{})
	w.release()
	if err != nil {
		return 0, err
	}
	return len(frame), nil
}

// message adds one text message, the concatenation of parts, to the batch
// (opening one), and writes the batch if it has grown beyond flushAt.
func (w *batchWriter) message(parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return net.ErrClosed
	}
	if w.batch == nil {
		w.batch = batches.Get().(*bytes.Buffer)
	}
	w.endsClosed = false
	var hdr [10]byte
	w.batch.Write(textHeader(hdr[:0], n))
	for _, p := range parts {
		w.batch.Write(p)
	}
	if w.batch.Len() < flushAt {
		return nil
	}
	return w.flushLocked()
}

// flush writes the open batch, if any, within the write deadline; one
// that ends with our <close/> answering the client's is held for the
// close frame.
func (w *batchWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.peerClosed && w.endsClosed {
		return w.err
	}
	return w.flushLocked()
}

// flushHeld writes the open batch, if any, held or not.
func (w *batchWriter) flushHeld() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *batchWriter) flushLocked() error {
	if w.batch == nil {
		return w.err
	}
	err := w.write(w.batch.Bytes(), w.deadline)
	w.release()
	return err
}

// setDeadline sets the deadline of the batches written after it.
func (w *batchWriter) setDeadline(t time.Time) {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
}

// write writes p to conn with deadline in force (the zero time: none).
func (w *batchWriter) write(p []byte, deadline time.Time) error {
	if w.err != nil {
		return w.err
	}
	if !deadline.Equal(w.set) {
		if w.err = w.conn.SetWriteDeadline(deadline); w.err != nil {
			return w.err
		}
		w.set = deadline
	}
	_, w.err = w.conn.Write(p)
	return w.err
}

// release ends the open batch, if any, and gives back its buffer (unless
// a large stanza grew it).
func (w *batchWriter) release() {
	w.endsClosed = false
	if w.batch == nil {
		return
	}
	if w.batch.Cap() <= keepBuffer {
		w.batch.Reset()
		batches.Put(w.batch)
	}
	w.batch = nil
}

// textHeader appends the header of an unfragmented, unmasked text frame of
// n bytes (RFC 6455 §5.2: FIN, opcode 1, the shortest length encoding).
func textHeader(dst []byte, n int) []byte {
	dst = append(dst, 0x80|0x1)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// The buffers of the bufio.ReadWriter coder/websocket reads and writes
// the connection through, for the stream's life. It reads a frame's
// header through the reader and the payload straight into Conn's message
// buffer when that is larger than the reader's; the TLS connection
// buffers a record anyway. It writes control frames only (batchWriter),
// each whole into the writer (2 header bytes, at most 125 of payload)
// and flushed at once.
const (
	readBuffer  = 64
	writeBuffer = 128
)

// hijacker is the ResponseWriter given to coder/websocket's Accept: its
// Hijack hands over the connection with out underneath the buffered
// writer coder/websocket writes its frames to, and buffers far smaller
// than net/http's (4 KiB each), which an idle stream would hold.
type hijacker struct {
	http.ResponseWriter
	out  *batchWriter
	conn net.Conn      // the hijacked connection
	br   *bufio.Reader // the reader coder/websocket reads it through
	own  bool          // br is ours, not net/http's
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http has flushed its response (the 101) before handing over.
	if err := rw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	h.out.conn, h.conn = conn, conn
	h.br = rw.Reader
	if h.br.Buffered() == 0 {
		// Else the client sent frames before our 101: coder/websocket
		// reads them from net/http's reader, which it keeps.
		h.br, h.own = bufio.NewReaderSize(conn, readBuffer), true
	}
	return conn, bufio.NewReadWriter(h.br, bufio.NewWriterSize(h.out, writeBuffer)), nil
}

// readDirect has our reader read the connection itself, once Accept has
// returned: Accept puts what the reader held (nothing, for ours) before
// the connection in an io.MultiReader, a frame more on the stack of the
// session's reader, which waits there while the stream is idle.
func (h *hijacker) readDirect() {
	if h.own && h.br.Buffered() == 0 {
		h.br.Reset(h.conn)
	}
}
