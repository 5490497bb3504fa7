package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The churn scenario: receivers on flaky networks. --n receivers enable
// stream management with resumption (XEP-0198 §3, §5); --n senders, one
// per receiver, send it numbered messages at a steady --rate. Every
// --drop-every (±50 %, each receiver on its own clock) a receiver drops
// its TCP connection abruptly — no closing tag, no TLS close_notify, a
// TCP reset — as a phone losing its network does, connects again,
// authenticates and resumes with <resume previd h/>, where h counts every
// stanza it received on the session. At the end every receiver must have
// had each of its sender's messages exactly once: lost and duplicated
// messages are both failures.
//
// The receiver counts as a real client does and no more: h is every
// message, presence and iq it read since <enabled/>, whatever it was; the
// stanzas the server sends again after <resumed/> are those beyond that
// h, so the client does no deduplication of its own. A stanza the server
// sends twice (an 'h' off by one, a resent stanza already acknowledged)
// is therefore counted twice, and shows up as a duplicate in the
// receiver's bitset; one the server drops, as lost. The receiver keeps
// its own outgoing stanzas (initial presence, the roster get, answers to
// the server's IQs) until the server acknowledges them, and sends again
// those beyond the 'h' of <resumed/>.

const nsSMClient = "urn:xmpp:sm:3"

// resumeHSkew is subtracted from the 'h' a receiver resumes with (down to
// the last 'h' it acknowledged): 0, but the test makes the client claim
// fewer stanzas than it counted, so that the server sends some again, to
// see that the duplicates are caught.
var resumeHSkew uint32

// Churn is what the churn scenario adds to the result.
type Churn struct {
	RatePerSender float64 `json:"rate_per_sender"`
	DropEveryS    float64 `json:"drop_every_s"`
	// Resumptions counts the successful <resume/>s, ResumeFailures the
	// <failed/> answers (the receiver then binds a new session).
	Resumptions    int64 `json:"resumptions"`
	ResumeFailures int64 `json:"resume_failures"`
	// From dropping the connection to <resumed/>: a new TCP connection,
	// TLS, SASL and the resumption.
	ResumeP50Ms float64 `json:"resume_p50_ms"`
	ResumeP99Ms float64 `json:"resume_p99_ms"`
	ResumeMaxMs float64 `json:"resume_max_ms"`
	// AcrossDrops counts messages sent before one of their receiver's
	// drops and received after it: those the resumption carried over.
	AcrossDrops int64 `json:"across_drops"`
}

// churnRun is one run of the churn scenario.
type churnRun struct {
	cfg       *config
	recv      []*churnReceiver
	delivered atomic.Int64
	target    atomic.Int64
	allIn     chan struct{}
	allInOnce sync.Once
}

func (x *churnRun) checkDone() {
	if t := x.target.Load(); t > 0 && x.delivered.Load() >= t {
		x.allInOnce.Do(func() { close(x.allIn) })
	}
}

// churnReceiver is one receiving client. Its fields below c are owned by
// whichever goroutine reads its stream: the reader while one runs, else
// its churn goroutine.
type churnReceiver struct {
	x        *churnRun
	idx      int
	user     string
	resource string

	c        *conn
	done     chan struct{} // closed when the current reader returns
	end      string        // why it returned
	rostered chan struct{} // the roster answer after a (re)bind arrived
	rostOnce *sync.Once

	id       string        // the session's resumption id
	sm       bool          // <enabled/> seen: stanzas count
	h        atomic.Uint32 // stanzas received since <enabled/>, modulo 2^32 (atomic: the final ack reads it)
	hAcked   uint32        // the last 'h' sent in an <a/>
	out      [][]byte      // stanzas sent since <enable/> that the server has not acknowledged
	outAcked uint32        // the server's last 'h'
	protoErr string        // the first protocol error seen (an 'h' too high)

	in          inbox
	uniq        atomic.Int64
	lat         []int64
	droppedAt   int64 // when the last drop was, in ns since epoch; 0 before one
	acrossDrops int64
	misrouted   int64
	bounced     int64
	firstBounce string

	resumeLat []int64
	failures  int64
	failed    string // the first <failed/>
}

// runChurn runs the churn scenario.
func runChurn(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	r.Delivery = &Delivery{Window: 0, Batch: 1}
	r.Churn = &Churn{RatePerSender: cfg.rate, DropEveryS: cfg.dropEvery.Seconds()}
	x := &churnRun{cfg: cfg, allIn: make(chan struct{}), recv: make([]*churnReceiver, cfg.n)}
	for i := range x.recv {
		x.recv[i] = &churnReceiver{x: x, idx: i, user: cfg.account(i + 1), resource: "churn", in: inbox{last: -1}}
	}

	// The receivers log in and enable stream management, then the
	// senders (accounts n+1…2n).
	var mu sync.Mutex
	up := parallel(ctx, cfg.n, cfg.concurrency, func(i int) error {
		rc := x.recv[i]
		c, err := login(ctx, cfg, rc.user, rc.resource)
		if err == nil {
			err = rc.start(c)
		}
		if err != nil {
			mu.Lock()
			r.fail(fmt.Errorf("receiver %d: %w", i, err))
			mu.Unlock()
		}
		return err
	})
	defer x.closeReceivers()
	if up != nil {
		return r, r.err()
	}
	bounces := make([]int64, cfg.n)
	var bounceMu sync.Mutex
	firstBounce := ""
	senders, _ := openSessions(ctx, cfg, r, cfg.n,
		func(i int) string { return cfg.account(cfg.n + i + 1) },
		func(i int) string { return "churn" },
		func(i int, _ *session) func([]byte) bool {
			return func(el []byte) bool {
				if is(el, "message") && string(attr(el, "type")) == "error" {
					bounceMu.Lock()
					bounces[i]++
					if firstBounce == "" {
						firstBounce = string(el)
					}
					bounceMu.Unlock()
					return true
				}
				return false
			}
		})
	defer closeAll(senders, 5*time.Second)
	for _, s := range senders {
		if s == nil {
			return r, r.err()
		}
	}

	stopProgress := progress(cfg, func() string { return fmt.Sprintf("delivered: %d", x.delivered.Load()) })
	a := sample(cfg.pid)

	// The receivers churn while the senders send.
	stopChurn := make(chan struct{})
	var churners sync.WaitGroup
	churnErrs := make([]error, cfg.n)
	for i, rc := range x.recv {
		churners.Go(func() { churnErrs[i] = rc.churn(ctx, stopChurn) })
	}
	var deadline time.Time
	if cfg.duration > 0 {
		deadline = time.Now().Add(cfg.duration)
	}
	var sent atomic.Int64
	var sendErr atomic.Pointer[error]
	var sendWG sync.WaitGroup
	for i, s := range senders {
		sendWG.Go(func() {
			if err := sendSteady(ctx, cfg, s, i, x.recv[i].jid(), deadline, &sent); err != nil {
				sendErr.CompareAndSwap(nil, &err)
			}
		})
	}
	sendWG.Wait()
	close(stopChurn)
	churners.Wait()
	x.target.Store(max(sent.Load(), 1))
	x.checkDone()
	t := time.NewTimer(cfg.timeout)
	select {
	case <-x.allIn:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	b := sample(cfg.pid)
	stopProgress()

	// Polite closes, and the readers drain what the servers still send,
	// so that a late duplicate is counted.
	early := ended(senders)
	x.closeReceivers()
	closeAll(senders, 5*time.Second)

	d := r.Delivery
	d.Sent = sent.Load()
	var lat, resume []int64
	for i, rc := range x.recv {
		d.Delivered += rc.uniq.Load()
		d.Duplicates += rc.in.dups
		d.OutOfOrder += rc.in.outOfOrder
		d.Misrouted += rc.misrouted
		d.Bounced += rc.bounced + bounces[i]
		lat = append(lat, rc.lat...)
		resume = append(resume, rc.resumeLat...)
		r.Churn.Resumptions += int64(len(rc.resumeLat))
		r.Churn.ResumeFailures += rc.failures
		r.Churn.AcrossDrops += rc.acrossDrops
		if rc.failed != "" {
			r.fail(fmt.Errorf("receiver %d: resumption failed: %s", i, rc.failed))
		}
		if rc.protoErr != "" {
			r.fail(fmt.Errorf("receiver %d: %s", i, rc.protoErr))
		}
		if churnErrs[i] != nil {
			r.fail(fmt.Errorf("receiver %d: %w", i, churnErrs[i]))
		}
		if firstBounce == "" {
			firstBounce = rc.firstBounce
		}
	}
	d.Lost = d.Sent - d.Delivered
	r.bounce = firstBounce
	r.measured(a, b, d.Delivered)
	r.latencies(lat)
	if len(resume) > 0 {
		var q result
		q.latencies(resume)
		r.Churn.ResumeP50Ms, r.Churn.ResumeP99Ms, r.Churn.ResumeMaxMs = q.LatP50Ms, q.LatP99Ms, q.LatMaxMs
	}
	r.verdict(sendErr.Load(), 0, early)
	if r.Churn.Resumptions == 0 && d.Sent > 0 {
		r.fail(errors.New("no resumption happened: --drop-every is longer than the run"))
	}
	return r, r.err()
}

// jid is the receiver's full JID, the same on every connection.
func (rc *churnReceiver) jid() string { return rc.c.jid }

// closeReceivers ends each receiver's stream politely, acknowledging
// what it received first as a client does (else the server would store
// the unacknowledged messages offline, XEP-0198 §5, for a later login),
// and waits for its reader; a receiver already closed is left alone.
func (x *churnRun) closeReceivers() {
	var wg sync.WaitGroup
	for _, rc := range x.recv {
		if rc.c == nil || rc.done == nil {
			continue
		}
		c, done := rc.c, rc.done
		rc.c = nil
		wg.Go(func() {
			c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.write(append(ackElement(rc.h.Load()), "</stream:stream>"...))
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			c.c.Close()
			<-done
		})
	}
	wg.Wait()
}

// start enables stream management with resumption on c, a freshly bound
// stream, sends initial presence and a roster get, starts the reader and
// waits for the roster answer.
func (rc *churnReceiver) start(c *conn) error {
	if !bytes.Contains(c.feat, []byte(nsSMClient)) {
		return errors.New("the server offers no stream management (urn:xmpp:sm:3)")
	}
	if err := c.send("<enable xmlns='" + nsSMClient + "' resume='true'/>"); err != nil {
		return err
	}
	rc.sm, rc.out, rc.outAcked, rc.hAcked = false, nil, 0, 0
	rc.h.Store(0)
	for {
		el, err := c.nextTop()
		if err != nil {
			return err
		}
		if is(el, "failed") {
			return fmt.Errorf("<enable/> refused: %s", el)
		}
		if !is(el, "enabled") {
			rc.handle(c, el) // not counted: before <enabled/>
			continue
		}
		if r := string(attr(el, "resume")); r != "true" && r != "1" || len(attr(el, "id")) == 0 {
			return fmt.Errorf("the server does not allow resumption: %s", el)
		}
		rc.id = string(attr(el, "id"))
		break
	}
	rc.sm = true
	c.c.SetDeadline(time.Time{})
	for _, s := range []string{"<presence/>", "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"} {
		if err := rc.sendStanza(c, []byte(s)); err != nil {
			return err
		}
	}
	rc.rostered, rc.rostOnce = make(chan struct{}), new(sync.Once)
	rc.attach(c)
	t := time.NewTimer(rc.x.cfg.timeout)
	defer t.Stop()
	select {
	case <-rc.rostered:
		return nil
	case <-rc.done:
		return fmt.Errorf("stream ended before the roster answer: %s", rc.end)
	case <-t.C:
		return errors.New("no roster answer within --timeout")
	}
}

// attach makes c the receiver's connection and starts its reader.
func (rc *churnReceiver) attach(c *conn) {
	rc.c, rc.done, rc.end = c, make(chan struct{}), ""
	go rc.serve(c, rc.done)
}

func (rc *churnReceiver) serve(c *conn, done chan struct{}) {
	defer close(done)
	for {
		el, _, err := c.sc.next()
		if err != nil {
			if rc.end == "" {
				rc.end = err.Error()
			}
			return
		}
		rc.handle(c, el)
	}
}

// sendStanza writes a stanza and keeps it until the server acknowledges
// it.
func (rc *churnReceiver) sendStanza(c *conn, b []byte) error {
	if rc.sm {
		rc.out = append(rc.out, b)
	}
	return c.write(b)
}

// acked takes the server's 'h' for the stanzas we sent.
func (rc *churnReceiver) acked(h uint32) {
	n := h - rc.outAcked
	if int64(n) > int64(len(rc.out)) {
		if rc.protoErr == "" {
			rc.protoErr = fmt.Sprintf("the server acknowledged %d stanzas, %d more than were sent", h, int64(n)-int64(len(rc.out)))
		}
		n = uint32(len(rc.out))
	}
	rc.out = rc.out[n:]
	rc.outAcked = h
}

// handle counts one element from the server and checks off our messages.
func (rc *churnReceiver) handle(c *conn, el []byte) {
	switch {
	case isStreamError(el):
		rc.end = string(el)
		return
	case is(el, "r") && string(attr(el, "xmlns")) == nsSMClient:
		rc.hAcked = rc.h.Load()
		c.write(ackElement(rc.hAcked))
		return
	case is(el, "a") && string(attr(el, "xmlns")) == nsSMClient:
		if h, err := strconv.ParseUint(string(attr(el, "h")), 10, 32); err == nil {
			rc.acked(uint32(h))
		}
		return
	case is(el, "message"), is(el, "presence"), is(el, "iq"):
		if rc.sm {
			rc.h.Add(1)
		}
	default:
		return
	}
	switch {
	case is(el, "iq"):
		t := string(attr(el, "type"))
		if string(attr(el, "id")) == "r1" && (t == "result" || t == "error") {
			if rc.rostOnce != nil {
				rc.rostOnce.Do(func() { close(rc.rostered) })
			}
		} else if t == "get" || t == "set" {
			rc.sendStanza(c, iqAnswer(el))
		}
	case is(el, "message"):
		if string(attr(el, "type")) == "error" {
			rc.bounced++
			if rc.firstBounce == "" {
				rc.firstBounce = string(el)
			}
			return
		}
		body, ok := childOf(el, bodyOpen, bodyClose)
		if !ok {
			return
		}
		src, seq, ts, ok := parseBody(body)
		if !ok {
			return
		}
		if src != rc.idx {
			rc.misrouted++
			return
		}
		if !rc.in.record(seq) {
			return
		}
		if ts < rc.droppedAt {
			rc.acrossDrops++
		}
		rc.lat = append(rc.lat, int64(time.Since(epoch))-ts)
		rc.uniq.Add(1)
		rc.x.delivered.Add(1)
		rc.x.checkDone()
	}
}

// iqAnswer is a client's answer to an iq get or set from the server: a
// result to a ping or a roster push, service-unavailable to anything else.
func iqAnswer(el []byte) []byte {
	id, from := attr(el, "id"), attr(el, "from")
	to := ""
	if len(from) > 0 {
		to = " to='" + string(from) + "'"
	}
	if bytes.Contains(el, []byte("urn:xmpp:ping")) || string(attr(el, "type")) == "set" && bytes.Contains(el, []byte("jabber:iq:roster")) {
		return []byte("<iq type='result' id='" + string(id) + "'" + to + "/>")
	}
	return []byte("<iq type='error' id='" + string(id) + "'" + to + "><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

// ackElement is <a h/> (XEP-0198 §4).
func ackElement(h uint32) []byte {
	b := strconv.AppendUint([]byte("<a xmlns='"+nsSMClient+"' h='"), uint64(h), 10)
	return append(b, "'/>"...)
}

// churn drops and resumes the receiver's connection every --drop-every
// (±50 %) until stop is closed.
func (rc *churnReceiver) churn(ctx context.Context, stop <-chan struct{}) error {
	cfg := rc.x.cfg
	t := time.NewTimer(jitter(cfg.dropEvery))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-rc.done:
			return fmt.Errorf("stream ended by the server: %s", rc.end)
		case <-t.C:
		}
		rc.drop()
		t0 := time.Now()
		ok, err := rc.resume(ctx)
		if err != nil {
			return err
		}
		if ok {
			rc.resumeLat = append(rc.resumeLat, int64(time.Since(t0)))
		}
		t.Reset(jitter(cfg.dropEvery))
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

// drop cuts the connection off as a lost network does: the TCP
// connection is reset under TLS, no closing tag, no close_notify. It
// returns once the reader has stopped.
func (rc *churnReceiver) drop() {
	if tc, ok := rc.c.raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	rc.c.raw.Close()
	<-rc.done
	rc.droppedAt = int64(time.Since(epoch))
}

// resume connects again and resumes the session (XEP-0198 §5) with the
// 'h' of every stanza received. After <resumed/>, our stanzas the server
// did not have are sent again, and the reader takes over: the server's
// own resent stanzas come first. On <failed/>, the receiver binds a new
// session and enables stream management again (ok false).
func (rc *churnReceiver) resume(ctx context.Context) (ok bool, err error) {
	cfg := rc.x.cfg
	c, err := connect(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("reconnect: %w", err)
	}
	if err := c.auth(rc.user); err != nil {
		c.c.Close()
		return false, fmt.Errorf("reconnect: %w", err)
	}
	if !bytes.Contains(c.feat, []byte(nsSMClient)) {
		c.c.Close()
		return false, errors.New("no stream management offered after authentication")
	}
	h := max(rc.h.Load()-min(resumeHSkew, rc.h.Load()), rc.hAcked) // never below an 'h' acknowledged
	rc.h.Store(h)
	if err := c.send("<resume xmlns='" + nsSMClient + "' previd='" + xmlEscape(rc.id) + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>"); err != nil {
		c.c.Close()
		return false, err
	}
	el, err := c.nextTop()
	if err != nil {
		c.c.Close()
		return false, fmt.Errorf("resume: %w", err)
	}
	switch {
	case is(el, "resumed"):
		h, err := strconv.ParseUint(string(attr(el, "h")), 10, 32)
		if err != nil {
			c.c.Close()
			return false, fmt.Errorf("resumed without a valid 'h': %s", el)
		}
		rc.acked(uint32(h))
		c.jid = rc.c.jid
		c.c.SetDeadline(time.Time{})
		for _, b := range rc.out {
			if err := c.write(b); err != nil {
				break // the reader will see the connection fail
			}
		}
		rc.attach(c)
		return true, nil
	case is(el, "failed"):
		rc.failures++
		if rc.failed == "" {
			rc.failed = string(el)
		}
		jid := rc.c.jid
		if err := c.bind(rc.resource); err != nil {
			c.c.Close()
			return false, fmt.Errorf("bind after <failed/>: %w", err)
		}
		if c.jid != jid {
			c.c.Close()
			return false, fmt.Errorf("bound %s after <failed/>, not %s", c.jid, jid)
		}
		return false, rc.start(c)
	}
	c.c.Close()
	return false, fmt.Errorf("unexpected answer to <resume/>: %s", el)
}

// sendSteady has sender s send numbered messages to the full JID to at
// --rate per second: --count of them, or until deadline if it is set.
// The body is "SRC:SEQ:SENTNS", SRC being the pair's index.
func sendSteady(ctx context.Context, cfg *config, s *session, idx int, to string, deadline time.Time, sent *atomic.Int64) error {
	prefix := []byte("<message type='chat' to='" + xmlEscape(to) + "' id='c")
	src := strconv.AppendInt(nil, int64(idx), 10)
	interval := time.Duration(float64(time.Second) / cfg.rate)
	// Each sender starts at its own phase within the first interval.
	start := time.Now().Add(time.Duration(rand.Int64N(int64(interval) + 1)))
	buf := make([]byte, 0, 512)
	for seq := int64(0); ; {
		if deadline.IsZero() {
			if seq >= int64(cfg.count) {
				return nil
			}
		} else if time.Now().After(deadline) {
			return nil
		}
		due := start.Add(time.Duration(seq) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Everything due by now, in one write.
		now := time.Since(start)
		buf = buf[:0]
		n := 0
		for {
			buf = append(buf, prefix...)
			buf = append(buf, src...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, seq, 10)
			buf = append(buf, "'><body>"...)
			buf = appendStamp(buf, src, seq)
			buf = append(buf, "</body></message>"...)
			seq++
			n++
			if time.Duration(seq)*interval > now || deadline.IsZero() && seq >= int64(cfg.count) {
				break
			}
		}
		err := s.write(buf)
		sent.Add(int64(n))
		if err != nil {
			return err
		}
	}
}
