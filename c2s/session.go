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
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/admission"
	"github.com/starling-xmpp/starling/auth"
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
// read for this long ends its own stream, nobody else's.
const writeTimeout = 30 * time.Second

// closeGrace is how long the server waits for the client's
// </stream:stream> after sending its own (RFC 6120 §4.4).
const closeGrace = 2 * time.Second

// session is one client connection. The reader goroutine (run) owns the
// negotiation state; after bind, the writer goroutine (writeLoop) is the
// only one that writes to conn.
type session struct {
	srv    *Server
	raw    net.Conn // the TCP connection, or the Framed one
	framed bool     // raw is Framed: one Write per top-level element

	writeMu sync.Mutex // guards conn, opened and writes before the writer starts
	conn    net.Conn   // raw, or the TLS connection over it
	opened  bool       // our stream header for the current stream is sent

	// addrKey is the client's address as the per-address limits count
	// it (clientKey); counted reports that the session holds a place
	// among its address's streams not authenticated yet.
	addrKey string
	counted atomic.Bool
	// authAccount is the account whose throttle the SASL exchange under
	// way holds a place in, if any; the reader goroutine owns it.
	authAccount string

	r         elementReader
	host      string
	tls       bool // encrypted: TLS on conn, or below a secure Framed
	cb        auth.ChannelBinding
	username  string  // set by SASL success
	mechanism string  // the SASL mechanism that succeeded
	full      jid.JID // set once at bind, read-only afterwards
	bound     atomic.Bool

	// available and priority are the session's broadcast presence state
	// (RFC 6121 §4.7.2.3), set by the presence module, read by the router.
	available atomic.Bool
	priority  atomic.Int32

	lastRead atomic.Int64 // unix nanoseconds of the last byte received

	clientStanza ClientStanza // the event of the stanza being handled (reader goroutine)
	clientNonza  ClientNonza  // the same for nonzas

	// holder, if set, keeps stanzas back (SetHolder).
	holder atomic.Pointer[holderBox]

	out      *queue        // outbound queue, drained by writeLoop
	quit     chan struct{} // closed by close()
	quitOnce sync.Once
	quitErr  *stream.Error // set before quit is closed
	written  chan struct{} // closed when the writer has finished
}

func newSession(srv *Server, conn net.Conn) *session {
	s := &session{
		srv:     srv,
		raw:     conn,
		quit:    make(chan struct{}),
		written: make(chan struct{}),
	}
	s.conn = &activityConn{Conn: conn, last: &s.lastRead}
	s.addrKey = admission.Key(conn.RemoteAddr(), srv.config().Limits.IPv6Prefix)
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// newFramedSession is newSession for a framed connection (ServeFramed).
func newFramedSession(srv *Server, conn Framed, secure bool) *session {
	s := &session{
		srv:     srv,
		raw:     conn,
		framed:  true,
		conn:    conn,
		tls:     secure,
		quit:    make(chan struct{}),
		written: make(chan struct{}),
	}
	s.r = framedActivity{Framed: conn, last: &s.lastRead}
	s.addrKey = admission.Key(conn.RemoteAddr(), srv.config().Limits.IPv6Prefix)
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// leaveUnauthenticated gives back the session's place among its
// address's streams not authenticated yet, once: at SASL success or when
// the session ends.
func (s *session) leaveUnauthenticated() {
	if s.counted.CompareAndSwap(true, false) {
		s.srv.unauthenticated.Leave(s.addrKey)
	}
}

// refuse ends a stream that is over its address's cap on streams not
// authenticated yet with <policy-violation/> (RFC 6120 §4.9.3.15), after
// the TLS handshake on a direct TLS listener, each step bounded by
// closeGrace, so that a refusal costs little and holds nothing long.
func (s *session) refuse(ctx context.Context, directTLS bool) {
	defer s.srv.forget(s)
	defer s.conn.Close()
	if directTLS {
		hctx, cancel := context.WithTimeout(ctx, closeGrace)
		tc := tls.Server(s.conn, s.srv.directTLSConfig())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return
		}
		s.writeMu.Lock() // close may be writing the end (Shutdown)
		s.conn = tc
		s.writeMu.Unlock()
	}
	s.close(&stream.Error{Condition: stream.PolicyViolation, Text: "too many unauthenticated connections from your address"})
	s.conn.SetReadDeadline(time.Now().Add(closeGrace))
	io.Copy(io.Discard, io.LimitReader(s.conn, 4<<10))
}

// elementReader reads the client's stream: a *stream.Reader over the
// connection's bytes, or a Framed connection.
type elementReader interface {
	ReadHeader() (stream.Header, error)
	Next() (*stream.Element, error)
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

func (f framedActivity) Next() (*stream.Element, error) {
	el, err := f.Framed.Next()
	f.last.Store(time.Now().UnixNano())
	return el, err
}

// JID implements router.Session.
func (s *session) JID() jid.JID { return s.full }

// Available implements router.Session.
func (s *session) Available() (bool, int) {
	return s.available.Load(), int(s.priority.Load())
}

// SetAvailable implements router.Session.
func (s *session) SetAvailable(ok bool, priority int) {
	s.priority.Store(int32(priority))
	s.available.Store(ok)
}

// Deliver implements router.Session: it queues raw, one top-level element,
// without blocking. A full queue means the client does not read fast
// enough: its stream ends.
func (s *session) Deliver(raw []byte) bool {
	if h := s.holder.Load(); h != nil && h.Hold(raw) {
		return true
	}
	return s.DeliverNow(raw)
}

// holderBox lets holder be an atomic.Pointer to an interface value.
type holderBox struct{ Holder }

// SetHolder implements Client.
func (s *session) SetHolder(h Holder) {
	if h == nil {
		s.holder.Store(nil)
		return
	}
	s.holder.Store(&holderBox{h})
}

// Detached implements Client.
func (s *session) Detached() bool { return false }

// DeliverNow implements Client: Deliver without the holder.
func (s *session) DeliverNow(raw []byte) bool {
	select {
	case <-s.quit:
		return false
	default:
	}
	reason, ok := s.out.push(raw)
	if ok {
		return true
	}
	s.srv.closed[reason].Add(1)
	s.srv.Log.Warn("outbound queue full, closing session", "jid", s.full.String(), "reason", reason.String())
	s.close(&stream.Error{Condition: stream.PolicyViolation, Text: "outbound queue full"})
	return false
}

// Replace implements router.Session (RFC 6120 §7.7.2.2).
func (s *session) Replace() {
	s.close(&stream.Error{Condition: stream.Conflict, Text: "replaced by a new session"})
}

// close ends the session with err (nil: a plain </stream:stream>). Safe to
// call from any goroutine, any number of times.
func (s *session) close(err *stream.Error) {
	s.quitOnce.Do(func() {
		// Leave the router at once: a session whose writer is stuck on
		// a client that stopped reading must not keep swallowing what
		// is sent to it.
		if s.bound.Load() {
			s.srv.Router.Unbind(s)
		}
		s.quitErr = err
		// bind sets bound under writeMu: either the writer exists and
		// sees quit, or it never will and the end is written here.
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		close(s.quit)
		if !s.bound.Load() {
			s.writeEnd(s.conn)
		}
	})
}

// writeEnd sends the stream error, if any, and the closing tag, then waits
// briefly for the client's own closing tag.
func (s *session) writeEnd(w net.Conn) {
	var hdr, errb []byte
	if !s.opened {
		// RFC 6120 §4.9.1.2: open the stream before sending the error.
		hdr = stream.AppendHeader(nil, stream.Header{ID: newID(), Version: "1.0", Lang: "en", NS: nsClient, From: s.srv.config().Server.Hosts[0]})
	}
	if s.quitErr != nil {
		errb = s.quitErr.Bytes()
	}
	w.SetWriteDeadline(time.Now().Add(closeGrace))
	s.writeUnits(w, hdr, errb, []byte(stream.Close))
	w.SetReadDeadline(time.Now().Add(closeGrace))
}

// flusher is a Framed connection that may hold what is written until
// Flush (Framed).
type flusher interface{ Flush() error }

// writeUnits writes top-level units (elements, our stream header, the
// closing tag), skipping empty ones: together on a byte stream, with one
// Write each on a Framed connection, then its Flush if it has one.
func (s *session) writeUnits(w net.Conn, units ...[]byte) error {
	if !s.framed && len(units) > 1 {
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
	if f, ok := w.(flusher); ok && s.framed {
		return f.Flush()
	}
	return nil
}

// run is the reader goroutine: negotiation, then the stanza loop.
func (s *session) run(ctx context.Context, directTLS bool) {
	defer s.srv.forget(s)
	defer s.conn.Close()
	cfg := s.srv.config()
	log := s.srv.Log.With("conn", s.raw.RemoteAddr().String())

	// Connect and auth timeouts (RFC 6120 §4.6 leaves their values to policy).
	authTimer := time.AfterFunc(cfg.Limits.AuthTimeout.Duration, func() {
		if !s.bound.Load() {
			s.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "authentication took too long"})
		}
	})
	defer authTimer.Stop()

	if directTLS {
		if err := s.startTLS(ctx, s.srv.directTLSConfig()); err != nil {
			log.Debug("direct TLS handshake failed", "err", err)
			return
		}
	}
	if !s.framed {
		s.r = stream.NewReader(s.conn, stream.Limits{MaxElementBytes: cfg.Limits.MaxStanzaBytes, MaxDepth: stream.DefaultLimits().MaxDepth})
	}

	err := s.negotiate(ctx)
	if err == nil {
		log = log.With("jid", s.full.String())
		log.Info("session bound", "tls", s.tls, "direct_tls", directTLS, "framed", s.framed, "mechanism", s.mechanism)
		authTimer.Stop()
		err = s.serve(ctx)
	}
	s.finish(log, err)
}

// finish reports why the session ended and tears it down.
func (s *session) finish(log interface {
	Debug(string, ...any)
	Info(string, ...any)
}, err error) {
	// Leave the router first, so that once the client sees the end of the
	// stream, nothing is routed to this session any more.
	if !s.full.Equal(jid.JID{}) {
		s.srv.Router.Unbind(s)
		event.Fire(context.Background(), s.srv.Bus, &SessionEnded{Session: s})
	}
	var se *stream.Error
	switch {
	case errors.As(err, &se):
		log.Info("stream error", "condition", se.Condition, "text", se.Text)
		s.close(se)
	case errors.Is(err, stream.ErrClosed):
		log.Debug("client closed the stream")
		s.close(nil)
	default:
		select {
		case <-s.quit:
		default:
			log.Debug("connection ended", "err", err)
		}
		s.close(nil)
	}
	if s.bound.Load() {
		<-s.written
		log.Info("session ended")
	}
	// RFC 6120 §4.4: give the client a moment to close its side, reading
	// what is still in flight (its </stream:stream>, a TLS close_notify),
	// so that closing the socket with unread data does not reset the
	// connection under the client's feet.
	s.conn.SetReadDeadline(time.Now().Add(closeGrace))
	io.Copy(io.Discard, io.LimitReader(s.conn, 64<<10))
}

// negotiate runs the stream negotiation up to a bound resource.
func (s *session) negotiate(ctx context.Context) error {
	cfg := s.srv.config()
	headerTimer := time.AfterFunc(cfg.Limits.ConnectTimeout.Duration, func() {
		s.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "no stream header"})
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
		if err := s.openStream(); err != nil {
			return err
		}
		headerTimer.Stop()
		restart := false
		for !restart {
			el, err := s.r.Next()
			if err != nil {
				return err
			}
			switch {
			case el.Name.Space == nsTLS && el.Name.Local == "starttls" && !s.tls && !s.framed:
				if err := s.write([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
					return err
				}
				if err := s.startTLS(ctx, s.srv.TLS.ServerConfig()); err != nil {
					return err
				}
				s.restart()
				restart = true
			case el.Name.Space == nsSASL && el.Name.Local == "auth" && s.username == "":
				f, err := s.authenticate(ctx, el)
				if err != nil {
					return err
				}
				if f == nil {
					s.restart()
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
			case el.Name.Space == nsClient && el.Name.Local == "iq":
				done, err := s.negotiationIQ(ctx, el)
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
func (s *session) restart() {
	s.writeMu.Lock()
	s.opened = false
	s.writeMu.Unlock()
	if r, ok := s.r.(*stream.Reader); ok {
		r.Reset(s.conn)
	}
}

// openStream reads the client's stream header and answers with ours and
// the features for the current state (RFC 6120 §4.3).
func (s *session) openStream() error {
	h, err := s.r.ReadHeader()
	resp := stream.Header{ID: newID(), Version: "1.0", Lang: "en", NS: nsClient, From: s.host}
	if err == nil {
		if h.NS != nsClient {
			err = &stream.Error{Condition: stream.InvalidNamespace, Text: "the content namespace must be jabber:client"}
		} else if host, perr := jid.Parse(h.To); perr != nil || h.To == "" || !s.srv.Router.IsLocal(host.Domainpart()) || host.Localpart() != "" || host.Resourcepart() != "" {
			err = &stream.Error{Condition: stream.HostUnknown}
		} else if s.host != "" && host.Domainpart() != s.host {
			err = &stream.Error{Condition: stream.HostUnknown, Text: "the host changed between stream restarts"}
		} else {
			s.host = host.Domainpart()
			resp.From = s.host
		}
		if h.Lang != "" {
			resp.Lang = h.Lang
		}
	}
	if resp.From == "" {
		resp.From = s.srv.config().Server.Hosts[0]
	}
	var se *stream.Error
	if err != nil && !errors.As(err, &se) {
		return err // transport failure: nothing to answer
	}
	// RFC 6120 §4.9.1.2: even when the header is bad, open our stream
	// first so that the error can be sent.
	var features []byte
	if err == nil {
		features = s.features()
	}
	if werr := s.send(true, stream.AppendHeader(nil, resp), features); werr != nil {
		return werr
	}
	return err
}

// features builds <stream:features/> for the current negotiation state.
func (s *session) features() []byte {
	cfg := s.srv.config()
	var b bytes.Buffer
	b.WriteString("<stream:features>")
	switch {
	case s.username != "":
		b.WriteString("<bind xmlns='" + nsBind + "'/>")
		b.WriteString("<session xmlns='" + nsSession + "'><optional/></session>")
		if s.srv.BoundFeatures != nil {
			b.Write(s.srv.BoundFeatures())
		}
	default:
		if !s.tls && !s.framed {
			b.WriteString("<starttls xmlns='" + nsTLS + "'>")
			if cfg.C2S.RequireTLS {
				b.WriteString("<required/>")
			}
			b.WriteString("</starttls>")
		}
		if s.tls || !cfg.C2S.RequireTLS {
			b.WriteString("<mechanisms xmlns='" + nsSASL + "'>")
			for _, m := range auth.Mechanisms(s.cb, s.tls) {
				b.WriteString("<mechanism>" + m + "</mechanism>")
			}
			b.WriteString("</mechanisms>")
			if types := s.cb.Types(); len(types) > 0 {
				b.WriteString("<sasl-channel-binding xmlns='" + nsSASLCB + "'>")
				for _, t := range types {
					b.WriteString("<channel-binding type='" + t + "'/>")
				}
				b.WriteString("</sasl-channel-binding>")
			}
			if s.tls && cfg.RegistrationEnabled(s.host) {
				b.WriteString("<register xmlns='" + nsRegFeat + "'/>")
			}
		}
	}
	b.WriteString("</stream:features>")
	return b.Bytes()
}

// startTLS runs the server side of a TLS handshake on the connection
// (RFC 6120 §5.4.3.3; XEP-0368 for direct TLS).
func (s *session) startTLS(ctx context.Context, cfg *tls.Config) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tc := tls.Server(s.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.srv.config().Limits.ConnectTimeout.Duration)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return err
	}
	cs := tc.ConnectionState()
	s.conn = tc
	s.tls = true
	s.cb = auth.ChannelBindingFromTLS(cs, s.srv.TLS.Leaf(cs.ServerName))
	if s.host == "" && s.srv.Router.IsLocal(cs.ServerName) {
		s.host = cs.ServerName
	}
	return nil
}

// write sends one element during negotiation, when the reader is the only
// writer besides close().
func (s *session) write(b []byte) error { return s.send(false, b) }

// send writes units (see writeUnits) during negotiation; header reports
// that the first opens our stream.
func (s *session) send(header bool, units ...[]byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.opened = s.opened || header
	select {
	case <-s.quit:
		return io.ErrClosedPipe
	default:
	}
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return s.writeUnits(s.conn, units...)
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
func (s *session) authenticate(ctx context.Context, el *stream.Element) (*auth.Failure, error) {
	mech := el.AttrValue("mechanism")
	if !s.tls && s.srv.config().C2S.RequireTLS {
		f := &auth.Failure{Condition: auth.EncryptionRequired}
		return f, s.write(f.Bytes())
	}
	if !s.srv.addrThrottle.Begin(s.addrKey) {
		s.logFailure(mech, "", addressThrottled, "address")
		return addressThrottled, s.write(addressThrottled.Bytes())
	}
	var server *auth.Server
	rejected := false
	defer func() {
		s.srv.addrThrottle.End(s.addrKey, rejected)
		if s.authAccount != "" {
			s.srv.accountThrottle.End(s.authAccount, rejected)
			s.authAccount = ""
		}
	}()
	fail := func(f *auth.Failure) (*auth.Failure, error) {
		rejected = f.Condition == auth.NotAuthorized
		account := ""
		if server != nil && server.Username() != "" {
			account = server.Username() + "@" + s.host
		}
		switch {
		case rejected:
			s.logFailure(mech, account, f, "")
		case f == accountThrottled:
			s.logFailure(mech, account, f, "account")
		}
		return f, s.write(f.Bytes())
	}
	server, err := auth.NewServer(mech, s.cb, s.tls, s.lookup)
	if err != nil {
		var f *auth.Failure
		if errors.As(err, &f) {
			return fail(f)
		}
		return nil, err
	}
	// An unknown account looks and costs like one created now.
	server.Iterations = s.srv.config().Auth.SCRAMIterations
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
			bare := user + "@" + s.host
			// RFC 6120 §6.3.8: the only identity a client may act
			// as is its own bare JID.
			if az := server.Authzid(); az != "" {
				if j, err := jid.Parse(az); err != nil || j.String() != bare {
					return fail(&auth.Failure{Condition: auth.InvalidAuthzid})
				}
			}
			s.srv.known.Add(bare, s.addrKey)
			s.leaveUnauthenticated()
			s.username = user
			s.mechanism = mech
			return nil, s.write(saslElement("success", out))
		}
		if err := s.write(saslElement("challenge", out)); err != nil {
			return nil, err
		}
		resp, err := s.r.Next()
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
func (s *session) logFailure(mech, account string, f *auth.Failure, limit string) {
	attrs := []any{"addr", hostOf(s.raw.RemoteAddr()), "account", account, "mechanism", mech, "reason", f.Condition}
	if limit != "" {
		attrs = append(attrs, "limit", limit)
	}
	s.srv.failures.log(s.srv.Log, s.addrKey, "authentication failed", attrs...)
}

// lookup finds the credentials of username on this session's host, once
// the account's throttle lets this address try it: an address that
// logged in to the account before is judged by its own record only; any
// other takes a place in the account's throttle (released by
// authenticate) or is refused with temporary-auth-failure, before the
// password plays any part (auth.Lookup).
func (s *session) lookup(ctx context.Context, username string) (map[storage.Hash]storage.SCRAMKeys, error) {
	bare := username + "@" + s.host
	if !s.srv.known.Known(bare, s.addrKey) {
		if !s.srv.accountThrottle.Begin(bare) {
			return nil, accountThrottled
		}
		s.authAccount = bare
	}
	a, err := s.srv.Accounts.Account(ctx, s.host, username)
	if err != nil {
		return nil, err
	}
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
func (s *session) negotiationIQ(ctx context.Context, el *stream.Element) (done bool, err error) {
	st, perr := stanza.Parse(el.Raw, el.StartLen)
	if perr != nil && st == nil {
		return false, &stream.Error{Condition: stream.NotWellFormed}
	}
	name, _, _ := st.Payload()
	if s.username == "" {
		if s.tls && st.IsRequest() && s.srv.PreAuth != nil {
			if reply := s.srv.PreAuth.PreAuth(ctx, s.host, st); reply != nil {
				return false, s.write(reply)
			}
		}
		return false, &stream.Error{Condition: stream.NotAuthorized}
	}
	if name.Space == nsBind && name.Local == "bind" && st.Type == "set" {
		return s.bind(ctx, st)
	}
	return false, &stream.Error{Condition: stream.NotAuthorized, Text: "bind a resource first"}
}

// bind binds a resource (RFC 6120 §7.6): the client's, after PRECIS
// preparation, or a generated one. The JID comes from the SASL identity.
func (s *session) bind(ctx context.Context, st *stanza.Stanza) (bool, error) {
	var req struct {
		Resource string `xml:"resource"`
	}
	_, payload, _ := st.Payload()
	if err := stanza.Decode(payload, &req); err != nil {
		return false, s.write(stanza.ErrorReply(st, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
	}
	res := req.Resource
	if res == "" {
		res = newResource()
	}
	full, err := jid.New(s.username, s.host, res)
	if err != nil {
		// §7.7.2.1: a resource that cannot be prepared.
		return false, s.write(stanza.ErrorReply(st, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "invalid resource"}))
	}
	s.full = full
	cfg := s.srv.config()
	s.out = newQueue(cfg.Limits.OutboundQueue, cfg.Limits.OutboundQueueBytes)
	if err := s.srv.Router.Bind(s, cfg.Limits.MaxSessionsPerAccount); err != nil {
		// §7.6.2.1: too many resources.
		var se *stanza.Error
		errors.As(err, &se)
		s.full = jid.JID{}
		return false, s.write(stanza.ErrorReply(st, jid.JID{}, se))
	}
	// From here on the writer goroutine owns the connection.
	s.writeMu.Lock()
	select {
	case <-s.quit:
		s.writeMu.Unlock()
		return false, io.ErrClosedPipe
	default:
	}
	s.bound.Store(true)
	conn := s.conn
	s.writeMu.Unlock()
	go s.writeLoop(conn)
	s.startIdleTimer()
	s.Deliver(stanza.Result(st, jid.JID{}, []byte("<bind xmlns='"+nsBind+"'><jid>"+stanza.Escape(full.String())+"</jid></bind>")))
	event.Fire(ctx, s.srv.Bus, &SessionBound{Session: s})
	return true, nil
}

// writeLoop is the session's single writer: it takes everything queued,
// writes it through a buffer borrowed for the batch (so that an idle
// session holds none) and flushes; when the session closes it sends what
// is left and the end of the stream.
func (s *session) writeLoop(conn net.Conn) {
	defer close(s.written)
	var batch [][]byte
	write := func() bool {
		batch = s.out.take(batch)
		// Before the first byte: a large batch reaches conn before Flush.
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		var err error
		if s.framed {
			err = s.writeUnits(conn, batch...)
		} else {
			w := writers.Get().(*bufio.Writer)
			w.Reset(conn)
			for _, b := range batch {
				w.Write(b)
			}
			err = w.Flush()
			w.Reset(nil)
			writers.Put(w)
		}
		clear(batch)
		return err == nil
	}
	for {
		select {
		case <-s.out.ready:
			if !write() {
				s.close(nil)
				conn.Close()
				return
			}
		case <-s.quit:
			write()
			s.writeEnd(conn)
			return
		}
	}
}

// writers are the write buffers sessions borrow for one batch.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8192) }}

// serve is the stanza loop of a bound session.
func (s *session) serve(ctx context.Context) error {
	for {
		el, err := s.r.Next()
		if err != nil {
			return err
		}
		if el.Name.Space != nsClient {
			s.clientNonza = ClientNonza{Session: s, Element: el}
			handled := event.Fire(ctx, s.srv.Bus, &s.clientNonza)
			s.clientNonza = ClientNonza{}
			if handled {
				continue
			}
		}
		if el.Name.Space != nsClient || stanza.KindOf(el.Name.Local) == 0 {
			// RFC 6120 §4.9.3.24: not a stanza of jabber:client.
			return &stream.Error{Condition: stream.UnsupportedStanzaType}
		}
		st, perr := stanza.Parse(el.Raw, el.StartLen)
		if perr != nil {
			var se *stanza.Error
			if errors.As(perr, &se) && !st.IsError() {
				s.Deliver(stanza.ErrorReply(st.WithAddresses(s.full, jid.JID{}), jid.JID{}, se))
			}
			continue
		}
		s.handle(ctx, st)
	}
}

// handle stamps the sender's full JID on a stanza (RFC 6120 §8.1.2.1: a
// 'from' set by the client is overridden) and routes it.
func (s *session) handle(ctx context.Context, st *stanza.Stanza) {
	to := st.To
	if to.Domainpart() == "" && st.Kind == stanza.Message {
		to = s.full.Bare() // RFC 6120 §10.3.1
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
				s.Deliver(stanza.ErrorReply(st.WithAddresses(s.full, st.To), st.To, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: text}))
			}
			return
		}
	}
	st = st.WithAddresses(s.full, to)
	// The reader goroutine owns s.clientStanza: reused, not allocated.
	s.clientStanza = ClientStanza{Session: s, Stanza: st}
	stopped := event.Fire(ctx, s.srv.Bus, &s.clientStanza)
	s.clientStanza = ClientStanza{}
	if stopped {
		return
	}
	if st.Kind == stanza.Presence && to.Domainpart() == "" {
		return // broadcast presence, without a presence module (tests of the core)
	}
	s.srv.Router.Route(ctx, st)
}

// startIdleTimer pings a client that has been silent for the idle timeout
// and closes the stream when the ping goes unanswered (XEP-0199 §4.1).
func (s *session) startIdleTimer() {
	go func() {
		t := time.NewTimer(s.srv.config().Limits.IdleTimeout.Duration)
		defer t.Stop()
		var pingSent int64 // unix nanoseconds, 0 when no ping is pending
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
			cfg := s.srv.config()
			idle, wait := cfg.Limits.IdleTimeout.Duration, cfg.Limits.PingTimeout.Duration
			last := s.lastRead.Load()
			now := time.Now().UnixNano()
			switch {
			case pingSent != 0 && last > pingSent:
				pingSent = 0
				t.Reset(idle - time.Duration(now-last))
			case pingSent != 0:
				s.close(&stream.Error{Condition: stream.ConnectionTimeout, Text: "no answer to ping"})
				return
			case time.Duration(now-last) >= idle:
				pingSent = now
				s.Deliver([]byte("<iq type='get' id='" + newID() + "' from='" + stanza.Escape(s.host) + "' to='" + stanza.Escape(s.full.String()) + "'><ping xmlns='urn:xmpp:ping'/></iq>"))
				t.Reset(wait)
			default:
				t.Reset(idle - time.Duration(now-last))
			}
		}
	}()
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
