package c2s

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// session is a bound resource (RFC 6120 §7): what the router delivers to.
// It is carried by one connection at a time (conn), and outlives it when
// stream management lets the client resume it (XEP-0198 §5): detached,
// it stays bound and available and its queue keeps what is sent to it,
// until it is resumed on a new connection or its resumption timeout
// ends it.
type session struct {
	srv   *Server
	full  jid.JID   // fixed at bind
	bound time.Time // when it was bound; read-only

	// available and priority are the session's broadcast presence state
	// (RFC 6121 §4.7.2.3), set by the presence module, read by the router.
	available atomic.Bool
	priority  atomic.Int32

	holder atomic.Pointer[holderBox] // SetHolder
	out    *queue                    // drained by the writer of the current connection
	// writer is the connection whose writer drains out: the last one
	// attached. A push wakes it (conn.kick); one that has ended ignores it.
	writer atomic.Pointer[conn]

	// smOn: stream management is enabled (XEP-0198 §3), set once by the
	// reader before <enabled/> is queued.
	smOn atomic.Bool
	// inH counts the stanzas received from the client since <enable/>
	// (XEP-0198 §4), incremented by the reader of the current connection,
	// read by the next one once the previous reader has finished.
	inH atomic.Uint32
	// detached mirrors state == detached, for Detached.
	detached atomic.Bool
	// overflowed: the queue overflowed once, and the session is ending.
	overflowed atomic.Bool
	// closedByClient: the client closed its stream (RFC 6120 §4.4), after
	// reading everything written before its closing tag.
	closedByClient atomic.Bool

	mu      sync.Mutex // guards the fields below
	state   sessionState
	cur     *conn // the attached connection; nil unless state is attached
	last    *conn // the connection that carried the session last
	id      string
	timeout time.Duration // how long a detached session waits
	timer   *time.Timer   // ends a detached session
	since   time.Time     // when it was detached
	// Stream management's outbound side (XEP-0198 §4): stanzas written
	// since <enabled/> and not acknowledged yet, the 'h' the client
	// acknowledged last, and whether our <r/> awaits its <a/>.
	counting     bool
	unacked      [][]byte
	acked        uint32
	ackRequested bool

	settleOnce sync.Once
}

// sessionState is where a session is in its life.
type sessionState uint8

const (
	attached sessionState = iota
	detached              // waiting for a resumption
	resuming              // a new connection is taking it over
	ended
)

// sessionAction is what a connection's end means for its session.
type sessionAction uint8

const (
	keepSession   sessionAction = iota // someone else decides: it moved on, or ended already
	endSession                         // end it: unbind, SessionEnded, settle
	detachSession                      // wait for a resumption
)

func newSession(srv *Server, full jid.JID) *session {
	cfg := srv.config()
	s := &session{srv: srv, full: full, bound: time.Now()}
	s.out = newQueue(cfg.Limits.OutboundQueue, cfg.Limits.OutboundQueueBytes, s.wakeWriter)
	return s
}

// wakeWriter has the writer of the session's connection write what was
// queued, starting it if it is not running.
func (s *session) wakeWriter() {
	if c := s.writer.Load(); c != nil {
		c.kick()
	}
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
// without blocking, unless the holder keeps it back. A full queue means
// the client does not read fast enough (or, detached, does not come
// back): the session ends.
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
func (s *session) Detached() bool { return s.detached.Load() }

// DeliverNow implements Client: Deliver without the holder.
func (s *session) DeliverNow(raw []byte) bool {
	reason, ok := s.out.push(raw)
	if ok {
		return true
	}
	if reason == closeEnded || !s.overflowed.CompareAndSwap(false, true) {
		return false
	}
	s.srv.closed[reason].Add(1)
	s.srv.Log.Warn("outbound queue full, closing session", "jid", s.full.String(), "reason", reason.String())
	// Not here: the caller may hold a lock (a holder's) that the
	// handlers of SessionEnded take.
	go s.end(&stream.Error{Condition: stream.PolicyViolation, Text: "outbound queue full"})
	return false
}

// Replace implements router.Session (RFC 6120 §7.7.2.2).
func (s *session) Replace() {
	s.end(&stream.Error{Condition: stream.Conflict, Text: "replaced by a new session"})
}

// end ends the session, from any goroutine, any number of times: it leaves
// the router at once (a session whose writer is stuck on a client that
// stopped reading must not keep swallowing what is sent to it), and its
// connection, if it has one, ends with err and finishes the rest
// (conn.finish); a detached session finishes here.
func (s *session) end(err *stream.Error) {
	s.mu.Lock()
	if s.state == ended {
		s.mu.Unlock()
		return
	}
	s.state = ended
	s.detached.Store(false)
	if s.timer != nil {
		s.timer.Stop()
	}
	cur, id := s.cur, s.id
	s.mu.Unlock()
	s.srv.Router.Unbind(s)
	if cur != nil {
		cur.close(err)
		return
	}
	s.srv.forgetResumable(s, id)
	event.Fire(context.Background(), s.srv.Bus, &SessionEnded{Session: s})
	s.settle()
}

// release is called by the reader of c when c has ended; lost reports
// that it ended without a goodbye (it broke, or stopped answering). It
// says what becomes of the session: nothing if c no longer carries it;
// ended if it was being ended, or c said goodbye, or it cannot resume;
// detached otherwise.
func (s *session) release(c *conn, lost bool) sessionAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != c {
		return keepSession
	}
	s.cur = nil
	switch {
	case s.state == ended:
	case lost && s.id != "":
		s.state = detached
		s.detached.Store(true)
		return detachSession
	default:
		s.state = ended
	}
	s.srv.forgetResumable(s, s.id)
	return endSession
}

// detachDone starts the resumption timeout of a session detached from a
// connection whose writer has finished, unless it was resumed or ended
// meanwhile.
func (s *session) detachDone() {
	s.mu.Lock()
	if s.state != detached {
		s.mu.Unlock()
		return
	}
	s.timer = time.AfterFunc(s.timeout, s.expire)
	s.since = time.Now()
	pending := append([][]byte(nil), s.unacked...)
	s.mu.Unlock()
	pending = s.out.stanzas(pending)
	event.Fire(context.Background(), s.srv.Bus, &SessionDetached{Session: s, Pending: pending})
}

// endOldestDetached ends the account's session that has waited longest
// for a resumption, if it has one, and reports whether it did.
func (srv *Server) endOldestDetached(bare jid.JID) bool {
	var oldest *session
	var since time.Time
	for _, rs := range srv.Router.Sessions(bare) {
		s, ok := rs.(*session)
		if !ok {
			continue
		}
		s.mu.Lock()
		waiting, t := s.state == detached, s.since
		s.mu.Unlock()
		if waiting && (oldest == nil || t.Before(since)) {
			oldest, since = s, t
		}
	}
	if oldest == nil {
		return false
	}
	srv.Log.Info("session waiting for resumption ended for a new one", "jid", oldest.full.String())
	oldest.end(nil)
	return true
}

// expire ends a session whose resumption timeout passed.
func (s *session) expire() {
	s.mu.Lock()
	waiting := s.state == detached
	s.mu.Unlock()
	if waiting {
		s.srv.Log.Info("session not resumed in time", "jid", s.full.String())
		s.end(nil)
	}
}

// settle handles, once, what an ended session was sent and its client
// never acknowledged (XEP-0198 §5: the stanzas written since the client's
// last <a/> — unless the client closed its stream, having read them —
// and those still queued): messages are stored offline (or
// bounced where they cannot be), requests answered with an error, the
// rest dropped (router.Router.Undelivered); carbons and archive results,
// from the account itself, are dropped. Without stream management
// there is no telling what arrived; nothing is done.
func (s *session) settle() {
	s.settleOnce.Do(func() {
		rest := s.out.close()
		s.SetHolder(nil)
		if !s.smOn.Load() {
			return
		}
		s.mu.Lock()
		pending := s.unacked
		s.unacked = nil
		s.mu.Unlock()
		if s.closedByClient.Load() {
			// It had what was written; handing it back would make
			// it arrive twice (clients rarely ack before closing).
			pending = nil
		}
		for _, it := range rest {
			if it.kind == stanzaItem {
				pending = append(pending, it.b)
			}
		}
		ctx := context.Background()
		own := s.full.Bare()
		for _, raw := range pending {
			st, err := stanza.ParseElement(raw)
			if err != nil {
				continue
			}
			if st.Kind == stanza.Message && st.From.Equal(own) {
				// From the account itself: a carbon (XEP-0280) or
				// an archive result (XEP-0313) for this session
				// alone; the message it carries has a home already.
				continue
			}
			s.srv.Router.Undelivered(ctx, st)
		}
		if len(pending) > 0 {
			s.srv.Log.Info("unacknowledged stanzas handled", "jid", s.full.String(), "stanzas", len(pending))
		}
	})
}
