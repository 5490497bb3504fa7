package s2s

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/stream"
)

// writeTimeout bounds one write to a peer: a peer that reads nothing for
// that long is treated as gone.
const writeTimeout = 30 * time.Second

// conn is one TCP connection to or from another server, with its stream
// reader; TLS replaces nc once negotiated.
type conn struct {
	nc     net.Conn
	r      *stream.Reader
	secure bool
	tls    tls.ConnectionState
	// certErr is why the peer's certificate does not validate for its
	// domain (nil: it does; RFC 6125); errNoTLS before TLS.
	certErr error

	wmu sync.Mutex // serialises writes
}

var errNoTLS = errors.New("no TLS")

func newConn(nc net.Conn, lim stream.Limits) *conn {
	return &conn{nc: nc, r: stream.NewReader(nc, lim), certErr: errNoTLS}
}

// write sends b at once.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(b)
	return err
}

// writeString is write for a constant.
func (c *conn) writeString(s string) error { return c.write([]byte(s)) }

// upgrade runs the TLS handshake on the connection (RFC 6120 §5.4.3.3)
// and restarts the reader on it.
func (c *conn) upgrade(t *tls.Conn) error {
	if err := t.Handshake(); err != nil {
		return err
	}
	c.useTLS(t)
	return nil
}

// useTLS makes t, whose handshake is done, the connection.
func (c *conn) useTLS(t *tls.Conn) {
	c.wmu.Lock()
	c.nc = t
	c.secure = true
	c.tls = t.ConnectionState()
	c.wmu.Unlock()
	c.r.Reset(t)
}

// fail ends the stream with a stream error (RFC 6120 §4.9) and closes it.
func (c *conn) fail(e *stream.Error) {
	c.end(append(e.Bytes(), stream.Close...))
}

// close ends the stream gracefully (RFC 6120 §4.4) and closes it.
func (c *conn) close() { c.end([]byte(stream.Close)) }

// end writes b, the stream's last words, and closes the connection; any
// goroutine may call it.
func (c *conn) end(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(b)
	c.nc.Close()
}

// abort closes the connection without a word; any goroutine may call it.
func (c *conn) abort() {
	c.wmu.Lock()
	c.nc.Close()
	c.wmu.Unlock()
}

// tlsVersion names the negotiated TLS version, for the admin view.
func (c *conn) tlsVersion() string {
	if !c.secure {
		return "none"
	}
	return tls.VersionName(c.tls.Version)
}

// failure is why a stream to a remote domain could not be used, in words
// for the operator and the bounced stanzas' text.
type failure struct {
	reason string
	// opened: the peer had answered with a stream header, so the failure
	// came later: remote-server-timeout rather than
	// remote-server-not-found (RFC 6120 §8.3.3.16, §8.3.3.17).
	opened bool
	// refused: the peer found our dialback key invalid, which XEP-0220
	// §2.1.1 answers with internal-server-error.
	refused bool
}

func (f *failure) Error() string { return f.reason }

func failf(opened bool, format string, args ...any) *failure {
	return &failure{reason: fmt.Sprintf(format, args...), opened: opened}
}

// b64 is the base64 of an authorization identity (RFC 6120 §6.4.2).
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
