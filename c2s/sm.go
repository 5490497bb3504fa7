package c2s

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// nsSM is stream management's namespace (XEP-0198 v1.6).
const nsSM = "urn:xmpp:sm:3"

// nsStanzas is the namespace of stanza error conditions (RFC 6120 §8.3.3).
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// ackRequestAfter is how many unacknowledged stanzas make the server ask
// for an acknowledgement (XEP-0198 §4: when, is the server's policy).
const ackRequestAfter = 5

// goneRetention is how long the 'h' of a session that can no longer be
// resumed is kept for the <failed/> of a late resumption (XEP-0198 §5
// v1.6), and goneMax how many are kept at most.
const (
	goneRetention = time.Hour
	goneMax       = 10000
)

var requestAck = []byte("<r xmlns='" + nsSM + "'/>")

// smFailed builds <failed/> with a stanza error condition (XEP-0198 §3,
// §5) and, when h ≥ 0, the 'h' of the session (v1.6).
func smFailed(condition string, h int64) []byte {
	b := []byte("<failed xmlns='" + nsSM + "'")
	if h >= 0 {
		b = append(b, " h='"...)
		b = strconv.AppendInt(b, h, 10)
		b = append(b, '\'')
	}
	return append(b, "><"+condition+" xmlns='"+nsStanzas+"'/></failed>"...)
}

func ackElement(h uint32) []byte {
	b := []byte("<a xmlns='" + nsSM + "' h='")
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// parseH reads an 'h' attribute: an unsigned 32-bit count (XEP-0198 §4).
func parseH(v string) (uint32, bool) {
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// streamManagement handles the stream management elements of a bound
// session (XEP-0198): <enable/> (§3), <r/> and <a/> (§4). What it answers
// goes through the session's queue, in order with the stanzas.
func (c *conn) streamManagement(el *stream.Element) error {
	sess := c.sess
	switch el.Name.Local {
	case "enable":
		cfg := c.srv.config().C2S
		if !cfg.StreamManagement || sess.smOn.Load() {
			// §3: enabling twice is an unexpected request.
			return sess.nonza(smFailed(stanza.UnexpectedRequest, -1), nonzaItem)
		}
		var id string
		var timeout time.Duration
		if r := el.AttrValue("resume"); (r == "true" || r == "1") && cfg.ResumeTimeout.Duration > 0 {
			timeout = cfg.ResumeTimeout.Duration
			// §5: the client's preferred maximum, within ours.
			if max, err := strconv.ParseUint(el.AttrValue("max"), 10, 32); err == nil && max > 0 {
				timeout = min(time.Duration(max)*time.Second, cfg.MaxResumeTimeout.Duration)
			}
			id = newSMID()
		}
		sess.mu.Lock()
		sess.id, sess.timeout = id, timeout
		sess.mu.Unlock()
		b := []byte("<enabled xmlns='" + nsSM + "'")
		if id != "" {
			c.srv.addResumable(id, sess)
			b = append(b, " id='"+id+"' resume='true' max='"...)
			b = strconv.AppendInt(b, int64(timeout/time.Second), 10)
			b = append(b, '\'')
		}
		b = append(b, "/>"...)
		sess.smOn.Store(true)
		return sess.nonza(b, enabledItem)
	case "r":
		if !sess.smOn.Load() {
			return sess.nonza(smFailed(stanza.UnexpectedRequest, -1), nonzaItem)
		}
		return sess.nonza(ackElement(sess.inH.Load()), ackItem)
	case "a":
		if !sess.smOn.Load() {
			return sess.nonza(smFailed(stanza.UnexpectedRequest, -1), nonzaItem)
		}
		h, ok := parseH(el.AttrValue("h"))
		if !ok {
			return &stream.Error{Condition: stream.InvalidXML, Text: "'h' must be a 32-bit unsigned count"}
		}
		return sess.ack(h)
	case "resume":
		// §5: a bound session is not resumed.
		return sess.nonza(smFailed(stanza.UnexpectedRequest, int64(sess.inH.Load())), nonzaItem)
	default:
		return &stream.Error{Condition: stream.UnsupportedStanzaType}
	}
}

// nonza queues a stream management answer, or ends a stream whose client
// floods the server with requests it does not read the answers to.
func (s *session) nonza(b []byte, k itemKind) error {
	if !s.out.pushNonza(b, k) {
		return &stream.Error{Condition: stream.PolicyViolation, Text: "too many stream management requests unanswered"}
	}
	return nil
}

// handled counts a stanza received from the client (XEP-0198 §4).
func (s *session) handled() {
	if s.smOn.Load() {
		s.inH.Add(1)
	}
}

// ack takes the client's 'h': the stanzas it acknowledges leave the
// unacknowledged list. An 'h' beyond what was sent ends the stream with
// <undefined-condition/> and <handled-count-too-high/> (§4, v1.6); one
// behind an earlier ack changes nothing.
func (s *session) ack(h uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackLocked(h)
}

func (s *session) ackLocked(h uint32) error {
	n := h - s.acked // modulo 2^32 (§4)
	if int32(n) < 0 {
		// Behind what it acknowledged before: a confused client, but
		// nothing it says is news. Keep what it has not acknowledged.
		return nil
	}
	if int64(n) > int64(len(s.unacked)) {
		sent := s.acked + uint32(len(s.unacked))
		return &stream.Error{Condition: "undefined-condition", Text: "acknowledged more stanzas than were sent",
			App: []byte("<handled-count-too-high xmlns='" + nsSM + "' h='" + strconv.FormatUint(uint64(h), 10) + "' send-count='" + strconv.FormatUint(uint64(sent), 10) + "'/>")}
	}
	clear(s.unacked[:n])
	s.unacked = s.unacked[n:]
	if len(s.unacked) == 0 {
		s.unacked = nil
	}
	s.acked = h
	s.ackRequested = false
	return nil
}

// sent is called by the writer with each batch it takes: it returns the
// bytes to write, and records the stanzas written after <enabled/> as
// unacknowledged, asking for an acknowledgement once there are a few.
// over reports more unacknowledged stanzas than the queue may hold: the
// client does not acknowledge, and the session ends.
func (s *session) sent(batch []item, units [][]byte) (_ [][]byte, over bool) {
	if !s.smOn.Load() {
		for _, it := range batch {
			units = append(units, it.b)
		}
		return units, false
	}
	s.mu.Lock()
	for _, it := range batch {
		switch it.kind {
		case enabledItem:
			s.counting = true
		case stanzaItem:
			if s.counting {
				s.unacked = append(s.unacked, it.b)
			}
		}
		units = append(units, it.b)
	}
	if s.counting && !s.ackRequested && len(s.unacked) >= ackRequestAfter {
		s.ackRequested = true
		units = append(units, requestAck)
	}
	over = len(s.unacked) > s.out.maxItems
	s.mu.Unlock()
	return units, over
}

// resume resumes the session named by <resume/> on this connection
// (XEP-0198 §5), after authentication and instead of binding: the
// session must be the authenticated account's; a connection that still
// carries it is cut off; the client's 'h' acknowledges what it received
// and what it did not is sent again after <resumed/>. done reports that
// the connection carries the session now; otherwise the client was
// answered <failed/> and may bind.
func (c *conn) resume(ctx context.Context, el *stream.Element) (done bool, err error) {
	h, ok := parseH(el.AttrValue("h"))
	previd := el.AttrValue("previd")
	if !ok || previd == "" {
		return false, c.write(smFailed(stanza.BadRequest, -1))
	}
	bare := c.username + "@" + c.host
	sess, gone := c.srv.resumable(previd)
	if sess == nil || sess.full.Bare().String() != bare {
		if gone != nil && gone.bare == bare {
			return false, c.write(smFailed(stanza.ItemNotFound, int64(gone.h)))
		}
		return false, c.write(smFailed(stanza.ItemNotFound, -1))
	}
	sess.mu.Lock()
	if sess.state == ended || sess.state == resuming {
		sess.mu.Unlock()
		return false, c.write(smFailed(stanza.ItemNotFound, -1))
	}
	sess.state = resuming
	sess.detached.Store(false)
	if sess.timer != nil {
		sess.timer.Stop()
	}
	old := sess.last
	sess.cur = nil
	sess.mu.Unlock()
	if old != nil {
		// A connection the server still thinks alive: the client has
		// left it.
		old.kill()
		<-old.done
	}
	sess.mu.Lock()
	if sess.state != resuming {
		sess.mu.Unlock() // ended meanwhile
		return false, c.write(smFailed(stanza.ItemNotFound, int64(sess.inH.Load())))
	}
	if sess.timer != nil {
		sess.timer.Stop() // started by the old connection's end
	}
	if err := sess.ackLocked(h); err != nil {
		sess.mu.Unlock()
		sess.end(nil)
		return false, err
	}
	first := make([][]byte, 0, 1+len(sess.unacked))
	resumed := []byte("<resumed xmlns='" + nsSM + "' previd='" + sess.id + "' h='")
	resumed = strconv.AppendUint(resumed, uint64(sess.inH.Load()), 10)
	first = append(first, append(resumed, "'/>"...))
	first = append(first, sess.unacked...)
	sess.ackRequested = false
	sess.state = attached
	sess.cur, sess.last = c, c
	sess.mu.Unlock()
	c.sess, c.resumed = sess, true
	if !c.attach(first) {
		return false, errClosed
	}
	event.Fire(ctx, c.srv.Bus, &SessionResumed{Session: sess})
	return true, nil
}

// errClosed: the connection closed while a resumption handed it the
// session; a lost connection, so the session waits again.
var errClosed = errors.New("c2s: connection closed during resumption")

// newSMID is a resumption id: random, unguessable (XEP-0198 §5 leaves
// its form to the server).
func newSMID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// goneSession is what is kept of a session that can no longer be
// resumed: its account and its 'h', for <failed h/>.
type goneSession struct {
	bare string
	h    uint32
	at   time.Time
}

// addResumable records a resumable session under its id.
func (s *Server) addResumable(id string, sess *session) {
	s.smMu.Lock()
	s.smSessions[id] = sess
	s.smMu.Unlock()
}

// resumable finds the session of a resumption id, or what is left of it.
func (s *Server) resumable(id string) (*session, *goneSession) {
	s.smMu.Lock()
	defer s.smMu.Unlock()
	if sess := s.smSessions[id]; sess != nil {
		return sess, nil
	}
	if g, ok := s.smGone[id]; ok && time.Since(g.at) < goneRetention {
		return nil, &g
	}
	return nil, nil
}

// forgetResumable removes an ending session, resumable by id ("" if it
// is not), from the resumable ones, keeping its 'h' for a while.
func (s *Server) forgetResumable(sess *session, id string) {
	if id == "" {
		return
	}
	s.smMu.Lock()
	defer s.smMu.Unlock()
	if s.smSessions[id] != sess {
		return
	}
	delete(s.smSessions, id)
	now := time.Now()
	if len(s.smGone) >= goneMax {
		for id, g := range s.smGone {
			if now.Sub(g.at) >= goneRetention || len(s.smGone) >= goneMax {
				delete(s.smGone, id)
			}
		}
	}
	s.smGone[id] = goneSession{bare: sess.full.Bare().String(), h: sess.inH.Load(), at: now}
}
