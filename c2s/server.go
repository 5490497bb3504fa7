// Package c2s runs client sessions (RFC 6120): stream negotiation
// (STARTTLS §5, SASL §6, resource binding §7, the legacy session feature of
// RFC 3921 §3), then the read loop that stamps 'from' and hands each stanza
// to the router, and the single writer that drains the session's bounded
// outbound queue; stream management (XEP-0198: acknowledgements, and
// resumption of a session on a new connection, sm.go) makes the session
// outlive its connection (session.go). It is transport-agnostic: Serve takes the TCP listeners
// (byte streams, RFC 6120 §4), ServeFramed a connection that carries each
// top-level element on its own, such as XMPP over WebSocket (RFC 7395).
package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/admission"
	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/stream"
	"github.com/starling-xmpp/starling/tlsconf"
)

// PreAuth answers an IQ request of a stream that has not authenticated,
// for host, over TLS: in-band registration (XEP-0077 §3.1). It returns
// the whole reply, or nil when nothing handles it (the stream then ends
// with <not-authorized/>); dispatch.Mux implements it.
type PreAuth interface {
	PreAuth(ctx context.Context, host string, iq *stanza.Stanza) []byte
}

// Server holds what every client session shares.
type Server struct {
	Log      *slog.Logger
	TLS      *tlsconf.Store
	Accounts storage.Accounts
	Router   router.Router
	// PreAuth answers IQs before authentication: in-band registration
	// (XEP-0077 §3.1); nil refuses them.
	PreAuth PreAuth
	// Bus carries the events sessions fire (events.go); nil fires none.
	Bus *event.Bus
	// BoundFeatures returns the stream features offered with bind
	// besides it (RFC 6120 §4.3.2): roster versioning (RFC 6121 §2.6.1),
	// the modules' (module.Set.StreamFeatures), entity capabilities
	// (XEP-0115 §6.3); nil offers none.
	BoundFeatures func() []byte

	cfg atomic.Pointer[config.Config]

	// Failed logins, throttled per client address and per account
	// (RFC 6120 §13.9.4 suggests limiting attempts); the account's
	// throttle applies only to addresses not known to have logged in to
	// it, so that strangers cannot lock its owner out.
	addrThrottle    *auth.Throttle
	accountThrottle *auth.Throttle
	known           *auth.KnownAddrs
	failures        rateLog // failed logins
	refusals        rateLog // streams refused by the per-address cap
	// Streams not authenticated yet, per client address.
	unauthenticated admission.Counter
	closed          closeCounts
	stats           stats // Stats

	mu      sync.Mutex // guards conns and closing
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup

	// Stream management (XEP-0198 §5): the resumable sessions by id, and
	// what is left of those that ended.
	smMu       sync.Mutex
	smSessions map[string]*session
	smGone     map[string]goneSession
}

// NewServer returns a Server using cfg.
func NewServer(cfg *config.Config, log *slog.Logger, tlsStore *tlsconf.Store, accounts storage.Accounts, r router.Router, preAuth PreAuth) *Server {
	s := &Server{
		Log: log, TLS: tlsStore, Accounts: accounts, Router: r, PreAuth: preAuth,
		addrThrottle:    auth.NewThrottle(0, 0, time.Now),
		accountThrottle: auth.NewThrottle(0, 0, time.Now),
		known:           auth.NewKnownAddrs(knownRetention, time.Now),
		failures:        rateLog{now: time.Now},
		refusals:        rateLog{now: time.Now},
		stats:           newStats(),
		conns:           make(map[*conn]struct{}),
		smSessions:      make(map[string]*session),
		smGone:          make(map[string]goneSession),
	}
	s.SetConfig(cfg)
	return s
}

// The pauses after a failed accept.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// knownRetention is how long an address that logged in to an account
// stays exempt from that account's throttle.
const knownRetention = 30 * 24 * time.Hour

// SetConfig applies a reloaded configuration to new and current sessions
// (limits are read when they are used).
func (s *Server) SetConfig(cfg *config.Config) {
	s.cfg.Store(cfg)
	l := cfg.Limits
	s.addrThrottle.SetLimits(l.AuthFailuresPerAddress, l.AuthFailureWindow.Duration)
	s.accountThrottle.SetLimits(l.AuthFailuresPerAccount, l.AuthFailureWindow.Duration)
}

func (s *Server) config() *config.Config { return s.cfg.Load() }

// Serve accepts connections on ln until ctx is done or ln is closed.
// directTLS makes it a XEP-0368 listener: TLS from the first byte, with
// ALPN "xmpp-client". A failed accept (out of file descriptors, a
// connection aborted before it was accepted) is logged and retried after a
// pause that doubles up to maxAcceptDelay, as net/http does: it never stops
// the listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener, directTLS bool) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			s.Log.Warn("accept failed, retrying", "addr", ln.Addr().String(), "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		sess := newConn(s, conn)
		if !s.register(sess) {
			conn.Close()
			continue
		}
		// Admitted here, in accept order: each stream counts before the
		// next one is looked at.
		if serve := s.admitted(sess); serve != nil {
			go serve(ctx, directTLS)
		}
	}
}

// admitted admits sess and returns how to serve it: run it, or refuse it
// with <policy-violation/>; nil when it was dropped (closed and
// forgotten already).
func (s *Server) admitted(sess *conn) func(ctx context.Context, directTLS bool) {
	switch s.admit(sess) {
	case admission.Admitted:
		return sess.run
	case admission.Refused:
		return sess.refuse
	}
	s.forget(sess)
	sess.raw.Close()
	return nil
}

// admit counts a new stream against its address's cap on streams not
// authenticated yet ([limits] max_unauthenticated_per_address).
func (s *Server) admit(sess *conn) admission.Verdict {
	a := s.unauthenticated.Enter(sess.addrKey, s.config().Limits.MaxUnauthenticatedPerAddress)
	if a != admission.Dropped {
		sess.counted.Store(true)
	}
	if a != admission.Admitted {
		s.refusals.log(s.Log, sess.addrKey, "too many unauthenticated streams from one address",
			"addr", hostOf(sess.raw.RemoteAddr()), "max", s.config().Limits.MaxUnauthenticatedPerAddress)
	}
	return a
}

// Framed is a client connection that carries each top-level element in a
// message of its own, the stream header and closing tag included: XMPP over
// WebSocket, one element per WebSocket message (RFC 7395 §3.3.3). The
// session reads the client's stream through ReadHeader and Next, which
// behave as stream.Reader's (the client's stream header; then its
// elements, stream.ErrClosed at its closing tag, stream errors for what
// breaks the framing). It writes its own stream as on TCP, but with one
// Write per top-level element, stream header (AppendHeader's bytes) or
// closing tag (stream.Close), which the connection translates to its
// framing: an element is written namespaced as in a stream whose header
// declared the content namespace jabber:client and the prefix "stream".
// A connection may hold what is written until its Flush, when it has one
// (Flush() error, optional): the session calls it after every batch of
// Writes — all it had queued, or one negotiation step — so that a
// transport can send a batch at once (WebSocket: one message per element,
// all of them in one TLS record). Read is used only once the stream has
// ended, to let the client finish closing its side; it returns io.EOF once
// the client has closed its stream.
type Framed interface {
	net.Conn
	ReadHeader() (stream.Header, error)
	Next() (*stream.Element, error)
}

// ServeFramed runs one client session on conn and returns when it has
// ended. secure reports that conn is encrypted below XMPP, by TLS the
// session does not see (WebSocket over TLS, or a TLS-terminating proxy
// that vouches for it): that allows SASL PLAIN and satisfies require_tls.
// A framed transport cannot carry a TLS handshake, so STARTTLS is never
// offered (RFC 7395 §3.9), and no channel binding either.
//
// A stream beyond its address's cap on streams not authenticated yet is
// refused with <policy-violation/> (RFC 6120 §4.9.3.15).
func (s *Server) ServeFramed(ctx context.Context, conn Framed, secure bool) {
	sess := newFramedConn(s, conn, secure)
	if !s.register(sess) {
		conn.Close()
		return
	}
	if serve := s.admitted(sess); serve != nil {
		serve(ctx, false)
	}
}

// Errors of StartFramed.
var (
	ErrShuttingDown           = errors.New("c2s: the server is shutting down")
	ErrTooManyUnauthenticated = errors.New("c2s: too many streams not authenticated yet from this address")
)

// StartFramed is ServeFramed in two steps, for a transport that must
// answer at once whether it has a session (BOSH's creation request,
// XEP-0124 §7.1): it admits a session on conn, or refuses it with
// ErrTooManyUnauthenticated or ErrShuttingDown without writing anything
// to conn; serve then runs the session until it ends.
func (s *Server) StartFramed(conn Framed, secure bool) (serve func(context.Context), err error) {
	sess := newFramedConn(s, conn, secure)
	if !s.register(sess) {
		return nil, ErrShuttingDown
	}
	if s.admit(sess) != admission.Admitted {
		s.forget(sess)
		return nil, ErrTooManyUnauthenticated
	}
	return func(ctx context.Context) { sess.run(ctx, false) }, nil
}

// register adds sess to the connections Shutdown ends, unless the server
// is shutting down already.
func (s *Server) register(sess *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) forget(sess *conn) {
	sess.leaveUnauthenticated()
	s.mu.Lock()
	delete(s.conns, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown ends every session with <system-shutdown/> (RFC 6120 §4.9.3.20),
// and those waiting for a resumption (XEP-0198 §5), and waits for them to
// finish, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	shutdown := &stream.Error{Condition: stream.SystemShutdown}
	for _, c := range all {
		if c.attached.Load() {
			c.sess.end(shutdown)
		} else {
			c.close(shutdown)
		}
	}
	s.smMu.Lock()
	waiting := make([]*session, 0, len(s.smSessions))
	for _, sess := range s.smSessions {
		waiting = append(waiting, sess)
	}
	s.smMu.Unlock()
	for _, sess := range waiting {
		sess.end(shutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// directTLSConfig is the XEP-0368 TLS configuration.
func (s *Server) directTLSConfig() *tls.Config { return s.TLS.ServerConfig("xmpp-client") }

// HandleEvents sets the bus sessions fire their events on, and handles
// the events of others that end sessions: an account removed
// (auth.AccountDeleted), sessions an administrator ends (EndSessions).
func (s *Server) HandleEvents(bus *event.Bus) {
	s.Bus = bus
	event.On(bus, event.Last, "c2s", func(_ context.Context, e *auth.AccountDeleted) bool {
		s.EndSessions(e.JID, &stream.Error{Condition: stream.NotAuthorized, Text: "account removed"})
		return false
	})
	event.On(bus, event.Last, "c2s", func(_ context.Context, e *EndSessions) bool {
		err := &stream.Error{Condition: stream.PolicyViolation, Text: e.Text}
		if e.JID.Resourcepart() == "" {
			e.Ended += s.EndSessions(e.JID, err)
		} else if cs, ok := s.Router.Session(e.JID).(*session); ok {
			cs.end(err)
			e.Ended++
		}
		return false
	})
}

// EndSessions closes every bound session of the account bare with err
// (used when the account is deleted) and returns how many it closed.
func (s *Server) EndSessions(bare jid.JID, err *stream.Error) int {
	n := 0
	for _, sess := range s.Router.Sessions(bare) {
		if cs, ok := sess.(*session); ok {
			cs.end(err)
			n++
		}
	}
	return n
}
