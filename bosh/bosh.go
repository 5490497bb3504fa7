// Package bosh serves web clients that cannot use WebSocket: XMPP over
// BOSH (XEP-0124, with XEP-0206 for XMPP) at /http-bind, on the HTTP
// listener beside package websocket, which routes the requests here and
// lists the endpoint in host-meta (XEP-0156).
//
// Each BOSH session is a Conn that c2s runs like any client session
// (c2s.Server.StartFramed, which admits it first: a client address with
// too many streams not authenticated yet gets HTTP 429): negotiation, SASL, binding, routing and every
// module are c2s's. Conn only translates the transport: the payloads of
// the client's requests, taken in 'rid' order, are the client's stream;
// what c2s writes is sent in the responses of the requests the server
// holds (long polling). Section numbers are XEP-0124 1.11's.
//
// Implemented: session creation (§7) with 'wait', 'hold', 'requests',
// 'inactivity', 'polling', 'maxpause', 'ack', 'ver' (1.11, or the
// client's if lower), 'from', 'secure' and XEP-0206's xmpp:version,
// xmpp:restartlogic and 'authid' (the stream id); hold and wait (§8);
// stream restart (XEP-0206 §5); terminate from either side (§13) with
// §17's conditions; 'rid' ordering within a window of 'requests' rids and
// retransmission of recent responses (§14; a rid sent again before it was
// answered takes the place of the first request, which gets the
// recoverable binding condition, type='error', §14.3 and §17.3); bounded
// request bodies; CORS. The response to the session creation request,
// and to a restart, waits for the new stream's features: the creation
// response has them and 'authid' every time, in a polling session (§12)
// too (XEP-0206's Session Creation Response).
//
//   - Terminal conditions (§17.2) end the session, and the XMPP session
//     in it at once (c2s sends the unavailable presence, frees the
//     resource): every open request gets the condition. That holds for a
//     request refused before it reaches its session too (not well-formed:
//     bad-request; too large: policy-violation), which ends the session
//     its 'sid' names.
//   - Stream errors (XEP-0206 §2 and its remote-stream-error section,
//     XEP-0124 §17.2): the end of the stream with a <stream:error/> (a
//     conflict, <system-shutdown/>) ends the session with
//     condition='remote-stream-error', the error, after what was queued
//     before it, in the terminate body: that of the request held then,
//     or of the client's next request.
//   - Acknowledgements (§9), for a client that asks with ack='1': every
//     response has 'ack', the highest rid received, but when that is its
//     own rid (§9.1); the client's 'ack' drops the responses it got from
//     the retransmission buffer, which keeps the others (§14.3), and one
//     it missed is reported at once in the next response with 'report' and
//     'time' (§9.2), once.
//   - Inactivity and pause (§10): a session with no request open for
//     'inactivity' ends; a request with pause='N', N up to 'maxpause'
//     (120), answers the held requests, is answered at once without
//     payloads, and makes the inactivity period N seconds until the next
//     request. A longer pause ends the session with policy-violation.
//   - Overactivity (§11) and polling sessions (§12) end with
//     policy-violation: more requests open at once than 'requests' (one
//     more allowed to pause or terminate); in a session that holds
//     requests, all 'requests' open (that one more aside), the last of
//     them by rid empty, the last two less than 'polling' (2) seconds
//     apart; in a polling session ('hold' or 'wait' 0), an empty request
//     less than 'polling' seconds after an empty one whose response had
//     no payload.
//
// Not implemented: key sequencing (§15, for sessions without TLS) and
// multiple streams (§16), neither of which a client needs (Strophe.js,
// and so Converse.js, uses neither, nor acknowledgements or pauses).
package bosh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/stream"
)

// Path is the BOSH endpoint, where Prosody, ejabberd and Converse.js have
// it too.
const Path = "/http-bind"

// protocolVersion is the version of XEP-0124 implemented ('ver', §7.2).
const protocolVersion = "1.11"

// version is the 'ver' of the session creation response to a client that
// asked with ver (XEP-0124 §7.2): the highest version the server supports
// (protocolVersion) or the client's, whichever is lower, each number of
// "<major>.<minor>" compared as an integer (§7.1: 1.11 is above 1.6). A
// client that gave no 'ver', or one that is not of that form, gets ours.
func version(ver string) string {
	parse := func(v string) (major, minor int, ok bool) {
		a, b, ok := strings.Cut(v, ".")
		if !ok {
			return 0, 0, false
		}
		major, err1 := strconv.Atoi(a)
		minor, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || major < 0 || minor < 0 {
			return 0, 0, false
		}
		return major, minor, true
	}
	ourMajor, ourMinor, _ := parse(protocolVersion)
	major, minor, ok := parse(ver)
	if !ok || major > ourMajor || major == ourMajor && minor >= ourMinor {
		return protocolVersion
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// maxHold is the most requests the server holds at once ('hold', §7.2).
const maxHold = 1

// minPolling is the shortest polling interval ('polling', XEP-0124
// §7.2): empty requests that come more often end the session (§11, §12).
// ejabberd has the same.
const minPolling = 2 * time.Second

// maxPause is the longest pause a client may ask for ('maxpause',
// XEP-0124 §7.2, §10), as ejabberd and MongooseIM have it: enough for a
// web client to move to another page.
const maxPause = 120 * time.Second

// maxUnacked is the most responses kept for retransmission in a session
// with acknowledgements (XEP-0124 §14.3: the ones not acknowledged yet). A
// client holds at most 'requests' open, so a few more than that is plenty.
const maxUnacked = 8

// bodyOverhead is what a request may hold besides its payload's largest
// element: the <body/> wrapper.
const bodyOverhead = 4096

// Client is what the web listener believes of the client of a request
// (websocket.Handler.Client): its address, after trusted proxies; whether
// it reached the server over TLS; whether a page of its Origin may use
// the endpoint (true without an Origin).
type Client func(r *http.Request) (addr net.Addr, secure, originAllowed bool)

// Start is c2s.Server.StartFramed for a BOSH session.
type Start func(conn *Conn, secure bool) (serve func(context.Context), err error)

// Handler serves the BOSH endpoint.
type Handler struct {
	// Start admits the XMPP session of a new BOSH session, or refuses it
	// (the client's address has too many sessions not authenticated
	// yet, or the server is stopping), and returns what runs it until
	// it ends: c2s.Server.StartFramed.
	Start  Start
	Client Client
	Log    *slog.Logger

	set atomic.Pointer[settings]

	mu       sync.Mutex // guards sessions
	sessions map[string]*Conn
}

// settings are what the handler reads of the configuration.
type settings struct {
	hosts      []string
	maxBytes   int // limits.max_stanza_bytes
	maxWait    time.Duration
	inactivity time.Duration
	now        func() time.Time // the clock of arrivals and responses: time.Now but in tests
}

// NewHandler returns the handler for cfg.
func NewHandler(cfg *config.Config, log *slog.Logger, client Client, start Start) *Handler {
	h := &Handler{Start: start, Client: client, Log: log, sessions: make(map[string]*Conn)}
	h.SetConfig(cfg)
	return h
}

// SetConfig applies a (re)loaded configuration to the sessions created
// after it.
func (h *Handler) SetConfig(cfg *config.Config) {
	h.set.Store(&settings{
		hosts:      cfg.Server.Hosts,
		maxBytes:   cfg.Limits.MaxStanzaBytes,
		maxWait:    cfg.HTTP.BOSHMaxWait.Duration,
		inactivity: cfg.HTTP.BOSHInactivity.Duration,
		now:        time.Now,
	})
}

// ServeHTTP implements http.Handler: POST carries requests (XEP-0124
// §4), OPTIONS is a CORS preflight; any other method is refused with 405.
// A page whose Origin is not allowed is refused with 403; an allowed one
// gets the CORS headers that let it read the responses.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr, secure, originOK := h.Client(r)
	if origin := r.Header.Get("Origin"); origin != "" {
		if !originOK {
			h.Log.Debug("BOSH refused: origin not allowed", "conn", addr.String(), "origin", origin)
			http.Error(w, "origin not allowed: see http.allowed_origins", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPost:
		h.post(w, r, addr, secure)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "BOSH takes POST requests (XEP-0124 §4)", http.StatusMethodNotAllowed)
	}
}

// post handles one request: session creation without a 'sid', else a
// request of the session it names.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, addr net.Addr, secure bool) {
	set := h.set.Load()
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(set.maxBytes+bodyOverhead)))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.Log.Debug("BOSH request too large", "conn", addr.String())
			h.refuse(raw, condPolicyViolation)
			reply(w, http.StatusRequestEntityTooLarge, terminate(condPolicyViolation))
		}
		return
	}
	b, err := parseBody(raw, set.maxBytes)
	if err != nil {
		cond := condBadRequest
		if !errors.Is(err, errBadRequest) {
			cond = condPolicyViolation // an element too large
		}
		h.Log.Debug("BOSH request refused", "conn", addr.String(), "condition", cond)
		h.refuse(raw, cond)
		reply(w, http.StatusOK, terminate(cond))
		return
	}
	var conn *Conn
	req := &request{body: b, resp: make(chan []byte, 1)}
	if b.sid == "" {
		conn = h.create(w, r, req, set, addr, secure)
		if conn == nil {
			return
		}
	} else {
		h.mu.Lock()
		conn = h.sessions[b.sid]
		h.mu.Unlock()
		if conn == nil {
			// XEP-0124 §17.2: item-not-found for an unknown sid.
			reply(w, http.StatusOK, terminate(condItemNotFound))
			return
		}
	}
	conn.accept(req)
	select {
	case resp := <-req.resp:
		reply(w, http.StatusOK, resp)
	case <-r.Context().Done():
		conn.abandon(req)
	}
}

// refuse ends the session that raw, a request refused with a terminal
// condition before it reached its session, names with its 'sid', if any:
// a terminal condition ends the session (XEP-0124 §17.2), and with it the
// XMPP session, at once, not after 'inactivity'. Knowing the sid is what
// a request with type='terminate', or an unexpected rid (§14.2), needs to
// end the session too, so this gives nobody a new power.
func (h *Handler) refuse(raw []byte, cond string) {
	sid := sidOf(raw)
	if sid == "" {
		return
	}
	h.mu.Lock()
	conn := h.sessions[sid]
	h.mu.Unlock()
	if conn != nil {
		conn.refused(cond)
	}
}

// create starts a session (XEP-0124 §7.1, XEP-0206 §3) and returns it,
// or answers the request with why not and returns nil.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, req *request, set *settings, addr net.Addr, secure bool) *Conn {
	b := req.body
	host := ""
	for _, hst := range set.hosts {
		if strings.EqualFold(hst, b.to) {
			host = hst
		}
	}
	if host == "" {
		reply(w, http.StatusOK, terminate(condHostUnknown))
		return nil
	}
	if b.wait < 0 || b.hold < 0 {
		reply(w, http.StatusOK, terminate(condBadRequest)) // both are required (§7.1)
		return nil
	}
	wait := min(time.Duration(b.wait)*time.Second, set.maxWait)
	hold := min(int(b.hold), maxHold)
	sid := newSID()
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	c := &Conn{
		sid: sid, host: host, remote: addr, local: local,
		wait: wait, hold: hold, inactivity: set.inactivity, window: int64(hold + 1),
		ver:    version(b.ver),
		acks:   b.ack == 1, // XEP-0124 §9.2
		maxOut: 16 * set.maxBytes, maxIn: 16 * set.maxBytes,
		now:     set.now,
		next:    b.rid,
		ahead:   make(map[int64]*request),
		sent:    make(map[int64]sentResponse),
		limit:   set.inactivity,
		inReady: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	// The XMPP session is admitted before anything else is set up.
	serve, err := h.Start(c, secure)
	if err != nil {
		h.Log.Debug("BOSH session refused", "conn", addr.String(), "err", err)
		if errors.Is(err, c2s.ErrTooManyUnauthenticated) {
			// RFC 6585 §4; the body says it in BOSH's terms too.
			reply(w, http.StatusTooManyRequests, terminate(condPolicyViolation))
		} else {
			reply(w, http.StatusServiceUnavailable, terminate(condSystemShutdown))
		}
		return nil
	}
	c.created = c.creationAttrs(b.rid)
	// The creation request's 'ack' asks for acknowledgements; it
	// acknowledges nothing, and pauses nothing.
	b.ack, b.pause = -1, -1
	c.forget = func() {
		h.mu.Lock()
		delete(h.sessions, sid)
		h.mu.Unlock()
	}
	c.idleSince = time.Now()
	c.inactive = time.AfterFunc(set.inactivity, c.checkInactive)
	c.mu.Lock()
	c.push(item{hdr: &stream.Header{To: b.to, Lang: b.lang, Version: "1.0", NS: nsClient}})
	c.opening = req // answered with the features (flush)
	c.mu.Unlock()
	h.mu.Lock()
	h.sessions[sid] = c
	h.mu.Unlock()
	h.Log.Debug("BOSH session", "conn", addr.String(), "sid", sid, "wait", wait, "hold", hold, "secure", secure)
	// The session outlives this request; the server's shutdown ends it
	// (c2s.Server.Shutdown).
	go serve(context.WithoutCancel(r.Context()))
	return c
}

// reply writes a response body.
func reply(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}

// terminate is the response that ends a session, or refuses a request
// that has none, with cond (XEP-0124 §17.2).
func terminate(cond string) []byte {
	b := []byte("<body xmlns='" + NSHTTPBind + "'")
	b = appendAttr(b, "type", "terminate")
	b = appendAttr(b, "condition", cond)
	return append(b, "/>"...)
}

// newSID returns a session id: unique, and unpredictable, since knowing
// it (and the rid) is what lets a request into a session (XEP-0124 §7.1).
func newSID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
