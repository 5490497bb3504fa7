package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// epoch is the origin of the send timestamps carried in message bodies
// (monotonic, same process).
var epoch = time.Now()

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error (all calls still run unless ctx ends); a worker whose call returns
// errStop takes no more.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				err := fn(i)
				if err == errStop {
					return
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// progress prints f() to stderr every cfg.progressEvery until stop is
// called.
func progress(cfg *config, f func() string) (stop func()) {
	if cfg.progressEvery <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(cfg.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(cfg.stderr, f())
			}
		}
	}()
	return func() { close(done) }
}

// runLogin measures complete logins: connect, TLS, SASL, bind, initial
// presence and roster get, until the roster answer arrives.
func runLogin(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	var mu sync.Mutex
	lat := make([]int64, 0, cfg.n)
	var ok, rosterErrs atomic.Int64
	n := cfg.n
	var deadline time.Time
	if cfg.duration > 0 {
		n = 1 << 40
		deadline = time.Now().Add(cfg.duration)
	}
	// With --resume, each worker has a configuration of its own with its
	// TLS session cache (and, over WebSocket, its HTTP client): its first
	// login is a full handshake, the next ones offer the session.
	var workers chan *config
	if cfg.resume {
		r.Resume = &Resume{}
		workers = make(chan *config, cfg.concurrency)
		for range cfg.concurrency {
			w := *cfg
			w.sessionCache = tls.NewLRUClientSessionCache(1)
			if w.url != "" {
				w.http = w.httpClient()
			}
			workers <- &w
		}
	}
	// The first login's byte counts, turn by turn (--relay replays them).
	rec := &exchange{}
	var resumed, full atomic.Int64
	stop := progress(cfg, func() string { return fmt.Sprintf("logins: %d", ok.Load()) })
	a := sample(cfg.pid)
	parallel(ctx, n, cfg.concurrency, func(i int) error {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return errStop
		}
		wcfg := cfg
		if workers != nil {
			w := <-workers
			defer func() { workers <- w }()
			wcfg = w
		}
		if i == 0 && !cfg.relay && cfg.url == "" {
			w := *wcfg
			w.rec = rec
			wcfg = &w
		}
		t0 := time.Now()
		var d time.Duration
		var didResume bool
		var err error
		if cfg.relay {
			d, didResume, err = relayLogin(ctx, wcfg, cfg.scriptPlain, cfg.scriptTLS)
		} else {
			var c *conn
			c, err = login(ctx, wcfg, cfg.account(i%cfg.accounts+1), "b"+strconv.Itoa(i))
			if err == nil {
				var rerr bool
				rerr, err = c.presenceAndRoster()
				if rerr {
					rosterErrs.Add(1)
				}
				if err != nil {
					c.c.Close()
				}
			}
			d = time.Since(t0)
			if err == nil {
				didResume = c.tls != nil && c.tls.DidResume
				c.close()
			}
		}
		if err != nil {
			mu.Lock()
			r.fail(err)
			mu.Unlock()
			return err
		}
		ok.Add(1)
		if didResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		mu.Lock()
		lat = append(lat, int64(d))
		mu.Unlock()
		return nil
	})
	b := sample(cfg.pid)
	stop()
	r.measured(a, b, ok.Load())
	r.latencies(lat)
	r.RosterErrors = rosterErrs.Load()
	if !cfg.relay && cfg.url == "" && ok.Load() > 0 {
		r.Exchange = rec.String()
	}
	if cfg.relay {
		r.Exchange = formatTurns(cfg.scriptPlain) + "|" + formatTurns(cfg.scriptTLS)
	}
	if r.Resume != nil {
		r.Resume.Resumed, r.Resume.Full = resumed.Load(), full.Load()
		if t := resumed.Load() + full.Load(); t > 0 {
			r.Resume.ResumedPct = 100 * float64(resumed.Load()) / float64(t)
		}
	}
	return r, r.err()
}

var errStop = errors.New("stop")

func (r *result) err() error {
	if r.Errors > 0 {
		return fmt.Errorf("%d errors, first: %s", r.Errors, r.FirstError)
	}
	return nil
}

// session is a logged-in connection whose reads are owned by its reader
// goroutine.
type session struct {
	*conn
	done chan struct{} // closed when the reader returns
	// end is why the reader returned (a stream error's XML, or the read
	// error); read it only after done is closed.
	end string
	// rostered is closed when the answer to the roster get of announce
	// has arrived; rosterErr (set before) says whether it was an error.
	rostered  chan struct{}
	rosterErr bool
}

// ended returns why the first session that ended did, if one has.
func ended(sess []*session) string {
	for _, s := range sess {
		if s == nil {
			continue
		}
		select {
		case <-s.done:
			return s.jid + ": " + s.end
		default:
		}
	}
	return ""
}

// serve reads until the stream ends. handle (if not nil) sees every
// stanza first and reports whether it dealt with it; serve notes the
// answer to announce's roster get and answers the server's IQs.
func (s *session) serve(handle func(el []byte) bool) {
	defer close(s.done)
	for {
		el, _, err := s.sc.next()
		if err != nil {
			s.end = err.Error()
			return
		}
		switch {
		case isStreamError(el):
			s.end = string(el)
		case handle != nil && handle(el):
		case is(el, "iq"):
			if t := string(attr(el, "type")); string(attr(el, "id")) == "r1" && (t == "result" || t == "error") {
				s.rosterErr = t == "error"
				close(s.rostered)
			} else {
				s.answerIQ(el)
			}
		}
	}
}

// announce sends initial presence and a roster get and waits until the
// reader has the roster answer.
func (s *session) announce(timeout time.Duration) error {
	if err := s.send(initialPresence(s.cfg) + "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.rostered:
		return nil
	case <-s.done:
		return fmt.Errorf("stream ended before the roster answer: %s", s.end)
	case <-t.C:
		return errors.New("no roster answer within --timeout")
	}
}

// openSessions logs in n sessions, each with its reader (handler(i, s)
// builds the reader's handle function, if handler is not nil), initial
// presence and roster get; the slice has nil for sessions that failed.
// The latencies run from connecting to the roster answer.
func openSessions(ctx context.Context, cfg *config, r *result, n int, account func(i int) string, resource func(i int) string, handler func(i int, s *session) func([]byte) bool) ([]*session, []int64) {
	sess := make([]*session, n)
	lat := make([]int64, n)
	var mu sync.Mutex
	var up atomic.Int64
	stop := progress(cfg, func() string { return fmt.Sprintf("sessions: %d/%d", up.Load(), n) })
	defer stop()
	parallel(ctx, n, cfg.concurrency, func(i int) error {
		t0 := time.Now()
		c, err := login(ctx, cfg, account(i), resource(i))
		var s *session
		if err == nil {
			// The reader starts before initial presence, so that nothing
			// the server sends from then on (pending subscription
			// requests, say) escapes the handler.
			s = &session{conn: c, done: make(chan struct{}), rostered: make(chan struct{})}
			var h func([]byte) bool
			if handler != nil {
				h = handler(i, s)
			}
			go s.serve(h)
			if err = s.announce(cfg.timeout); err != nil {
				c.c.Close()
				<-s.done
			}
		}
		if err != nil {
			mu.Lock()
			r.fail(fmt.Errorf("session %d: %w", i, err))
			mu.Unlock()
			return err
		}
		lat[i] = int64(time.Since(t0))
		sess[i] = s
		up.Add(1)
		return nil
	})
	return sess, lat
}

// closeAll ends every session politely and waits for the readers.
func closeAll(sess []*session, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, s := range sess {
		if s == nil {
			continue
		}
		wg.Go(func() {
			s.c.SetWriteDeadline(time.Now().Add(timeout))
			s.send("</stream:stream>")
			select {
			case <-s.done:
			case <-time.After(timeout):
			}
			s.c.Close()
			<-s.done
		})
	}
	wg.Wait()
}

// runIdle holds N authenticated sessions and reports the server's memory.
func runIdle(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	var before int64
	if cfg.pid > 0 {
		var err error
		if before, err = procRSS(cfg.pid); err != nil {
			return nil, err
		}
	}
	a := sample(cfg.pid)
	sess, lat := openSessions(ctx, cfg, r, cfg.n,
		func(i int) string { return cfg.account(i%cfg.accounts + 1) },
		func(i int) string { return "idle" + strconv.Itoa(i) }, nil)
	b := sample(cfg.pid)
	var up int64
	ok := lat[:0]
	for i, s := range sess {
		if s != nil {
			up++
			ok = append(ok, lat[i])
		}
	}
	r.measured(a, b, up)
	r.latencies(ok)
	if cfg.settle > 0 {
		wait(ctx, cfg.settle)
	}
	if cfg.pid > 0 {
		r.RSSBefore = before
		r.RSSAfter, _ = procRSS(cfg.pid)
		if up > 0 {
			r.RSSBytesPerSess = (r.RSSAfter - before) / up
		}
	}
	if cfg.duration > 0 {
		wait(ctx, cfg.duration)
		for _, s := range sess {
			if s != nil {
				select {
				case <-s.done:
				default:
					r.SessionsAliveHold++
				}
			}
		}
		if cfg.pid > 0 {
			r.RSSAfterHold, _ = procRSS(cfg.pid)
		}
		if r.SessionsAliveHold < up {
			r.fail(fmt.Errorf("%d sessions ended during the hold, first %s", up-r.SessionsAliveHold, ended(sess)))
		}
	}
	closeAll(sess, 5*time.Second)
	return r, r.err()
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// peer is one side of a messages pair, or a federation sender or
// receiver.
type peer struct {
	idx     int
	s       *session
	partner *peer
	wake    chan struct{} // the partner received one of our messages
	sent    atomic.Int64  // written by the sender goroutine
	// uniq counts the messages from the partner received, once each:
	// the partner's window is its sequence number minus uniq.
	uniq atomic.Int64

	// Receive side, owned by the reader goroutine until it has returned.
	in        inbox
	misrouted int64
	bounced   int64
	warm      bool // the warm-up message has arrived
	lat       []int64
}

// traffic is one run of numbered messages: each sender writes to its
// partner's full JID, at most --window in flight, and every receiver
// checks off what arrives. messages has n pairs that both send;
// federation n senders on one server and n receivers on another.
type traffic struct {
	cfg   *config
	peers []*peer

	delivered, target atomic.Int64 // messages checked off; how many are expected (0 while sending)
	allIn             chan struct{}
	allInOnce         sync.Once

	// The warm-up (federation): warm counts the receivers whose warm-up
	// message has arrived, and warmed is closed when wantWarm have;
	// bounced is closed at the first bounce, whose XML is firstBounce.
	warm        atomic.Int64
	wantWarm    int64
	warmed      chan struct{}
	bounced     chan struct{}
	bouncedOnce sync.Once
	firstBounce atomic.Pointer[string]
}

// warmBody is the body of a warm-up message, which is not numbered.
const warmBody = "warm-up"

// newTraffic makes np peers, numbered 0…np-1; those for which receives
// is true get their inbox and latencies sized for --count.
func newTraffic(cfg *config, np int, receives func(i int) bool) *traffic {
	x := &traffic{cfg: cfg, peers: make([]*peer, np), allIn: make(chan struct{}), bounced: make(chan struct{})}
	for i := range x.peers {
		p := &peer{idx: i, wake: make(chan struct{}, 1), in: inbox{last: -1}}
		if cfg.duration == 0 && receives(i) {
			p.in.seen = make([]uint64, (cfg.count+63)/64)
			p.lat = make([]int64, 0, cfg.count)
		}
		x.peers[i] = p
	}
	return x
}

func (x *traffic) checkDone() {
	if t := x.target.Load(); t > 0 && x.delivered.Load() >= t {
		x.allInOnce.Do(func() { close(x.allIn) })
	}
}

// receive is the reader's handler of p's session: it checks off the
// partner's messages, counts bounces and notes the warm-up message.
func (x *traffic) receive(p *peer) func([]byte) bool {
	from := p.partner
	return func(el []byte) bool {
		if !is(el, "message") {
			return false
		}
		if string(attr(el, "type")) == "error" {
			p.bounced++
			x.bouncedOnce.Do(func() {
				b := string(el)
				x.firstBounce.Store(&b)
				close(x.bounced)
			})
			return true
		}
		body, ok := childOf(el, bodyOpen, bodyClose)
		if !ok {
			return true // chat states, receipts, anything not ours
		}
		src, seq, ts, ok := parseBody(body)
		if !ok {
			if string(body) == warmBody && !p.warm && x.warmed != nil {
				p.warm = true
				if x.warm.Add(1) == x.wantWarm {
					close(x.warmed)
				}
			}
			return true
		}
		if src != from.idx {
			p.misrouted++
			return true
		}
		if !p.in.record(seq) {
			return true
		}
		p.lat = append(p.lat, int64(time.Since(epoch))-ts)
		p.uniq.Add(1)
		poke(from.wake)
		x.delivered.Add(1)
		x.checkDone()
		return true
	}
}

// run has every sender write its messages (--count, or for --duration)
// and waits until they have all arrived, or for --timeout after the last
// was written. It returns how many were written, how many senders
// stalled, and the first sender's error.
func (x *traffic) run(ctx context.Context, senders []*peer) (sent, stalls int64, sendErr *error) {
	var deadline time.Time
	if x.cfg.duration > 0 {
		deadline = time.Now().Add(x.cfg.duration)
	}
	var wg sync.WaitGroup
	var nstalls atomic.Int64
	var firstErr atomic.Pointer[error]
	for _, p := range senders {
		wg.Go(func() {
			if err := p.send(x.cfg, deadline); err != nil {
				if errors.Is(err, errStall) {
					nstalls.Add(1)
				}
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	for _, p := range senders {
		sent += p.sent.Load()
	}
	x.target.Store(max(sent, 1))
	x.checkDone()
	t := time.NewTimer(x.cfg.timeout)
	select {
	case <-x.allIn:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	return sent, nstalls.Load(), firstErr.Load()
}

// tally adds up what the receivers counted into r, once their readers
// have returned, and returns the latencies.
func (x *traffic) tally(r *result, sent int64) []int64 {
	var lat []int64
	r.Sent = sent
	for _, p := range x.peers {
		r.Delivered += p.uniq.Load()
		r.Duplicates += p.in.dups
		r.Misrouted += p.misrouted
		r.Bounced += p.bounced
		r.OutOfOrder += p.in.outOfOrder
		lat = append(lat, p.lat...)
	}
	if b := x.firstBounce.Load(); b != nil {
		r.bounce = *b
	}
	r.Lost = r.Sent - r.Delivered
	return lat
}

// runMessages runs pairs of sessions sending to each other's full JID and
// checks that each message arrives exactly once.
func runMessages(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	r.Delivery = &Delivery{Window: cfg.window, Batch: cfg.batch}
	np := 2 * cfg.n
	x := newTraffic(cfg, np, func(int) bool { return true })
	peers := x.peers
	for i := 0; i < np; i += 2 {
		peers[i].partner, peers[i+1].partner = peers[i+1], peers[i]
	}
	handler := func(i int, _ *session) func([]byte) bool { return x.receive(peers[i]) }
	var sess []*session
	if cfg.relay {
		sess = relayPairs(ctx, cfg, r, np, handler)
	} else {
		sess, _ = openSessions(ctx, cfg, r, np,
			func(i int) string { return cfg.account(i + 1) },
			func(i int) string { return "bench" }, handler)
	}
	defer closeAll(sess, 5*time.Second)
	for i, s := range sess {
		if s == nil {
			return r, r.err()
		}
		peers[i].s = s
	}
	// Each session's roster answer has arrived, so the server has processed
	// its initial presence (a session's stanzas are handled in order): every
	// partner is online and available before the first message.

	stop := progress(cfg, func() string { return fmt.Sprintf("delivered: %d", x.delivered.Load()) })
	a := sample(cfg.pid)
	sent, stalls, sendErr := x.run(ctx, peers)
	b := sample(cfg.pid)
	stop()
	early := ended(sess)
	// Close the streams and let the readers drain whatever the server still
	// sends before its closing tag, so a late duplicate is counted.
	closeAll(sess, 5*time.Second)
	lat := x.tally(r, sent)
	r.measured(a, b, r.Delivered)
	r.latencies(lat)
	r.verdict(sendErr, stalls, early)
	return r, r.err()
}

// verdict decides ExactlyOnce from the counts and records the failures:
// a sender's error (and how many senders stalled), delivery not exactly
// once, a session that ended early.
func (r *result) verdict(sendErr *error, stalls int64, early string) {
	d := r.Delivery
	d.ExactlyOnce = d.Lost == 0 && d.Duplicates == 0 && d.Misrouted == 0 && d.Bounced == 0 && d.Sent > 0
	if sendErr != nil {
		r.fail(fmt.Errorf("send: %w (%d senders stalled)", *sendErr, stalls))
	}
	if !d.ExactlyOnce {
		err := fmt.Errorf("delivery not exactly once: lost %d, duplicates %d, misrouted %d, bounced %d", d.Lost, d.Duplicates, d.Misrouted, d.Bounced)
		if r.bounce != "" {
			err = fmt.Errorf("%w; first bounce: %s", err, r.bounce)
		}
		r.fail(err)
	}
	if early != "" {
		r.fail(fmt.Errorf("a session ended during the run: %s", early))
	}
}

// inbox checks off the numbered stanzas of one sender at one receiver. It
// is owned by the receiver's reader goroutine.
type inbox struct {
	seen       []uint64 // bitset of sequence numbers
	last       int64    // the last sequence number checked off; -1 before the first
	dups       int64
	outOfOrder int64
}

// record checks off seq and reports whether it is its first delivery.
func (b *inbox) record(seq int64) bool {
	w, bit := seq/64, uint64(1)<<(seq%64)
	for int(w) >= len(b.seen) {
		b.seen = append(b.seen, 0)
	}
	if b.seen[w]&bit != 0 {
		b.dups++
		return false
	}
	b.seen[w] |= bit
	if seq < b.last {
		b.outOfOrder++
	}
	b.last = seq
	return true
}

// poke wakes a sender waiting in pump, or leaves a wake-up for its next
// wait.
func poke(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

var errStall = errors.New("no delivery progress within --timeout")

// send writes messages to the partner's full JID, at most --window in
// flight. The body is "SRC:SEQ:SENTNS", digits only.
func (p *peer) send(cfg *config, deadline time.Time) error {
	prefix := []byte("<message type='chat' to='" + xmlEscape(p.partner.s.jid) + "' id='m")
	src := strconv.AppendInt(nil, int64(p.idx), 10)
	room := func(seq int64) bool { return seq-p.partner.uniq.Load() < int64(cfg.window) }
	return pump(cfg, p.s, &p.sent, deadline, room, p.wake, func(buf []byte, seq int64) []byte {
		buf = append(buf, prefix...)
		buf = append(buf, src...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, "'><body>"...)
		buf = appendStamp(buf, src, seq)
		return append(buf, "</body></message>"...)
	})
}

// appendStamp appends "SRC:SEQ:SENTNS", what identifies a numbered stanza
// and when it was written.
func appendStamp(buf, src []byte, seq int64) []byte {
	buf = append(buf, src...)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, ':')
	return strconv.AppendInt(buf, int64(time.Since(epoch)), 10)
}

// pump writes the stanzas stanza appends for seq = 0, 1, …: --count of
// them, or until deadline if it is set, up to --batch per write; sent
// counts those written. Before each, room(seq) tells whether the window
// lets it go; when not, pump writes what it has batched and waits for a
// wake-up (a receiver got one of ours), failing with errStall after
// --timeout without one.
func pump(cfg *config, s *session, sent *atomic.Int64, deadline time.Time, room func(seq int64) bool, wake <-chan struct{}, stanza func(buf []byte, seq int64) []byte) error {
	buf := make([]byte, 0, 256)
	var timer *time.Timer
	pending := int64(0) // stanzas in buf, not yet written
	flush := func() error {
		if pending == 0 {
			return nil
		}
		err := s.write(buf)
		sent.Add(pending)
		buf, pending = buf[:0], 0
		return err
	}
	for seq := int64(0); ; seq++ {
		if deadline.IsZero() {
			if seq >= int64(cfg.count) {
				return flush()
			}
		} else if time.Now().After(deadline) {
			return flush()
		}
		for !room(seq) {
			if err := flush(); err != nil {
				return err
			}
			if timer == nil {
				timer = time.NewTimer(cfg.timeout)
			} else {
				timer.Reset(cfg.timeout)
			}
			select {
			case <-wake:
				timer.Stop()
			case <-timer.C:
				return errStall
			}
		}
		buf = stanza(buf, seq)
		pending++
		if pending >= int64(cfg.batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// parseBody reads "SRC:SEQ:SENTNS".
func parseBody(b []byte) (src int, seq, ts int64, ok bool) {
	var f [3]int64
	k := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			f[k] = f[k]*10 + int64(c-'0')
		case c == ':' && k < 2:
			k++
		default:
			return 0, 0, 0, false
		}
	}
	if k != 2 {
		return 0, 0, 0, false
	}
	return int(f[0]), f[1], f[2], true
}
