package s2s

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/admission"
	"github.com/starling-xmpp/starling/s2s/peercert"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// inStream is a stream another server opened to us (the receiving server
// of RFC 6120 and XEP-0220).
type inStream struct {
	f      *Federation
	c      *conn
	direct bool
	id     string        // the stream id of the current header
	to     string        // the local domain of the header (fixed after the first)
	from   string        // the peer's domain as its header says (may be empty at first)
	sasl   bool          // authenticated with SASL EXTERNAL
	bidi   bool          // the peer asked for a bidirectional stream (XEP-0288)
	done   chan struct{} // closed when the stream has ended
	// key is the peer's address as admission counts it; counted, that
	// the stream holds a place there until it authenticates or ends.
	key     string
	counted atomic.Bool
	// attached: the bidirectional stream carries our stanzas too.
	attached bool

	mu sync.Mutex // guards authed
	// authed maps each authenticated remote domain to the local domains
	// it may send to on this stream (dialback authenticates pairs,
	// XEP-0220 §2.1; several per stream, "piggybacking", §4.3).
	authed map[string]map[string]bool
	addr   string // the peer's address
	// shown is what Status shows of the stream, guarded by mu.
	shownFrom, shownTLS string
	shownSASL           bool
}

// Listen serves incoming streams on the [s2s] listeners: STARTTLS ones
// and direct TLS ones (XEP-0368).
func (f *Federation) Listen() error {
	s := f.settings()
	var lns []net.Listener
	var direct []bool
	for _, a := range s.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return err
		}
		lns, direct = append(lns, ln), append(direct, false)
	}
	for _, a := range s.DirectTLSListen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(lns)
			return err
		}
		lns, direct = append(lns, ln), append(direct, true)
	}
	f.mu.Lock()
	f.lns = append(f.lns, lns...)
	f.mu.Unlock()
	for i, ln := range lns {
		f.log.Info("s2s listening", "addr", ln.Addr().String(), "direct_tls", direct[i])
		f.wg.Add(1)
		go f.accept(ln, direct[i])
	}
	return nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// Addrs returns the bound addresses of the listeners, in the order of
// listen then direct_tls_listen.
func (f *Federation) Addrs() []net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var a []net.Addr
	for _, ln := range f.lns {
		a = append(a, ln.Addr())
	}
	return a
}

func (f *Federation) accept(ln net.Listener, direct bool) {
	defer f.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			f.log.Warn("s2s accept", "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// RFC 6120 §13.9: one address may hold only so many streams
		// that have not authenticated ([limits]
		// max_unauthenticated_per_address, as for clients).
		lim := f.cfg().Limits
		key := admission.Key(nc.RemoteAddr(), lim.IPv6Prefix)
		switch f.unauth.Enter(key, lim.MaxUnauthenticatedPerAddress) {
		case admission.Dropped:
			nc.Close()
			continue
		case admission.Refused:
			f.refusals.Add(1)
			f.log.Debug("s2s: too many unauthenticated streams from one address", "addr", nc.RemoteAddr().String())
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer f.unauth.Leave(key)
				c := newConn(nc, f.limits())
				c.write(header("", "", newID()))
				c.fail(&stream.Error{Condition: stream.PolicyViolation, Text: "too many unauthenticated connections from your address"})
			}()
			continue
		}
		s := &inStream{f: f, c: newConn(nc, f.limits()), direct: direct, authed: make(map[string]map[string]bool), addr: nc.RemoteAddr().String(), done: make(chan struct{}), key: key}
		s.counted.Store(true)
		f.mu.Lock()
		if f.lns == nil { // closing
			f.mu.Unlock()
			nc.Close()
			return
		}
		f.ins[s] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go s.serve()
	}
}

// serve negotiates and reads the stream until it ends.
func (s *inStream) serve() {
	defer s.f.wg.Done()
	defer func() {
		s.release()
		s.f.mu.Lock()
		delete(s.f.ins, s)
		s.f.mu.Unlock()
		close(s.done)
	}()
	// Authentication must complete within the negotiation timeout.
	t := time.AfterFunc(s.f.settings().NegotiationTimeout.Duration, func() {
		if !s.authenticated() {
			s.c.fail(&stream.Error{Condition: stream.ConnectionTimeout, Text: "not authenticated in time"})
		}
	})
	defer t.Stop()
	err := s.run()
	var se *stream.Error
	switch {
	case err == nil, errors.Is(err, stream.ErrClosed):
		s.c.close()
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.f.log.Debug("s2s incoming stream closed: idle", "remote", s.from)
		s.c.close()
	case errors.As(err, &se):
		s.f.log.Info("s2s incoming stream refused", "remote", s.from, "local", s.to, "error", se.Error(), "addr", s.addr)
		s.c.fail(se)
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.f.log.Debug("s2s incoming stream ended", "remote", s.from, "error", err)
		}
		s.c.abort()
	}
}

// release gives back the stream's place among its address's
// unauthenticated streams, once.
func (s *inStream) release() {
	if s.counted.CompareAndSwap(true, false) {
		s.f.unauth.Leave(s.key)
	}
}

func (s *inStream) authenticated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.authed) > 0
}

// run reads stream headers and elements; it returns the stream error to
// send, or why the stream ended.
func (s *inStream) run() error {
	if s.direct {
		if err := s.c.upgrade(tls.Server(s.c.nc, s.f.serverTLS(true))); err != nil {
			return err
		}
	}
	idle := s.f.settings().IdleTimeout.Duration
	for {
		// A stream (re)starts here: at first, after TLS, after SASL.
		if err := s.header(); err != nil {
			return err
		}
		for restart := false; !restart; {
			s.c.nc.SetReadDeadline(time.Now().Add(idle))
			el, err := s.c.r.Next()
			if err != nil {
				return err
			}
			if restart, err = s.element(el); err != nil {
				return err
			}
		}
	}
}

// header reads and checks the peer's stream header (RFC 6120 §4.7) and
// answers it with ours and the features.
func (s *inStream) header() error {
	h, err := s.c.r.ReadHeader()
	if err != nil {
		var se *stream.Error
		if errors.As(err, &se) {
			// RFC 6120 §4.9.1.2: the header comes first, then the error.
			s.c.write(header("", "", newID()))
		}
		return err
	}
	s.id = newID()
	s.c.write(header(h.To, h.From, s.id))
	switch {
	case h.NS != nsServer:
		return &stream.Error{Condition: stream.InvalidNamespace, Text: "the content namespace must be jabber:server"}
	case h.To == "" || !s.f.router.Serves(h.To):
		// §4.9.3.6
		return &stream.Error{Condition: stream.HostUnknown, Text: "this server does not serve " + h.To}
	case s.to != "" && h.To != s.to:
		// §4.7.2: the addresses may not change on a restart.
		return &stream.Error{Condition: stream.ImproperAddressing, Text: "'to' changed on a stream restart"}
	}
	if h.From != "" {
		if _, err := jid.New("", h.From, ""); err != nil {
			return &stream.Error{Condition: stream.InvalidFrom, Text: "'from' is not a domain"}
		}
		if s.sasl && h.From != s.from {
			return &stream.Error{Condition: stream.InvalidFrom, Text: "'from' changed after authentication"}
		}
	}
	s.to = h.To
	if !s.sasl {
		s.from = h.From // after SASL it is the authenticated domain
	}
	if s.c.secure && s.from != "" && s.c.certErr == errNoTLS {
		s.f.verify(s.c, s.from)
	}
	s.mu.Lock()
	s.shownFrom, s.shownTLS = s.from, s.c.tlsVersion()
	s.mu.Unlock()
	if err := s.c.write(s.features()); err != nil {
		return err
	}
	if s.sasl && s.bidi && !s.attached {
		// The stream restarted after SASL: ours may follow now.
		s.attached = true
		s.f.attachBidi(s, pair{local: s.to, remote: s.from})
	}
	return nil
}

// features are the stream features offered (RFC 6120 §4.3.2): STARTTLS,
// then SASL EXTERNAL if the certificate validates for the peer's domain
// (XEP-0178 §3), dialback (XEP-0220 §2.1, with the errors of §2.4) unless
// only valid certificates are accepted, and our limits (XEP-0478).
func (s *inStream) features() []byte {
	cfg := s.f.settings()
	b := []byte("<stream:features>")
	if !s.c.secure {
		b = append(b, "<starttls xmlns='"+nsTLS+"'>"...)
		if s.f.mustEncrypt(s.from) {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
	}
	if !s.sasl {
		if s.c.secure && s.from != "" && s.c.certErr == nil {
			b = append(b, "<mechanisms xmlns='"+nsSASL+"'><mechanism>EXTERNAL</mechanism></mechanisms>"...)
		}
		if !cfg.RequireValidCertificates && (s.c.secure || !s.f.mustEncrypt(s.from)) {
			b = append(b, "<dialback xmlns='"+nsDialbackFeature+"'><errors/></dialback>"...)
		}
		if s.c.secure && cfg.Bidi && !s.authenticated() {
			b = append(b, "<bidi xmlns='"+nsBidiFeature+"'/>"...)
		}
	}
	// RFC 6120 §5.3.1: with TLS required, nothing else before it.
	if s.c.secure || !s.f.mustEncrypt(s.from) {
		b = append(b, "<limits xmlns='"+nsLimits+"'><max-bytes>"...)
		b = appendInt(b, s.f.cfg().Limits.MaxStanzaBytes)
		b = append(b, "</max-bytes><idle-seconds>"...)
		b = appendInt(b, int(cfg.IdleTimeout.Seconds()))
		b = append(b, "</idle-seconds></limits>"...)
	}
	return append(b, "</stream:features>"...)
}

func appendInt(b []byte, n int) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// element handles one top-level element; restart reports that a new
// stream header follows.
func (s *inStream) element(el *stream.Element) (restart bool, err error) {
	switch {
	case el.Name.Space == nsTLS && el.Name.Local == "starttls":
		if s.c.secure {
			return false, &stream.Error{Condition: stream.PolicyViolation, Text: "TLS is already negotiated"}
		}
		if err := s.c.writeString("<proceed xmlns='" + nsTLS + "'/>"); err != nil {
			return false, err
		}
		if err := s.c.upgrade(tls.Server(s.c.nc, s.f.serverTLS(false))); err != nil {
			return false, err
		}
		return true, nil
	case el.Name.Space == nsSASL && el.Name.Local == "auth":
		return s.external(el)
	case el.Name.Space == nsBidi && el.Name.Local == "bidi":
		// XEP-0288 §2.2: before authentication, on an encrypted stream.
		if !s.c.secure || !s.f.settings().Bidi || s.authenticated() {
			return false, &stream.Error{Condition: stream.UnsupportedFeature, Text: "bidirectional streams are offered on encrypted streams before authentication"}
		}
		s.bidi = true
		return false, nil
	case el.Name.Space == nsDialback && el.Name.Local == "result":
		return false, s.dialbackResult(el)
	case el.Name.Space == nsDialback && el.Name.Local == "verify":
		return false, s.dialbackVerify(el)
	case el.Name.Space == nsServer && stanza.KindOf(el.Name.Local) != 0:
		return false, s.stanza(el)
	case el.Name.Space == stream.NS && el.Name.Local == "error":
		return false, errors.New("stream error from the peer: " + streamErrorText(el.Raw))
	}
	// RFC 6120 §4.9.3.24
	return false, &stream.Error{Condition: stream.UnsupportedStanzaType}
}

// external handles <auth mechanism='EXTERNAL'/> (XEP-0178 §3, RFC 6120
// §6.4): it succeeds when the certificate validated for the header's
// 'from', with no authorization identity ("=") or that same domain.
func (s *inStream) external(el *stream.Element) (bool, error) {
	fail := func(cond string) (bool, error) {
		return false, s.c.writeString("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>")
	}
	if s.sasl || !s.c.secure || s.from == "" || el.AttrValue("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	if s.c.certErr != nil {
		return fail("not-authorized")
	}
	authz := el.Text()
	if authz != "" && authz != "=" {
		d, err := base64.StdEncoding.DecodeString(authz)
		if err != nil {
			return fail("incorrect-encoding")
		}
		if string(d) != s.from {
			return fail("invalid-authzid")
		}
	}
	if err := s.c.writeString("<success xmlns='" + nsSASL + "'/>"); err != nil {
		return false, err
	}
	s.sasl = true
	s.mu.Lock()
	s.shownSASL = true
	s.mu.Unlock()
	s.authorize(s.from, s.to)
	s.f.log.Info("s2s stream authenticated", "direction", "in", "remote", s.from, "local", s.to, "method", "EXTERNAL", "tls", s.c.tlsVersion())
	s.c.r.Reset(s.c.nc) // RFC 6120 §6.4.6: the stream restarts
	return true, nil
}

// authorize records that remote authenticated for local on this stream;
// on a bidirectional stream our stanzas for remote may then use it,
// except after SASL, which restarts the stream first (header does it).
func (s *inStream) authorize(remote, local string) {
	s.mu.Lock()
	if s.authed[remote] == nil {
		s.authed[remote] = make(map[string]bool)
	}
	s.authed[remote][local] = true
	s.mu.Unlock()
	s.release()
	if s.bidi && !s.sasl {
		s.f.attachBidi(s, pair{local: local, remote: remote})
	}
}

// dialbackResult handles a request to authenticate a domain pair by
// dialback (XEP-0220 §2.1.2): the key is checked with the originating
// domain's authoritative server in the background, and the verdict sent
// as <db:result type='valid|invalid'/>; errors as in §2.4.
func (s *inStream) dialbackResult(el *stream.Element) error {
	from, to, key := el.AttrValue("from"), el.AttrValue("to"), el.Text()
	answer := func(typ, extra string) error {
		return s.c.write([]byte("<db:result xmlns:db='" + nsDialback + "' from='" + esc(to) + "' to='" + esc(from) + "' type='" + typ + "'>" + extra + "</db:result>"))
	}
	if el.AttrValue("type") != "" {
		return nil // a verdict on a stream we did not ask on: ignore
	}
	if _, err := jid.New("", from, ""); err != nil || from == "" {
		return &stream.Error{Condition: stream.InvalidFrom, Text: "dialback 'from' is not a domain"}
	}
	// The conditions of XEP-0220 §2.4, which leave the stream open.
	switch {
	case !s.f.router.Serves(to):
		return answer("error", stanzaError("cancel", "item-not-found", "this server does not serve "+to))
	case s.f.settings().RequireValidCertificates:
		return answer("error", stanzaError("cancel", "not-authorized", "dialback is off: a valid certificate is required"))
	case !s.c.secure && s.f.mustEncrypt(from):
		return answer("error", stanzaError("cancel", "policy-violation", "TLS is required"))
	}
	// A certificate that validates for the domain settles it at once
	// (XEP-0344 §2.4); else ask the authoritative server.
	if s.c.secure && s.certValid(from) {
		s.authorize(from, to)
		s.f.log.Info("s2s stream authenticated", "direction", "in", "remote", from, "local", to, "method", "dialback (certificate)", "tls", s.c.tlsVersion())
		return answer("valid", "")
	}
	id := s.id
	s.f.wg.Add(1)
	go func() {
		defer s.f.wg.Done()
		ok, err := s.f.verifyKey(pair{local: to, remote: from}, id, key)
		switch {
		case err != nil:
			s.f.log.Warn("s2s dialback: cannot verify", "remote", from, "local", to, "error", err)
			answer("error", stanzaError("cancel", "remote-server-not-found", err.Error()))
		case !ok:
			// §2.2.1: the peer tried to spoof the domain: the stream
			// must be closed.
			s.f.log.Warn("s2s dialback: invalid key: refused", "remote", from, "local", to, "addr", s.addr)
			answer("invalid", "")
			s.c.close()
		default:
			s.authorize(from, to)
			s.f.log.Info("s2s stream authenticated", "direction", "in", "remote", from, "local", to, "method", "dialback", "tls", s.c.tlsVersion())
			answer("valid", "")
		}
	}()
	return nil
}

// certValid reports whether the stream's certificate validates for
// domain (the header's 'from' was checked at the header).
func (s *inStream) certValid(domain string) bool {
	if domain == s.from {
		return s.c.certErr == nil
	}
	return peercert.Verify(s.c.tls.PeerCertificates, domain, s.f.roots, s.f.now()) == nil
}

// dialbackVerify answers an authoritative-server check (XEP-0220 §2.2):
// whether key is the one we gave for the stream id to the asking
// (receiving) server.
func (s *inStream) dialbackVerify(el *stream.Element) error {
	from, to, id, key := el.AttrValue("from"), el.AttrValue("to"), el.AttrValue("id"), el.Text()
	if el.AttrValue("type") != "" {
		return nil
	}
	typ := "invalid"
	if !s.f.router.Serves(to) {
		return s.c.write([]byte("<db:verify xmlns:db='" + nsDialback + "' from='" + esc(to) + "' to='" + esc(from) + "' id='" + esc(id) + "' type='error'>" + stanzaError("cancel", "item-not-found", "") + "</db:verify>"))
	}
	if validKey(s.f.secret, from, to, id, key) {
		typ = "valid"
	}
	return s.c.write([]byte("<db:verify xmlns:db='" + nsDialback + "' from='" + esc(to) + "' to='" + esc(from) + "' id='" + esc(id) + "' type='" + typ + "'/>"))
}

// stanza accepts a stanza for the domain pairs the stream authenticated
// (RFC 6120 §8.1.1.2, §8.1.2.2; XEP-0220 §4.3).
func (s *inStream) stanza(el *stream.Element) error {
	if se := s.f.acceptStanza(el, s.check); se != nil {
		return se // not a nil *stream.Error in an error
	}
	return nil
}

// check is acceptStanza's question for an incoming stream: did it authenticate
// the pair from → to?
func (s *inStream) check(from, to string) *stream.Error {
	s.mu.Lock()
	locals, ok := s.authed[from]
	okTo := locals[to]
	n := len(s.authed)
	s.mu.Unlock()
	switch {
	case n == 0 && !s.c.secure && s.f.mustEncrypt(s.from):
		// RFC 7590 §3.1: what refuses it is the policy, not a missing
		// authentication the peer could still complete in the clear.
		return &stream.Error{Condition: stream.PolicyViolation, Text: "TLS is required"}
	case n == 0:
		return &stream.Error{Condition: stream.NotAuthorized, Text: "the stream is not authenticated"}
	case !ok:
		s.f.log.Warn("s2s: stanza from a domain the stream did not authenticate: refused", "from", from, "stream_from", s.from, "addr", s.addr)
		return &stream.Error{Condition: stream.InvalidFrom, Text: from + " is not authenticated on this stream"}
	case !okTo:
		if !s.f.router.Serves(to) {
			return &stream.Error{Condition: stream.HostUnknown, Text: "this server does not serve " + to}
		}
		return &stream.Error{Condition: stream.ImproperAddressing, Text: "the pair " + from + " → " + to + " is not authenticated on this stream"}
	}
	return nil
}
