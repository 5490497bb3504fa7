package s2s

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// linkState is where an outgoing stream is in its life.
type linkState uint8

const (
	connecting linkState = iota // being set up: stanzas wait in the queue
	up                          // authenticated: the writer sends the queue
	failed                      // the last attempt failed: bounce until retryAt
	closed                      // removed from the Federation: look up again
)

// link is the outgoing stream of one (local, remote) pair (RFC 6120
// §10.4): one goroutine (run) sets it up, writes what is queued, and
// closes it when idle.
type link struct {
	f    *Federation
	p    pair
	wake chan struct{} // a token when something was queued

	mu       sync.Mutex // guards the fields below
	state    linkState
	queue    []*stanza.Stanza
	failures int       // failed attempts in a row
	retryAt  time.Time // while failed: bounce until then
	lastErr  *failure
	c        *conn
	method   string // "EXTERNAL" or "dialback"
	bidi     bool   // the peer may send its stanzas on it (XEP-0288)
	maxBytes int    // the peer's max-bytes (XEP-0478); 0: none
	since    time.Time

	sent atomic.Int64 // stanzas written
}

func newLink(f *Federation, p pair) *link {
	l := &link{f: f, p: p, wake: make(chan struct{}, 1), state: connecting}
	f.wg.Add(1)
	go l.run()
	return l
}

// send queues s for the stream, or bounces it; false when the link was
// closed meanwhile and the caller must look the pair's link up again.
func (l *link) send(s *stanza.Stanza) bool {
	l.mu.Lock()
	switch l.state {
	case closed:
		l.mu.Unlock()
		return false
	case failed:
		if l.f.now().Before(l.retryAt) {
			e := l.lastErr
			l.mu.Unlock()
			l.f.bounce(s, bounceError(e))
			return true
		}
		l.state = connecting
		l.f.wg.Add(1)
		go l.run()
	}
	if l.tooLarge(s) {
		l.mu.Unlock()
		l.f.bounce(s, tooLargeError())
		return true
	}
	if len(l.queue) >= l.f.settings().MaxQueue {
		l.mu.Unlock()
		l.f.bounce(s, &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "outgoing queue to " + l.p.remote + " is full"})
		return true
	}
	l.queue = append(l.queue, s)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// tooLarge reports whether s is larger than the peer accepts (its
// max-bytes, XEP-0478), which is never sent; l.mu must be held.
func (l *link) tooLarge(s *stanza.Stanza) bool {
	return l.maxBytes > 0 && len(s.Raw) > l.maxBytes
}

// tooLargeError is the bounce of a stanza larger than the peer accepts
// (XEP-0478 §4: policy-violation, without 'by').
func tooLargeError() *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: stanza.PolicyViolation, Text: "stanza larger than the remote server accepts"}
}

// bounceError is the stanza error for stanzas that could not be sent
// because of e (RFC 6120 §8.3.3.16, §8.3.3.17).
func bounceError(e *failure) *stanza.Error {
	text := "Server-to-server connection failed: " + e.reason
	if e.refused {
		return &stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError, Text: text}
	}
	if e.opened {
		return &stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: text}
	}
	return &stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound, Text: text}
}

// run sets the stream up and serves it until it fails or idles out; a
// stream lost with stanzas still queued is set up again.
func (l *link) run() {
	defer l.f.wg.Done()
	l.connect()
}

func (l *link) connect() {
	for {
		c, info, err := l.f.connectOut(l.p)
		if err != nil {
			l.fail(err)
			return
		}
		l.mu.Lock()
		l.state, l.c, l.method, l.maxBytes, l.since, l.failures, l.lastErr = up, c, info.method, info.maxBytes, l.f.now(), 0, nil
		l.bidi = info.bidi
		n := len(l.queue)
		l.mu.Unlock()
		l.f.log.Info("s2s stream authenticated", "direction", "out", "local", l.p.local, "remote", l.p.remote,
			"method", info.method, "bidi", info.bidi, "tls", c.tlsVersion(), "queued", n)
		done := make(chan struct{})
		var readErr error
		go func() {
			readErr = l.read(c)
			close(done)
		}()
		if !l.serve(c, done, func() error { return readErr }, true) {
			return
		}
	}
}

// attachBidi makes an incoming bidirectional stream (XEP-0288) carry our
// stanzas for p, an authenticated pair of it, unless p has a stream of
// its own already.
func (f *Federation) attachBidi(s *inStream, p pair) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.links[p] != nil || f.lns == nil {
		return
	}
	l := &link{f: f, p: p, wake: make(chan struct{}, 1), state: up, c: s.c, method: "bidi", since: f.now()}
	f.links[p] = l
	f.wg.Add(1)
	go l.runBidi(s.c, s.done)
	f.log.Info("s2s stream bidirectional", "direction", "in", "local", p.local, "remote", p.remote)
}

// runBidi serves the pair over an incoming stream the peer made
// bidirectional (XEP-0288), which ends with done; stanzas still queued
// when it ends go out on a stream of our own.
func (l *link) runBidi(c *conn, done <-chan struct{}) {
	defer l.f.wg.Done()
	if l.serve(c, done, func() error { return errors.New("its stream ended") }, false) {
		l.connect()
	}
}

// fail records a failed attempt and bounces what waited for it.
func (l *link) fail(err error) {
	var fe *failure
	if !errors.As(err, &fe) {
		fe = &failure{reason: err.Error()}
	}
	s := l.f.settings()
	l.mu.Lock()
	l.failures++
	delay := s.RetryDelay.Duration << min(l.failures-1, 16)
	delay = min(delay, s.MaxRetryDelay.Duration)
	delay = delay/2 + rand.N(delay/2+1) // jitter: domains do not retry in step
	l.state, l.retryAt, l.lastErr, l.c = failed, l.f.now().Add(delay), fe, nil
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.f.log.Warn("s2s stream failed", "local", l.p.local, "remote", l.p.remote, "error", fe.reason,
		"bounced", len(q), "retry_in", delay.Round(time.Second).String())
	e := bounceError(fe)
	for _, st := range q {
		l.f.bounce(st, e)
	}
}

// serve writes queued stanzas to c until the stream ends (done, with
// why()) or idles out. own: the stream is ours to close; a bidirectional
// incoming stream (XEP-0288) is the peer's, and only stops carrying our
// stanzas. It reports whether the stream must be set up again (it ended
// with stanzas still queued).
func (l *link) serve(c *conn, done <-chan struct{}, why func() error, own bool) (again bool) {
	s := l.f.settings()
	idle := time.NewTimer(s.IdleTimeout.Duration)
	keep := time.NewTimer(s.Keepalive.Duration)
	defer idle.Stop()
	defer keep.Stop()
	w := bufio.NewWriterSize(nil, 8192)
	var batch, large []*stanza.Stanza
	for {
		select {
		case <-l.wake:
			l.mu.Lock()
			batch, large = batch[:0], large[:0]
			for _, st := range l.queue {
				// What was queued before the peer's limit was known
				// is held to it too.
				if l.tooLarge(st) {
					large = append(large, st)
				} else {
					batch = append(batch, st)
				}
			}
			clear(l.queue)
			l.queue = l.queue[:0]
			l.mu.Unlock()
			for _, st := range large {
				l.f.bounce(st, tooLargeError())
			}
			clear(large)
			if len(batch) == 0 {
				continue
			}
			err := writeBatch(c, w, batch, writeTimeout)
			clear(batch)
			if err != nil {
				c.abort()
				<-done
				l.f.log.Info("s2s stream lost", "local", l.p.local, "remote", l.p.remote, "error", err)
				return l.lost()
			}
			l.sent.Add(int64(len(batch)))
			idle.Reset(s.IdleTimeout.Duration)
			keep.Reset(s.Keepalive.Duration)
		case <-keep.C:
			// RFC 6120 §4.6.1: a whitespace keepalive.
			c.writeString(" ")
			keep.Reset(s.Keepalive.Duration)
		case <-idle.C:
			if l.f.removeLink(l, func() bool { return len(l.queue) == 0 }) {
				if own {
					c.close()
					<-done
				}
				l.f.log.Debug("s2s stream closed: idle", "local", l.p.local, "remote", l.p.remote)
				return false
			}
			idle.Reset(s.IdleTimeout.Duration)
		case <-done:
			if own {
				c.abort()
			}
			l.f.log.Info("s2s stream ended by the remote server", "local", l.p.local, "remote", l.p.remote, "reason", why())
			return l.lost()
		case <-l.f.ctx.Done():
			// Shutting down: what is queued goes out, then the stream ends.
			l.f.removeLink(l, func() bool { return true })
			l.mu.Lock()
			batch = append(batch[:0], l.queue...)
			l.queue = nil
			l.mu.Unlock()
			writeBatch(c, w, batch, time.Second)
			if own {
				c.close()
				<-done
			}
			return false
		}
	}
}

// writeBatch writes stanzas to c in one write, each in the jabber:server
// namespace, within timeout.
func writeBatch(c *conn, w *bufio.Writer, batch []*stanza.Stanza, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w.Reset(c.nc)
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	for _, st := range batch {
		w.Write(withoutNS(st.Raw, stanza.StartLen(st.Raw), nsClient))
	}
	return w.Flush()
}

// lost handles a stream that ended: with stanzas queued it is set up
// again, else the link goes.
func (l *link) lost() (again bool) {
	if l.f.removeLink(l, func() bool { return len(l.queue) == 0 }) {
		return false
	}
	l.mu.Lock()
	l.state, l.c = connecting, nil
	l.mu.Unlock()
	return l.f.ctx.Err() == nil
}

// read reads the peer's side of an outgoing stream until it ends. On a
// bidirectional stream (XEP-0288) the peer's stanzas from the remote
// domain to the local one come this way; otherwise nothing but
// whitespace and the stream's end is expected, and anything else is
// logged and dropped.
func (l *link) read(c *conn) error {
	for {
		el, err := c.r.Next()
		if err != nil {
			if errors.Is(err, stream.ErrClosed) {
				return errors.New("closed its stream")
			}
			return err
		}
		if el.Name.Space == stream.NS && el.Name.Local == "error" {
			return errors.New("stream error: " + streamErrorText(el.Raw))
		}
		if l.bidi && el.Name.Space == nsServer && stanza.KindOf(el.Name.Local) != 0 {
			if se := l.f.acceptStanza(el, l.checkBidi); se != nil {
				l.f.log.Warn("s2s: refused a stanza on a bidirectional stream", "remote", l.p.remote, "error", se.Error())
				c.fail(se)
				return se
			}
			continue
		}
		l.f.log.Debug("s2s: dropping an element on an outgoing stream", "remote", l.p.remote, "element", el.Name.Local)
	}
}

// checkBidi accepts on a bidirectional outgoing stream only stanzas from
// the remote domain to the local one: the only pair it authenticated
// (XEP-0288 §2.2: by the peer's certificate).
func (l *link) checkBidi(from, to string) *stream.Error {
	switch {
	case from != l.p.remote:
		return &stream.Error{Condition: stream.InvalidFrom, Text: from + " is not authenticated on this stream"}
	case to != l.p.local:
		return &stream.Error{Condition: stream.ImproperAddressing, Text: "this stream carries stanzas for " + l.p.local + " only"}
	}
	return nil
}
