package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"mellium.im/sasl"
)

// conn is one client stream. Reads belong to one goroutine at a time;
// writes are serialized by wmu.
type conn struct {
	cfg  *config
	c    transport
	raw  net.Conn // the TCP connection under any TLS; nil over WebSocket
	sc   elements
	tls  *tls.ConnectionState // for channel binding; nil without TLS
	wmu  sync.Mutex
	jid  string // bound full JID
	feat []byte // last <stream:features/>, copied
}

// transport is what a stream is written to: a TCP connection (a net.Conn,
// TLS after STARTTLS or from the start) or a WebSocket (wsConn). A Write
// holds whole top-level units: the stream header, elements, the closing
// tag.
type transport interface {
	Write(b []byte) (int, error)
	SetDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	Close() error
}

// elements is where a stream's elements are read from: the scanner over
// TCP, the WebSocket's messages (wsConn).
type elements interface {
	// next returns the next top-level element, or the stream header
	// while the stream is not open yet; the slice is valid until the
	// next call.
	next() ([]byte, int, error)
	// restart begins a new stream after SASL.
	restart()
}

var mechanisms = map[string]sasl.Mechanism{
	"PLAIN":              sasl.Plain,
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
}

func (cfg *config) tlsConfig() *tls.Config {
	tc := &tls.Config{ServerName: cfg.domain, InsecureSkipVerify: cfg.insecure, RootCAs: cfg.roots}
	if !cfg.pq {
		// What the clients people run offer (OpenSSL 3.0 in Gajim, Android's
		// Conscrypt): no post-quantum hybrid, whose ML-KEM would cost both
		// sides more than the rest of the handshake.
		tc.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	if cfg.directTLS {
		tc.NextProtos = []string{"xmpp-client"}
	}
	tc.ClientSessionCache = cfg.sessionCache // --resume: this worker's
	return tc
}

// connect opens a TCP connection and an encrypted XMPP stream (direct TLS
// or STARTTLS), or with --url a WebSocket, and returns it with the
// features offered after TLS.
func connect(ctx context.Context, cfg *config) (*conn, error) {
	if cfg.url != "" {
		return connectWS(ctx, cfg)
	}
	d := net.Dialer{Timeout: cfg.timeout}
	if cfg.source != nil {
		d.LocalAddr = &net.TCPAddr{IP: cfg.source()}
	}
	nc, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(cfg.timeout))
	rw := nc // what the stream is read from and written to
	if cfg.rec != nil && !cfg.directTLS {
		rw = &countingConn{Conn: nc, x: cfg.rec}
	}
	var st *tls.ConnectionState
	if cfg.directTLS {
		tc := tls.Client(nc, cfg.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		rw, st = tc, tlsState(tc)
		if cfg.rec != nil {
			rw = &countingConn{Conn: tc, x: cfg.rec, inTLS: true}
		}
	}
	sc := newScanner(rw)
	c := &conn{cfg: cfg, c: rw, raw: nc, sc: sc, tls: st}
	if err := c.openStream(); err != nil {
		c.c.Close()
		return nil, err
	}
	if !cfg.directTLS {
		if !bytes.Contains(c.feat, []byte("<starttls")) {
			c.c.Close()
			return nil, errors.New("server offers no STARTTLS")
		}
		if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			c.c.Close()
			return nil, err
		}
		el, err := c.nextTop()
		if err != nil || !is(el, "proceed") {
			c.c.Close()
			return nil, fmt.Errorf("STARTTLS: %s %v", el, err)
		}
		tc := tls.Client(nc, cfg.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		var trw net.Conn = tc
		if cfg.rec != nil {
			trw = &countingConn{Conn: tc, x: cfg.rec, inTLS: true}
		}
		c.c, c.tls = trw, tlsState(tc)
		sc.reset(trw)
		if err := c.openStream(); err != nil {
			c.c.Close()
			return nil, err
		}
	}
	return c, nil
}

// login connects, authenticates user and binds a resource; the
// connection's deadline is cleared on success.
func login(ctx context.Context, cfg *config, user, resource string) (*conn, error) {
	c, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.auth(user); err != nil {
		c.c.Close()
		return nil, err
	}
	if err := c.bind(resource); err != nil {
		c.c.Close()
		return nil, err
	}
	c.c.SetDeadline(time.Time{})
	return c, nil
}

func tlsState(tc *tls.Conn) *tls.ConnectionState {
	st := tc.ConnectionState()
	return &st
}

func (c *conn) send(s string) error {
	c.wmu.Lock()
	_, err := c.c.Write([]byte(s))
	c.wmu.Unlock()
	return err
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.c.Write(b)
	c.wmu.Unlock()
	return err
}

// nextTop returns the next element, turning a stream error into an error.
func (c *conn) nextTop() ([]byte, error) {
	el, _, err := c.sc.next()
	if err != nil {
		return nil, err
	}
	if isStreamError(el) {
		return nil, fmt.Errorf("stream error: %s", el)
	}
	return el, nil
}

// openStream sends a stream header and reads the server's header and
// features.
func (c *conn) openStream() error {
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.cfg.domain + "' version='1.0'>"); err != nil {
		return err
	}
	el, kind, err := c.sc.next()
	if err != nil {
		return fmt.Errorf("server stream header: %w", err)
	}
	if kind != kindHeader {
		return fmt.Errorf("expected a stream header, got %s", el)
	}
	el, err = c.nextTop()
	if err != nil {
		return err
	}
	if !is(el, "features") {
		return fmt.Errorf("expected stream features, got %s", el)
	}
	c.feat = append(c.feat[:0], el...)
	return nil
}

// offered lists the SASL mechanisms in the current features.
func (c *conn) offered() []string {
	var out []string
	f := c.feat
	for {
		i := bytes.Index(f, []byte("<mechanism>"))
		if i < 0 {
			return out
		}
		f = f[i+len("<mechanism>"):]
		j := bytes.Index(f, []byte("</mechanism>"))
		if j < 0 {
			return out
		}
		out = append(out, string(bytes.TrimSpace(f[:j])))
		f = f[j:]
	}
}

// errAuth marks a SASL <failure/>.
var errAuth = errors.New("authentication failed")

// auth runs SASL with the configured mechanism and restarts the stream.
func (c *conn) auth(user string) error {
	mech := mechanisms[c.cfg.mech]
	offered := c.offered()
	found := false
	for _, m := range offered {
		found = found || m == c.cfg.mech
	}
	if !found {
		return fmt.Errorf("server does not offer %s (offers %v)", c.cfg.mech, offered)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(c.cfg.password), nil }),
		sasl.RemoteMechanisms(offered...),
	}
	if c.tls != nil {
		opts = append(opts, sasl.TLSState(*c.tls))
	}
	// first is the initial response; step answers a challenge; final
	// checks the additional data of <success/> (or of a last challenge).
	var first []byte
	var step func([]byte) ([]byte, error)
	var final func([]byte) error
	if sc, ok := newScram(c.cfg.mech, user, c.cfg.password); ok && c.cfg.scramCache {
		first = sc.start()
		steps := 0
		step = func(ch []byte) ([]byte, error) {
			steps++
			if steps == 1 {
				return sc.step(ch)
			}
			return nil, sc.verify(ch) // server-final sent as a challenge
		}
		final = func(data []byte) error {
			if len(data) == 0 && steps == 2 {
				return nil // verified in the challenge
			}
			return sc.verify(data)
		}
	} else {
		neg := sasl.NewClient(mech, opts...)
		_, resp, err := neg.Step(nil)
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		first = resp
		step = func(ch []byte) ([]byte, error) {
			_, resp, err := neg.Step(ch)
			return resp, err
		}
		final = func(data []byte) error {
			if len(data) == 0 {
				return nil
			}
			_, _, err := neg.Step(data)
			return err
		}
	}
	resp := first
	if err := c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + c.cfg.mech + "'>" + b64(resp) + "</auth>"); err != nil {
		return err
	}
	for {
		el, err := c.nextTop()
		if err != nil {
			return err
		}
		switch {
		case is(el, "challenge"):
			data, err := base64.StdEncoding.DecodeString(string(text(el)))
			if err != nil {
				return fmt.Errorf("challenge: %w", err)
			}
			resp, err := step(data)
			if err != nil {
				return fmt.Errorf("sasl step: %w", err)
			}
			if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>"); err != nil {
				return err
			}
		case is(el, "success"):
			var data []byte
			if t := text(el); len(t) > 0 && string(t) != "=" {
				if data, err = base64.StdEncoding.DecodeString(string(t)); err != nil {
					return fmt.Errorf("success data: %w", err)
				}
			}
			if err := final(data); err != nil {
				return fmt.Errorf("server signature: %w", err)
			}
			c.sc.restart()
			return c.openStream()
		case is(el, "failure"):
			return fmt.Errorf("%w for %s: %s", errAuth, user, el)
		default:
			return fmt.Errorf("unexpected during SASL: %s", el)
		}
	}
}

// bind binds resource (RFC 6120 §7) and, if the server requires it, opens
// the legacy session (RFC 3921 §3).
func (c *conn) bind(resource string) error {
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	if err := c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>"); err != nil {
		return err
	}
	el, err := c.awaitIQ("b1")
	if err != nil {
		return err
	}
	j, _ := child(el, "jid")
	if string(attr(el, "type")) != "result" || len(j) == 0 {
		return fmt.Errorf("bind: %s", el)
	}
	c.jid = string(j)
	if s := bytes.Index(c.feat, []byte("urn:ietf:params:xml:ns:xmpp-session")); s >= 0 && !bytes.Contains(c.feat[s:], []byte("<optional")) {
		if err := c.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"); err != nil {
			return err
		}
		if el, err := c.awaitIQ("s1"); err != nil || string(attr(el, "type")) != "result" {
			return fmt.Errorf("session: %s %v", el, err)
		}
	}
	return nil
}

// awaitIQ reads until the iq answering id, answering pings meanwhile and
// dropping anything else.
func (c *conn) awaitIQ(id string) ([]byte, error) {
	for {
		el, err := c.nextTop()
		if err != nil {
			return nil, err
		}
		if !is(el, "iq") {
			continue
		}
		if string(attr(el, "id")) == id {
			t := string(attr(el, "type"))
			if t == "result" || t == "error" {
				return el, nil
			}
		}
		c.answerIQ(el)
	}
}

// answerIQ answers an iq get/set from the server: a ping and a roster
// push (RFC 6121 §2.1.6) with a result, anything else with
// service-unavailable, as a client must (RFC 6120 §8.2.3).
func (c *conn) answerIQ(el []byte) {
	t := string(attr(el, "type"))
	if t != "get" && t != "set" {
		return
	}
	id, from := attr(el, "id"), attr(el, "from")
	to := ""
	if len(from) > 0 {
		to = " to='" + string(from) + "'"
	}
	if bytes.Contains(el, []byte("urn:xmpp:ping")) || t == "set" && bytes.Contains(el, []byte("jabber:iq:roster")) {
		c.send("<iq type='result' id='" + string(id) + "'" + to + "/>")
		return
	}
	c.send("<iq type='error' id='" + string(id) + "'" + to + "><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

// presenceAndRoster sends initial presence and a roster get, then waits
// for the roster answer. It reports whether the answer was an error
// (Starling may not have a roster yet: service-unavailable still counts).
func (c *conn) presenceAndRoster() (rosterErr bool, err error) {
	if err := c.send("<presence/><iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"); err != nil {
		return false, err
	}
	el, err := c.awaitIQ("r1")
	if err != nil {
		return false, err
	}
	return string(attr(el, "type")) == "error", nil
}

// close ends the stream politely: our closing tag, then the server's (or
// a short wait for it), then the socket.
func (c *conn) close() {
	c.c.SetDeadline(time.Now().Add(2 * time.Second))
	if c.send("</stream:stream>") == nil {
		for {
			if _, _, err := c.sc.next(); err != nil {
				break
			}
		}
	}
	c.c.Close()
}

// register creates user with the configured password by in-band
// registration (XEP-0077 §3.1) on an encrypted stream. An existing
// account (conflict) is fine.
func register(ctx context.Context, cfg *config, user string) (created bool, err error) {
	c, err := connect(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer c.c.Close()
	if err := c.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>" + xmlEscape(user) + "</username><password>" + xmlEscape(cfg.password) + "</password></query></iq>"); err != nil {
		return false, err
	}
	el, err := c.awaitIQ("reg1")
	if err != nil {
		return false, err
	}
	if string(attr(el, "type")) == "result" {
		return true, nil
	}
	if bytes.Contains(el, []byte("<conflict")) {
		return false, nil
	}
	return false, fmt.Errorf("in-band registration of %s refused: %s", user, el)
}

func text(el []byte) []byte {
	s := startTagEnd(el)
	e := bytes.LastIndexByte(el, '<')
	if s >= len(el) || e < s {
		return nil
	}
	return bytes.TrimSpace(el[s:e])
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range []byte(s) {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteByte(r)
		}
	}
	return b.String()
}

// account is the i-th account name (1-based).
func (cfg *config) account(i int) string { return cfg.users + strconv.Itoa(i) }
