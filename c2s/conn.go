package c2s

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/admission"
	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of the stream features (RFC 6120 §5, §6, §7; RFC 3921 §3;
// XEP-0440; XEP-0077 §8).
const (
	nsClient  = "jabber:client"
	nsStreams = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
	nsRegFeat = "http://jabber.org/features/iq-register"
)

// writeTimeout bounds one flush to the client: a recipient that does not
// read for this long ends its own stream, nobody else'c.
const writeTimeout = 30 * time.Second

// closeGrace is how long the server waits for the client's
// </stream:stream> after sending its own (RFC 6120 §4.4).
const closeGrace = 2 * time.Second

// conn is one client connection: the negotiation (its reader goroutine,
// run, owns the negotiation state), then, once it has bound a resource or
// resumed a session (XEP-0198 §5), the connection of that session: its
// reader hands the client's stanzas on, and its writer goroutine
// (writeLoop) is the only one that writes to nc. A session outlives its
// connection when stream management lets it resume.
type conn struct {
	srv    *Server
	raw    net.Conn // the TCP connection, or the Framed one
	framed bool     // raw is Framed: one Write per top-level element

	writeMu sync.Mutex // guards nc, opened and writes before the writer starts
	nc      net.Conn   // raw, or the TLS connection over it
	opened  bool       // our stream header for the current stream is sent

	// addrKey is the client's address as the per-address limits count
	// it (clientKey); counted reports that the connection holds a place
	// among its address's streams not authenticated yet.
	addrKey string
	counted atomic.Bool
	// authAccount is the account whose throttle the SASL exchange under
	// way holds a place in, if any; the reader goroutine owns it.
	authAccount string
	// disabled: the account the SASL exchange under way looked up is
	// disabled (storage.Account.Disabled); the reader goroutine owns it.
	disabled bool

	r         elementReader
	host      string
	tls       bool // encrypted: TLS on conn, or below a secure Framed
	cb        auth.ChannelBinding
	username  string // set by SASL success
	mechanism string // the SASL mechanism that succeeded

	// sess is the session this connection carries, set by the reader at
	// bind or resumption, before attached; read-only afterwards.
	sess    *session
	resumed bool // sess was resumed (XEP-0198 §5), not bound
	// attached: the writer owns nc (set under writeMu).
	attached atomic.Bool
	// The writer (attach, kick, writeLoop): its state, the connection it
	// writes to and what it writes first, set by attach.
	wstate atomic.Uint32
	wnc    net.Conn
	wfirst [][]byte
	// idleTimer pings a silent client (startIdleTimer); stopped by close.
	idleTimer atomic.Pointer[time.Timer]

	lastRead atomic.Int64 // unix nanoseconds of the last byte received

	clientStanza ClientStanza // the event of the stanza being handled (reader goroutine)
	clientNonza  ClientNonza  // the same for nonzas

	quit     chan struct{} // closed by close()
	quitOnce sync.Once
	quitErr  *stream.Error // set before quit is closed
	written  chan struct{} // closed when the writer has finished
	done     chan struct{} // closed when the reader goroutine has finished
}

func newConn(srv *Server, nc net.Conn) *conn {
	c := &conn{
		srv:     srv,
		raw:     nc,
		quit:    make(chan struct{}),
		written: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.nc = &activityConn{Conn: nc, last: &c.lastRead}
	c.addrKey = admission.Key(nc.RemoteAddr(), srv.config().Limits.IPv6Prefix)
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// newFramedConn is newConn for a framed connection (ServeFramed).
func newFramedConn(srv *Server, nc Framed, secure bool) *conn {
	c := &conn{
		srv:     srv,
		raw:     nc,
		framed:  true,
		nc:      nc,
		tls:     secure,
		quit:    make(chan struct{}),
		written: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.r = framedActivity{Framed: nc, last: &c.lastRead}
	c.addrKey = admission.Key(nc.RemoteAddr(), srv.config().Limits.IPv6Prefix)
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// leaveUnauthenticated gives back the connection's place among its
// address's streams not authenticated yet, once: at SASL success or when
// the connection ends.
func (c *conn) leaveUnauthenticated() {
	if c.counted.CompareAndSwap(true, false) {
		c.srv.unauthenticated.Leave(c.addrKey)
	}
}

// refuse ends a stream that is over its address's cap on streams not
// authenticated yet with <policy-violation/> (RFC 6120 §4.9.3.15), after
// the TLS handshake on a direct TLS listener, each step bounded by
// closeGrace, so that a refusal costs little and holds nothing long.
func (c *conn) refuse(ctx context.Context, directTLS bool) {
	defer c.srv.forget(c)
	defer c.nc.Close()
	if directTLS {
		hctx, cancel := context.WithTimeout(ctx, closeGrace)
		tc := tls.Server(c.nc, c.srv.directTLSConfig())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return
		}
		c.writeMu.Lock() // close may be writing the end (Shutdown)
		c.nc = tc
		c.writeMu.Unlock()
	}
	c.srv.stats.closes.add(stream.PolicyViolation)
	c.close(&stream.Error{Condition: stream.PolicyViolation, Text: "too many unauthenticated connections from your address"})
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	io.Copy(io.Discard, io.LimitReader(c.nc, 4<<10))
}

// elementReader reads the client's stream: a *stream.Reader over the
// connection's bytes, or a Framed connection.
type elementReader interface {
	ReadHeader() (stream.Header, error)
	Next() (*stream.Element, error)
	// Buffered is how much it holds that Next has not returned: with
	// nothing, Next waits for the client.
	Buffered() int
}

// activityConn records when bytes last arrived (for the idle ping).
type activityConn struct {
	net.Conn
	last *atomic.Int64
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// framedActivity records when elements arrive on a Framed connection.
type framedActivity struct {
	Framed
	last *atomic.Int64
}

// Buffered passes on what the Framed connection holds, if it says
// (websocket.Conn does); unknown counts as something, so that serve
// does not move to a new goroutine on a guess.
func (f framedActivity) Buffered() int {
	if b, ok := f.Framed.(buffered); ok {
		return b.Buffered()
	}
	return 1
}

func (f framedActivity) Next() (*stream.Element, error) {
	el, err := f.Framed.Next()
	f.last.Store(time.Now().UnixNano())
	return el, err
}

// close ends the connection with err (nil: a plain </stream:stream>).
// Safe to call from any goroutine, any number of times. It ends the
// connection, not the session: the reader decides what becomes of the
// session (finish), unless the session ended first (session.end).
func (c *conn) close(err *stream.Error) {
	c.quitOnce.Do(func() {
		c.quitErr = err
		// attach sets attached under writeMu: either the writer exists
		// and sees quit, or it never will and the end is written here.
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		close(c.quit)
		if t := c.idleTimer.Load(); t != nil {
			t.Stop()
		}
		if !c.attached.Load() {
			c.writeEnd(c.nc)
		} else {
			c.kick() // the writer writes the end
		}
	})
}

// kill ends the connection at once, without a goodbye: a resumption
// (XEP-0198 §5) takes its session, and the client has left it already.
// A Framed connection with a closing handshake of its own (WebSocket's)
// skips it when it has CloseNow.
func (c *conn) kill() {
	if cn, ok := c.raw.(interface{ CloseNow() error }); ok {
		cn.CloseNow()
	} else {
		c.raw.Close()
	}
	c.close(nil)
}

// writeEnd sends the stream error, if any, and the closing tag, then waits
// briefly for the client's own closing tag.
func (c *conn) writeEnd(w net.Conn) {
	var hdr, errb []byte
	if !c.opened {
		// RFC 6120 §4.9.1.2: open the stream before sending the error.
		hdr = stream.AppendHeader(nil, stream.Header{ID: newID(), Version: "1.0", Lang: "en", NS: nsClient, From: c.srv.config().Server.Hosts[0]})
	}
	if c.quitErr != nil {
		errb = c.quitErr.Bytes()
	}
	w.SetWriteDeadline(time.Now().Add(closeGrace))
	c.writeUnits(w, hdr, errb, []byte(stream.Close))
	w.SetReadDeadline(time.Now().Add(closeGrace))
}

// flusher is a Framed connection that may hold what is written until
// Flush (Framed).
type flusher interface{ Flush() error }

// writeUnits writes top-level units (elements, our stream header, the
// closing tag), skipping empty ones: together on a byte stream, with one
// Write each on a Framed connection, then its Flush if it has one.
func (c *conn) writeUnits(w net.Conn, units ...[]byte) error {
	if !c.framed && len(units) > 1 {
		n := 0
		for _, u := range units {
			n += len(u)
		}
		b := make([]byte, 0, n)
		for _, u := range units {
			b = append(b, u...)
		}
		_, err := w.Write(b)
		return err
	}
	for _, u := range units {
		if len(u) == 0 {
			continue
		}
		if _, err := w.Write(u); err != nil {
			return err
		}
	}
	if f, ok := w.(flusher); ok && c.framed {
		return f.Flush()
	}
	return nil
}

// run is the reader goroutine: negotiation, then the stanza loop.
func (c *conn) run(ctx context.Context, directTLS bool) {
	if err := c.negotiated(ctx, directTLS); err != nil {
		c.end(err)
		return
	}
	// The stanza loop goes on in a new goroutine: this one's stack grew
	// through the TLS handshake, SASL and storage, and would stay that
	// large for the session's life; a new one starts at the size
	// goroutines use on average.
	go c.serveFresh(ctx)
}

// serveFresh runs the stanza loop until the connection ends; when the
// loop stops to shed its stack (errFresh), it goes on in a new goroutine.
// A goroutine's stack grows to the deepest call it made — here storage,
// whose calls go deep — and the runtime gives back at most half of it at
// each garbage collection, and only while less than a quarter is in use:
// a session waiting for input would keep 8 KiB or more for good.
func (c *conn) serveFresh(ctx context.Context) {
	err := c.serve(ctx)
	if err == errFresh {
		go c.serveFresh(ctx)
		return
	}
	c.end(err)
}

// errFresh: serve stopped, with nothing left to read, after stanzas that
// may have gone deep (IQs, presence), so that a new goroutine waits for
// the next ones.
var errFresh = errors.New("c2s: go on in a new goroutine")

// buffered is a Framed connection that tells what it holds
// (websocket.Conn).
type buffered interface{ Buffered() int }

// log is the connection's logger, made when there is something to log:
// an idle session holds none.
func (c *conn) log() *slog.Logger {
	l := c.srv.Log.With("conn", c.raw.RemoteAddr().String())
	if c.sess != nil {
		l = l.With("jid", c.sess.full.String())
	}
	return l
}

// negotiated runs the negotiation up to a bound resource.
func (c *conn) negotiated(ctx context.Context, directTLS bool) error {
	cfg := c.srv.config()

	// Connect and auth timeouts (RFC 6120 §4.6 leaves their values to policy).
	authTimer := time.AfterFunc(cfg.Limits.AuthTimeout.Duration, func() {
		if !c.attached.Load() {
			c.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "authentication took too long"})
		}
	})
	defer authTimer.Stop()

	if directTLS {
		if err := c.startTLS(ctx, c.srv.directTLSConfig()); err != nil {
			c.log().Debug("direct TLS handshake failed", "err", err)
			return errHandshake
		}
	}
	if !c.framed {
		r := stream.NewReader(c.nc, stream.Limits{MaxElementBytes: cfg.Limits.MaxStanzaBytes, MaxDepth: stream.DefaultLimits().MaxDepth})
		r.ReleaseIdle() // most sessions are idle most of the time
		c.r = r
	}
	if err := c.negotiate(ctx); err != nil {
		return err
	}
	c.log().Info("session bound", "tls", c.tls, "direct_tls", directTLS, "framed", c.framed, "mechanism", c.mechanism, "resumed", c.resumed)
	return nil
}

// errHandshake: a direct TLS handshake failed; there was no stream.
var errHandshake = errors.New("c2s: TLS handshake failed")

// end finishes the connection and lets go of it.
func (c *conn) end(err error) {
	defer close(c.done)
	defer c.srv.forget(c)
	defer c.nc.Close()
	if err != errHandshake {
		c.finish(c.log(), err)
	}
}

// finish reports why the connection ended, tears it down, and ends or
// detaches its session: a session that stream management made
// resumable (XEP-0198 §5) outlives a connection that was lost (it broke,
// or stopped answering), but not a stream closed by the client or ended
// by a stream error.
func (c *conn) finish(log interface {
	Debug(string, ...any)
	Info(string, ...any)
}, err error) {
	var se *stream.Error
	isStreamErr := errors.As(err, &se)
	clean := errors.Is(err, stream.ErrClosed)
	act := keepSession
	if c.sess != nil {
		act = c.sess.release(c, !isStreamErr && !clean)
		if clean && act == endSession {
			c.sess.closedByClient.Store(true)
		}
	}
	// Leave the router first, so that once the client sees the end of the
	// stream, nothing is routed to this session any more.
	if act == endSession {
		c.srv.Router.Unbind(c.sess)
		event.Fire(context.Background(), c.srv.Bus, &SessionEnded{Session: c.sess})
	}
	reason := closeReason(se, clean)
	switch {
	case isStreamErr:
		log.Info("stream error", "condition", se.Condition, "text", se.Text)
		c.close(se)
	case clean:
		log.Debug("client closed the stream")
		c.close(nil)
	default:
		select {
		case <-c.quit:
			// Ended by the server (a timeout, a conflict, a full
			// queue, shutdown), with the stream error it sent.
			if c.quitErr != nil {
				reason = c.quitErr.Condition
			}
		default:
			log.Debug("connection ended", "err", err)
		}
		c.close(nil)
	}
	c.srv.stats.closes.add(reason)
	if c.attached.Load() {
		<-c.written
	}
	switch act {
	case endSession:
		c.sess.settle()
		log.Info("session ended")
	case detachSession:
		c.sess.detachDone()
		log.Info("session detached", "resume_for", c.sess.timeout.String())
	}
	// RFC 6120 §4.4: give the client a moment to close its side, reading
	// what is still in flight (its </stream:stream>, a TLS close_notify),
	// so that closing the socket with unread data does not reset the
	// connection under the client's feet.
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	io.Copy(io.Discard, io.LimitReader(c.nc, 64<<10))
}

// negotiate runs the stream negotiation up to a bound resource.
func (c *conn) negotiate(ctx context.Context) error {
	cfg := c.srv.config()
	headerTimer := time.AfterFunc(cfg.Limits.ConnectTimeout.Duration, func() {
		c.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "no stream header"})
	})
	defer headerTimer.Stop()
	// RFC 6120 §6.4.5 lets the server bound the retries. Rejected
	// credentials count against MaxAuthAttempts; protocol failures (an
	// unsupported channel binding, a mechanism tried and abandoned, as
	// clients do when probing) only against a looser bound, so that a
	// client falling back through its mechanisms still reaches one that
	// works.
	rejected, failed := 0, 0
	for {
		if err := c.openStream(); err != nil {
			return err
		}
		headerTimer.Stop()
		restart := false
		for !restart {
			el, err := c.r.Next()
			if err != nil {
				return err
			}
			switch {
			case el.Name.Space == nsTLS && el.Name.Local == "starttls" && !c.tls && !c.framed:
				if err := c.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
					return err
				}
				if err := c.startTLS(ctx, c.srv.TLS.ServerConfig()); err != nil {
					return err
				}
				c.restart()
				restart = true
			case el.Name.Space == nsSASL && el.Name.Local == "auth" && c.username == "":
				f, err := c.authenticate(ctx, el)
				if err != nil {
					return err
				}
				if f == nil {
					c.restart()
					restart = true
					continue
				}
				failed++
				if f.Condition == auth.NotAuthorized {
					rejected++
				}
				if rejected >= cfg.Limits.MaxAuthAttempts || failed >= 3*cfg.Limits.MaxAuthAttempts {
					return &stream.Error{Condition: stream.PolicyViolation, Text: "too many failed authentication attempts"}
				}
			case el.Name.Space == nsSM && el.Name.Local == "resume" && c.username != "":
				done, err := c.resume(ctx, el)
				if err != nil || done {
					return err
				}
			case el.Name.Space == nsSM:
				// XEP-0198 §3: stream management needs a bound
				// resource (or, to resume, an authenticated stream).
				if err := c.write(smFailed(stanza.UnexpectedRequest, -1)); err != nil {
					return err
				}
			case el.Name.Space == nsClient && el.Name.Local == "iq":
				done, err := c.negotiationIQ(ctx, el)
				if err != nil || done {
					return err
				}
			case el.Name.Space == nsClient:
				// RFC 6120 §4.9.3.12: stanzas before authentication.
				return &stream.Error{Condition: stream.NotAuthorized}
			default:
				return &stream.Error{Condition: stream.UnsupportedStanzaType}
			}
		}
	}
}

// restart prepares a stream restart after TLS or SASL (RFC 6120 §4.3.3): a
// new header is read from the client, and ours is to be sent again. A
// Framed connection has nothing buffered: its next message is the new
// header (RFC 7395 §3.7).
func (c *conn) restart() {
	c.writeMu.Lock()
	c.opened = false
	c.writeMu.Unlock()
	if r, ok := c.r.(*stream.Reader); ok {
		r.Reset(c.nc)
	}
}

// openStream reads the client's stream header and answers with ours and
// the features for the current state (RFC 6120 §4.3).
func (c *conn) openStream() error {
	h, err := c.r.ReadHeader()
	resp := stream.Header{ID: newID(), Version: "1.0", Lang: "en", NS: nsClient, From: c.host}
	if err == nil {
		if h.NS != nsClient {
			err = &stream.Error{Condition: stream.InvalidNamespace, Text: "the content namespace must be jabber:client"}
		} else if host, perr := jid.Parse(h.To); perr != nil || h.To == "" || !c.srv.Router.IsLocal(host.Domainpart()) || host.Localpart() != "" || host.Resourcepart() != "" {
			err = &stream.Error{Condition: stream.HostUnknown}
		} else if c.host != "" && host.Domainpart() != c.host {
			err = &stream.Error{Condition: stream.HostUnknown, Text: "the host changed between stream restarts"}
		} else {
			c.host = host.Domainpart()
			resp.From = c.host
		}
		if h.Lang != "" {
			resp.Lang = h.Lang
		}
	}
	if resp.From == "" {
		resp.From = c.srv.config().Server.Hosts[0]
	}
	var se *stream.Error
	if err != nil && !errors.As(err, &se) {
		return err // transport failure: nothing to answer
	}
	// RFC 6120 §4.9.1.2: even when the header is bad, open our stream
	// first so that the error can be sent.
	var features []byte
	if err == nil {
		features = c.features()
	}
	if werr := c.send(true, stream.AppendHeader(nil, resp), features); werr != nil {
		return werr
	}
	return err
}

// features builds <stream:features/> for the current negotiation state.
func (c *conn) features() []byte {
	cfg := c.srv.config()
	var b bytes.Buffer
	b.WriteString("<stream:features>")
	switch {
	case c.username != "":
		b.WriteString("<bind xmlns='" + nsBind + "'/>")
		b.WriteString("<session xmlns='" + nsSession + "'><optional/></session>")
		if cfg.C2S.StreamManagement {
			b.WriteString("<sm xmlns='" + nsSM + "'/>") // XEP-0198 §2
		}
		if c.srv.BoundFeatures != nil {
			b.Write(c.srv.BoundFeatures())
		}
	default:
		if !c.tls && !c.framed {
			b.WriteString("<starttls xmlns='" + nsTLS + "'>")
			if cfg.C2S.RequireTLS {
				b.WriteString("<required/>")
			}
			b.WriteString("</starttls>")
		}
		if c.tls || !cfg.C2S.RequireTLS {
			b.WriteString("<mechanisms xmlns='" + nsSASL + "'>")
			for _, m := range c.mechanisms(cfg) {
				b.WriteString("<mechanism>" + m + "</mechanism>")
			}
			b.WriteString("</mechanisms>")
			if types := c.cb.Types(); len(types) > 0 {
				b.WriteString("<sasl-channel-binding xmlns='" + nsSASLCB + "'>")
				for _, t := range types {
					b.WriteString("<channel-binding type='" + t + "'/>")
				}
				b.WriteString("</sasl-channel-binding>")
			}
			if c.tls && cfg.RegistrationEnabled(c.host) {
				b.WriteString("<register xmlns='" + nsRegFeat + "'/>")
			}
		}
	}
	b.WriteString("</stream:features>")
	return b.Bytes()
}

// mechanisms are the SASL mechanisms the connection offers: auth's, less
// the SCRAM families [auth] scram_hashes leaves out.
func (c *conn) mechanisms(cfg *config.Config) []string {
	all := auth.Mechanisms(c.cb, c.tls)
	if len(cfg.Auth.SCRAMHashes) == len(storage.Hashes) {
		return all
	}
	offered := all[:0]
	for _, m := range all {
		if h, ok := auth.MechanismHash(m); !ok || slices.Contains(cfg.Auth.SCRAMHashes, string(h)) {
			offered = append(offered, m)
		}
	}
	return offered
}

// startTLS runs the server side of a TLS handshake on the connection
// (RFC 6120 §5.4.3.3; XEP-0368 for direct TLS).
func (c *conn) startTLS(ctx context.Context, cfg *tls.Config) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	tc := tls.Server(c.nc, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.srv.config().Limits.ConnectTimeout.Duration)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return err
	}
	cs := tc.ConnectionState()
	c.nc = tc
	c.tls = true
	c.cb = auth.ChannelBindingFromTLS(cs, c.srv.TLS.PresentedLeaf(tc))
	if c.host == "" && c.srv.Router.IsLocal(cs.ServerName) {
		c.host = cs.ServerName
	}
	return nil
}

// write sends one element during negotiation, when the reader is the only
// writer besides close().
func (c *conn) write(b []byte) error { return c.send(false, b) }

// send writes units (see writeUnits) during negotiation; header reports
// that the first opens our stream.
func (c *conn) send(header bool, units ...[]byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.opened = c.opened || header
	select {
	case <-c.quit:
		return io.ErrClosedPipe
	default:
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.writeUnits(c.nc, units...)
}

// authenticate runs one SASL exchange starting with <auth/> (RFC 6120
// §6.4). It returns nil on success, or the failure, which has been
// answered already.
//
// Failed logins are throttled (RFC 6120 §13.9.4) per client address and
// per account, the account's throttle applying only to addresses that have
// not logged in to it before (auth.KnownAddrs), so that strangers cannot
// lock its owner out. Both are consulted before anything depends on the
// password: the address's at <auth/>, the account's as soon as the client
// names it (auth.Lookup), and a throttled attempt is answered
// temporary-auth-failure (§6.5.11) whatever password it carries. Each
// attempt holds its place in the throttles until its outcome is known, so
// concurrent attempts check at most the limit's worth of passwords. Only
// rejected credentials count as failures.
func (c *conn) authenticate(ctx context.Context, el *stream.Element) (*auth.Failure, error) {
	mech := el.AttrValue("mechanism")
	if !c.tls && c.srv.config().C2S.RequireTLS {
		f := &auth.Failure{Condition: auth.EncryptionRequired}
		return f, c.write(f.Bytes())
	}
	if !c.srv.addrThrottle.Begin(c.addrKey) {
		c.srv.stats.loginFailures.add("throttled")
		c.logFailure(mech, "", addressThrottled, "address")
		return addressThrottled, c.write(addressThrottled.Bytes())
	}
	var server *auth.Server
	rejected := false
	defer func() {
		c.srv.addrThrottle.End(c.addrKey, rejected)
		if c.authAccount != "" {
			c.srv.accountThrottle.End(c.authAccount, rejected)
			c.authAccount = ""
		}
	}()
	fail := func(f *auth.Failure) (*auth.Failure, error) {
		rejected = f.Condition == auth.NotAuthorized
		account := ""
		if server != nil && server.Username() != "" {
			account = server.Username() + "@" + c.host
		}
		switch {
		case rejected:
			c.logFailure(mech, account, f, "")
		case f == accountThrottled:
			c.logFailure(mech, account, f, "account")
		}
		if f == accountThrottled {
			c.srv.stats.loginFailures.add("throttled")
		} else {
			c.srv.stats.loginFailures.add(f.Condition)
		}
		return f, c.write(f.Bytes())
	}
	if !slices.Contains(c.mechanisms(c.srv.config()), mech) {
		return fail(&auth.Failure{Condition: auth.InvalidMechanism}) // RFC 6120 §6.5.7
	}
	server, err := auth.NewServer(mech, c.cb, c.tls, c.lookup)
	if err != nil {
		var f *auth.Failure
		if errors.As(err, &f) {
			return fail(f)
		}
		return nil, err
	}
	// An unknown account looks and costs like one created now.
	server.Iterations = c.srv.config().Auth.SCRAMIterations
	in, ferr := decodeSASL(el.Text())
	for {
		if ferr != nil {
			return fail(ferr)
		}
		out, done, err := server.Step(ctx, in)
		if err != nil {
			var f *auth.Failure
			if !errors.As(err, &f) {
				return nil, err
			}
			return fail(f)
		}
		if done {
			user := server.Username()
			bare := user + "@" + c.host
			// RFC 6120 §6.3.8: the only identity a client may act
			// as is its own bare JID.
			if az := server.Authzid(); az != "" {
				if j, err := jid.Parse(az); err != nil || j.String() != bare {
					return fail(&auth.Failure{Condition: auth.InvalidAuthzid})
				}
			}
			if c.disabled {
				// An administrator disabled the account (XEP-0133
				// §4.3). Said only once the credentials are right,
				// so that nobody else learns it (RFC 6120 §6.5.2).
				return fail(&auth.Failure{Condition: auth.AccountDisabled, Text: "this account is disabled"})
			}
			c.srv.known.Add(bare, c.addrKey)
			c.leaveUnauthenticated()
			c.username = user
			c.mechanism = mech
			c.cb = auth.ChannelBinding{} // spent: no SASL after success (RFC 6120 §6.4.6)
			c.srv.stats.logins.add(mech)
			return nil, c.write(saslElement("success", out))
		}
		if err := c.write(saslElement("challenge", out)); err != nil {
			return nil, err
		}
		resp, err := c.r.Next()
		if err != nil {
			return nil, err
		}
		switch {
		case resp.Name.Space == nsSASL && resp.Name.Local == "response":
			in, ferr = decodeSASL(resp.Text())
		case resp.Name.Space == nsSASL && resp.Name.Local == "abort":
			return fail(&auth.Failure{Condition: auth.Aborted})
		default:
			return nil, &stream.Error{Condition: stream.NotAuthorized, Text: "SASL negotiation interrupted"}
		}
	}
}

// The answers to a throttled attempt: the same for a throttled address
// and a throttled account, so that neither tells the client which.
var (
	addressThrottled = &auth.Failure{Condition: auth.TemporaryAuthFailure, Text: "too many failed attempts, try again later"}
	accountThrottled = &auth.Failure{Condition: auth.TemporaryAuthFailure, Text: "too many failed attempts, try again later"}
)

// logFailure logs a failed login, at most once per client address per
// minute (rateLog), never with a password or SASL data (README, "Failed
// logins"); limit names the throttle that refused it, if one did.
func (c *conn) logFailure(mech, account string, f *auth.Failure, limit string) {
	attrs := []any{"addr", hostOf(c.raw.RemoteAddr()), "account", account, "mechanism", mech, "reason", f.Condition}
	if limit != "" {
		attrs = append(attrs, "limit", limit)
	}
	c.srv.failures.log(c.srv.Log, c.addrKey, "authentication failed", attrs...)
}

// lookup finds the credentials of username on this session's host, once
// the account's throttle lets this address try it: an address that
// logged in to the account before is judged by its own record only; any
// other takes a place in the account's throttle (released by
// authenticate) or is refused with temporary-auth-failure, before the
// password plays any part (auth.Lookup).
func (c *conn) lookup(ctx context.Context, username string) (map[storage.Hash]storage.SCRAMKeys, error) {
	bare := username + "@" + c.host
	c.disabled = false
	if !c.srv.known.Known(bare, c.addrKey) {
		if !c.srv.accountThrottle.Begin(bare) {
			return nil, accountThrottled
		}
		c.authAccount = bare
	}
	a, err := c.srv.Accounts.Account(ctx, c.host, username)
	if err != nil {
		return nil, err
	}
	c.disabled = a.Disabled
	return a.Keys, nil
}

// saslElement builds <success/> or <challenge/> with base64 data
// (RFC 6120 §6.4.3: "=" stands for empty data in a challenge).
func saslElement(name string, data []byte) []byte {
	b := []byte("<" + name + " xmlns='" + nsSASL + "'>")
	if len(data) > 0 {
		b = base64.StdEncoding.AppendEncode(b, data)
	} else if name == "challenge" {
		b = append(b, '=')
	}
	return append(b, "</"+name+">"...)
}

// decodeSASL decodes the base64 content of <auth/> or <response/>; "="
// means an empty response (RFC 6120 §6.4.2).
func decodeSASL(text string) ([]byte, *auth.Failure) {
	if text == "" || text == "=" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, &auth.Failure{Condition: auth.IncorrectEncoding}
	}
	return b, nil
}

// negotiationIQ handles an IQ before binding: in-band registration before
// authentication (XEP-0077 §3.1), resource binding and the legacy session
// after it. done reports a bound session.
func (c *conn) negotiationIQ(ctx context.Context, el *stream.Element) (done bool, err error) {
	st, perr := stanza.Parse(el.Raw, el.StartLen)
	if perr != nil && st == nil {
		return false, &stream.Error{Condition: stream.NotWellFormed}
	}
	name, _, _ := st.Payload()
	if c.username == "" {
		if c.tls && st.IsRequest() && c.srv.PreAuth != nil {
			if reply := c.srv.PreAuth.PreAuth(ctx, c.host, st); reply != nil {
				return false, c.write(reply)
			}
		}
		return false, &stream.Error{Condition: stream.NotAuthorized}
	}
	if name.Space == nsBind && name.Local == "bind" && st.Type == "set" {
		return c.bind(ctx, st)
	}
	return false, &stream.Error{Condition: stream.NotAuthorized, Text: "bind a resource first"}
}

// bind binds a resource (RFC 6120 §7.6): the client's, after PRECIS
// preparation, or a generated one. The JID comes from the SASL identity.
func (c *conn) bind(ctx context.Context, st *stanza.Stanza) (bool, error) {
	var req struct {
		Resource string `xml:"resource"`
	}
	_, payload, _ := st.Payload()
	if err := stanza.Decode(payload, &req); err != nil {
		return false, c.write(stanza.ErrorReply(st, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
	}
	res := req.Resource
	if res == "" {
		res = newResource()
	}
	full, err := jid.New(c.username, c.host, res)
	if err != nil {
		// §7.7.2.1: a resource that cannot be prepared.
		return false, c.write(stanza.ErrorReply(st, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "invalid resource"}))
	}
	sess := newSession(c.srv, full)
	// Set before Bind publishes the session: Info reads them.
	sess.cur, sess.last = c, c
	max := c.srv.config().Limits.MaxSessionsPerAccount
	err = c.srv.Router.Bind(sess, max)
	if err != nil && c.srv.endOldestDetached(full.Bare()) {
		// A phone that could not resume (it lost the id) must not be
		// locked out by the sessions waiting for it: as Prosody's
		// smacks_max_hibernated_sessions, the oldest waiting one goes.
		err = c.srv.Router.Bind(sess, max)
	}
	if err != nil {
		// §7.6.2.1: too many resources.
		var se *stanza.Error
		errors.As(err, &se)
		return false, c.write(stanza.ErrorReply(st, jid.JID{}, se))
	}
	c.sess = sess
	sess.DeliverNow(stanza.Result(st, jid.JID{}, []byte("<bind xmlns='"+nsBind+"'><jid>"+stanza.Escape(full.String())+"</jid></bind>")))
	if !c.attach(nil) {
		return false, io.ErrClosedPipe
	}
	event.Fire(ctx, c.srv.Bus, &SessionBound{Session: sess})
	return true, nil
}

// attach hands nc to the writer, which writes first (a resumption's
// <resumed/> and the stanzas sent again) and then what the session
// queues; false when the connection has closed already.
func (c *conn) attach(first [][]byte) bool {
	c.writeMu.Lock()
	select {
	case <-c.quit:
		c.writeMu.Unlock()
		return false
	default:
	}
	c.attached.Store(true)
	c.wnc, c.wfirst = c.nc, first
	c.wstate.Store(writerRunning)
	c.writeMu.Unlock()
	c.sess.writer.Store(c)
	// A previous connection's writer may have been woken for what waits
	// in the queue: this one looks at once.
	go c.writeLoop()
	c.startIdleTimer()
	return true
}

// The writer's states (conn.wstate). It runs only while there is
// something to write: an idle session holds no goroutine, and no stack,
// for it.
const (
	writerOff     uint32 = iota // not attached yet: the reader writes
	writerIdle                  // attached, nothing to write, no goroutine
	writerRunning               // a writeLoop goroutine is running
	writerAgain                 // running, and woken again meanwhile
	writerDone                  // finished: the end of the stream is written
)

// kick wakes the writer: it starts a writeLoop when none is running, or
// has the running one look at the queue again before it stops.
func (c *conn) kick() {
	for {
		switch c.wstate.Load() {
		case writerIdle:
			if c.wstate.CompareAndSwap(writerIdle, writerRunning) {
				go c.writeLoop()
				return
			}
		case writerRunning:
			if c.wstate.CompareAndSwap(writerRunning, writerAgain) {
				return
			}
		default:
			return
		}
	}
}

// writeLoop is the connection's single writer while it runs: it takes
// everything its session queued, writes it through a buffer borrowed for
// the batch (so that an idle session holds none) and flushes, until the
// queue is empty; then it stops, and the next push starts it again
// (kick). When the connection closes it sends what is left, unless
// stream management keeps it for the session's next connection or for
// offline storage, and the end of the stream.
func (c *conn) writeLoop() {
	nc, sess := c.wnc, c.sess
	wb := writeBatches.Get().(*writeBatch)
	defer writeBatches.Put(wb)
	finish := func() {
		c.wstate.Store(writerDone)
		close(c.written)
	}
	fail := func() { // a write failed: the connection is over
		c.close(nil)
		nc.Close()
		finish()
	}
	flush := func(units [][]byte) bool {
		// Before the first byte: a large batch reaches nc before Flush.
		nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		var err error
		if c.framed {
			err = c.writeUnits(nc, units...)
		} else {
			w := writers.Get().(*bufio.Writer)
			w.Reset(nc)
			for _, b := range units {
				w.Write(b)
			}
			err = w.Flush()
			w.Reset(nil)
			writers.Put(w)
		}
		return err == nil
	}
	write := func() bool {
		wb.items = sess.out.take(wb.items)
		c.srv.stats.countOut(wb.items)
		var over bool
		wb.units, over = sess.sent(wb.items, wb.units[:0])
		ok := len(wb.units) == 0 || flush(wb.units)
		clear(wb.items)
		clear(wb.units)
		if over {
			sess.end(&stream.Error{Condition: stream.PolicyViolation, Text: "too many unacknowledged stanzas"})
		}
		return ok
	}
	if first := c.wfirst; first != nil {
		c.wfirst = nil
		if !flush(first) {
			fail()
			return
		}
	}
	for {
		select {
		case <-c.quit:
			if !sess.smOn.Load() {
				write()
			}
			c.writeEnd(nc)
			finish()
			return
		default:
		}
		if !write() {
			fail()
			return
		}
		if c.wstate.CompareAndSwap(writerRunning, writerIdle) {
			return
		}
		c.wstate.Store(writerRunning) // woken meanwhile: look again
	}
}

// writeBatch is a writer's scratch for one run, borrowed from
// writeBatches so that a stopped writer holds none.
type writeBatch struct {
	items []item
	units [][]byte
}

var writeBatches = sync.Pool{New: func() any { return new(writeBatch) }}

// writers are the write buffers sessions borrow for one batch.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8192) }}

// serve is the stanza loop of a bound session.
func (c *conn) serve(ctx context.Context) error {
	sess := c.sess
	deep := false // an IQ or presence was handled since this goroutine started
	for {
		if deep && c.r.Buffered() == 0 {
			return errFresh
		}
		el, err := c.r.Next()
		if err != nil {
			return err
		}
		if el.Name.Space == nsSM {
			if err := c.streamManagement(el); err != nil {
				return err
			}
			continue
		}
		if el.Name.Space != nsClient {
			c.clientNonza = ClientNonza{Session: sess, Element: el}
			handled := event.Fire(ctx, c.srv.Bus, &c.clientNonza)
			c.clientNonza = ClientNonza{}
			if handled {
				continue
			}
		}
		kind := stanza.KindOf(el.Name.Local)
		if el.Name.Space != nsClient || kind == 0 {
			// RFC 6120 §4.9.3.24: not a stanza of jabber:client.
			return &stream.Error{Condition: stream.UnsupportedStanzaType}
		}
		c.srv.stats.in[kind].Add(1)
		deep = deep || kind != stanza.Message
		st, perr := stanza.Parse(el.Raw, el.StartLen)
		if perr != nil {
			var se *stanza.Error
			if errors.As(perr, &se) && !st.IsError() {
				sess.Deliver(stanza.ErrorReply(st.WithAddresses(sess.full, jid.JID{}), jid.JID{}, se))
			}
		} else {
			c.handle(ctx, st)
		}
		sess.handled() // XEP-0198 §4: every stanza counts, answered or not
	}
}

// handle stamps the sender's full JID on a stanza (RFC 6120 §8.1.2.1: a
// 'from' set by the client is overridden) and routes it.
func (c *conn) handle(ctx context.Context, st *stanza.Stanza) {
	sess := c.sess
	to := st.To
	if to.Domainpart() == "" && st.Kind == stanza.Message {
		to = sess.full.Bare() // RFC 6120 §10.3.1
	}
	if st.Kind == stanza.IQ {
		// RFC 6120 §8.2.3: an IQ has an id and one of four types.
		text := ""
		switch {
		case st.Type != "get" && st.Type != "set" && st.Type != "result" && st.Type != "error":
			text = "missing or unknown IQ type"
		case st.ID == "":
			text = "missing id"
		}
		if text != "" {
			if !st.IsError() {
				sess.Deliver(stanza.ErrorReply(st.WithAddresses(sess.full, st.To), st.To, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: text}))
			}
			return
		}
	}
	st = st.WithAddresses(sess.full, to)
	// The reader goroutine owns c.clientStanza: reused, not allocated.
	c.clientStanza = ClientStanza{Session: sess, Stanza: st}
	stopped := event.Fire(ctx, c.srv.Bus, &c.clientStanza)
	c.clientStanza = ClientStanza{}
	if stopped {
		return
	}
	if st.Kind == stanza.Presence && to.Domainpart() == "" {
		return // broadcast presence, without a presence module (tests of the core)
	}
	c.srv.Router.Route(ctx, st)
}

// startIdleTimer pings a client that has been silent for the idle timeout
// and closes the connection when the ping goes unanswered (XEP-0199
// §4.1): a resumable session is detached then, as when the connection
// breaks. It is a timer, not a goroutine: an idle session holds none.
func (c *conn) startIdleTimer() {
	var pingSent int64 // unix nanoseconds, 0 when no ping is pending; the timer's
	var t *time.Timer
	t = time.AfterFunc(c.srv.config().Limits.IdleTimeout.Duration, func() {
		select {
		case <-c.quit:
			return
		default:
		}
		cfg := c.srv.config()
		idle, wait := cfg.Limits.IdleTimeout.Duration, cfg.Limits.PingTimeout.Duration
		last := c.lastRead.Load()
		now := time.Now().UnixNano()
		var next time.Duration // the timer's last act: it runs again then
		switch {
		case pingSent != 0 && last > pingSent:
			pingSent = 0
			next = idle - time.Duration(now-last)
		case pingSent != 0:
			c.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "no answer to ping"})
			return
		case time.Duration(now-last) >= idle:
			pingSent = now
			c.sess.DeliverNow([]byte("<iq type='get' id='" + newID() + "' from='" + stanza.Escape(c.host) + "' to='" + stanza.Escape(c.sess.full.String()) + "'><ping xmlns='urn:xmpp:ping'/></iq>"))
			next = wait
		default:
			next = idle - time.Duration(now-last)
		}
		t.Reset(next)
	})
	c.idleTimer.Store(t)
	select {
	case <-c.quit: // closed before the timer was stored
		t.Stop()
	default:
	}
}

func hostOf(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newResource generates a resourcepart for a client that asked for none
// (RFC 6120 §7.6.2.1).
func newResource() string {
	var b [6]byte
	rand.Read(b[:])
	return "starling-" + hex.EncodeToString(b[:])
}
