package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The mam scenario: how long a Message Archive Management query (XEP-0313,
// urn:xmpp:mam:2, paged with RSM, XEP-0059) takes on an account whose
// archive holds --fill messages. The owner is account PREFIX1; --n senders
// (PREFIX2…) first send it --fill messages through the server (each
// sender --fill/n, at most --window in flight, --batch per write), every
// one checked off at the owner as in the messages scenario; the server
// archives each (the fill's rate and server CPU per message are reported,
// not measured as the queries are). Then the owner pages back through its
// archive, as a client scrolling up its history does: --queries queries
// of --page messages each, one at a time, the first for the latest page
// (<before/>) and each next one for the page before the previous one's
// <first/>, back to the latest once a <fin complete='true'/> says there
// is no more. A query's latency runs from sending the IQ to its result,
// all the page's <result/> messages having come before; five queries
// before the measured ones warm up.

// MAM is what the mam scenario adds to the result.
type MAM struct {
	Fill           int64   `json:"fill"`
	FillS          float64 `json:"fill_s"`
	FillRatePerS   float64 `json:"fill_rate_per_s"`
	FillCPUUsPerOp float64 `json:"fill_server_cpu_us_per_msg,omitempty"`
	Page           int     `json:"page"`
	Queries        int64   `json:"queries"`
	// Results is the number of archived messages the measured queries
	// returned; Wrapped how many times the paging reached the start of
	// the archive and began again at the latest page.
	Results int64 `json:"results"`
	Wrapped int64 `json:"wrapped"`
}

const nsMAM = "urn:xmpp:mam:2"

// warmQueries are the queries before the measured ones.
const warmQueries = 5

// runMAM runs the mam scenario.
func runMAM(ctx context.Context, cfg *config) (*result, error) {
	r := newResult(cfg)
	r.MAM = &MAM{Fill: int64(cfg.fill), Page: cfg.page}
	n := cfg.n

	// The owner's reader checks off the fill and collects query answers.
	var (
		uniq        = make([]atomic.Int64, n)
		wakes       = make([]chan struct{}, n)
		inboxes     = make([]inbox, n)
		delivered   atomic.Int64
		target      atomic.Int64
		allIn       = make(chan struct{})
		allInOnce   sync.Once
		firstBounce atomic.Pointer[string]
	)
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
		inboxes[i].last = -1
	}
	checkDone := func() {
		if t := target.Load(); t > 0 && delivered.Load() >= t {
			allInOnce.Do(func() { close(allIn) })
		}
	}
	q := &mamQueries{}
	ownerHandler := func(el []byte) bool {
		if !is(el, "message") && !is(el, "iq") {
			return false
		}
		if q.handle(el) {
			return true
		}
		if !is(el, "message") {
			return false
		}
		if string(attr(el, "type")) == "error" {
			b := string(el)
			firstBounce.CompareAndSwap(nil, &b)
			return true
		}
		body, ok := childOf(el, bodyOpen, bodyClose)
		if !ok {
			return true
		}
		src, seq, _, ok := parseBody(body)
		if !ok {
			return true
		}
		if src < 0 || src >= n {
			return true // not ours
		}
		if inboxes[src].record(seq) {
			uniq[src].Add(1)
			poke(wakes[src])
			delivered.Add(1)
			checkDone()
		}
		return true
	}
	owner, _ := openSessions(ctx, cfg, r, 1, func(int) string { return cfg.account(1) }, func(int) string { return "mam" },
		func(int, *session) func([]byte) bool { return ownerHandler })
	defer closeAll(owner, 5*time.Second)
	if owner[0] == nil {
		return r, r.err()
	}
	q.s = owner[0]
	senders, _ := openSessions(ctx, cfg, r, n, func(i int) string { return cfg.account(i + 2) }, func(int) string { return "mam" }, nil)
	defer closeAll(senders, 5*time.Second)
	for _, s := range senders {
		if s == nil {
			return r, r.err()
		}
	}

	// The fill.
	per := make([]int64, n)
	for i := range per {
		per[i] = int64(cfg.fill / n)
		if i < cfg.fill%n {
			per[i]++
		}
	}
	stop := progress(cfg, func() string { return fmt.Sprintf("archived: %d/%d", delivered.Load(), cfg.fill) })
	a := sample(cfg.pid)
	var sent atomic.Int64
	var sendErr atomic.Pointer[error]
	var wg sync.WaitGroup
	to := []byte("<message type='chat' to='" + xmlEscape(owner[0].jid) + "' id='f")
	for i, s := range senders {
		if per[i] == 0 {
			continue
		}
		wg.Go(func() {
			src := strconv.AppendInt(nil, int64(i), 10)
			c := *cfg
			c.count = int(per[i])
			room := func(seq int64) bool { return seq-uniq[i].Load() < int64(cfg.window) }
			err := pump(&c, s, &sent, time.Time{}, room, wakes[i], func(buf []byte, seq int64) []byte {
				buf = append(buf, to...)
				buf = append(buf, src...)
				buf = append(buf, '-')
				buf = strconv.AppendInt(buf, seq, 10)
				buf = append(buf, "'><body>"...)
				buf = appendStamp(buf, src, seq)
				return append(buf, "</body></message>"...)
			})
			if err != nil {
				sendErr.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	target.Store(max(sent.Load(), 1))
	checkDone()
	t := time.NewTimer(cfg.timeout)
	select {
	case <-allIn:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	b := sample(cfg.pid)
	stop()
	fill := newResult(cfg)
	fill.measured(a, b, delivered.Load())
	r.MAM.FillS, r.MAM.FillRatePerS, r.MAM.FillCPUUsPerOp = fill.ElapsedS, fill.RatePerS, fill.ServerCPUUsPerOp
	if e := sendErr.Load(); e != nil {
		r.fail(fmt.Errorf("fill: %w", *e))
	}
	if got := delivered.Load(); got != int64(cfg.fill) {
		err := fmt.Errorf("fill: %d of %d messages delivered to the archive's owner", got, cfg.fill)
		if b := firstBounce.Load(); b != nil {
			err = fmt.Errorf("%w; first bounce: %s", err, *b)
		}
		r.fail(err)
		return r, r.err()
	}

	// The queries.
	for range warmQueries {
		if _, err := q.next(cfg); err != nil {
			r.fail(fmt.Errorf("warm-up query: %w", err))
			return r, r.err()
		}
	}
	lat := make([]int64, 0, cfg.queries)
	a = sample(cfg.pid)
	for range cfg.queries {
		d, err := q.next(cfg)
		if err != nil {
			r.fail(fmt.Errorf("query: %w", err))
			break
		}
		lat = append(lat, int64(d))
	}
	b = sample(cfg.pid)
	r.measured(a, b, int64(len(lat)))
	r.latencies(lat)
	r.MAM.Queries, r.MAM.Results, r.MAM.Wrapped = int64(len(lat)), q.measuredResults, q.wrapped
	if early := ended(append(owner, senders...)); early != "" {
		r.fail(fmt.Errorf("a session ended during the run: %s", early))
	}
	return r, r.err()
}

// mamQueries runs the owner's queries one at a time; handle is called by
// the owner's reader.
type mamQueries struct {
	s  *session
	id string // the query in flight; "" when none

	mu      sync.Mutex
	results int64
	answer  chan []byte // the IQ answering the query in flight

	before          string // the <first/> of the previous page; "" for the latest
	seq             int
	wrapped         int64
	measuredResults int64
}

// handle takes a <result/> message or the IQ answer of the query in
// flight, and reports whether el was one.
func (q *mamQueries) handle(el []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.id == "" {
		return false
	}
	if is(el, "iq") {
		if string(attr(el, "id")) != q.id {
			return false
		}
		q.answer <- bytes.Clone(el)
		return true
	}
	i := bytes.Index(el, []byte("<result"))
	if i < 0 || string(attr(el[i:], "queryid")) != q.id {
		return false
	}
	q.results++
	return true
}

// next sends the next query and waits for its answer.
func (q *mamQueries) next(cfg *config) (time.Duration, error) {
	q.seq++
	id := "q" + strconv.Itoa(q.seq)
	before := "<before/>"
	if q.before != "" {
		before = "<before>" + xmlEscape(q.before) + "</before>"
	}
	answer := make(chan []byte, 1)
	q.mu.Lock()
	q.id, q.results, q.answer = id, 0, answer
	q.mu.Unlock()
	t0 := time.Now()
	if err := q.s.send("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM + "' queryid='" + id + "'><set xmlns='http://jabber.org/protocol/rsm'><max>" +
		strconv.Itoa(cfg.page) + "</max>" + before + "</set></query></iq>"); err != nil {
		return 0, err
	}
	timer := time.NewTimer(cfg.timeout)
	defer timer.Stop()
	var el []byte
	select {
	case el = <-answer:
	case <-q.s.done:
		return 0, fmt.Errorf("stream ended: %s", q.s.end)
	case <-timer.C:
		return 0, errors.New("no answer within --timeout")
	}
	d := time.Since(t0)
	q.mu.Lock()
	got := q.results
	q.id = ""
	q.mu.Unlock()
	if string(attr(el, "type")) != "result" {
		return 0, fmt.Errorf("%s", el)
	}
	f := bytes.Index(el, []byte("<fin"))
	if f < 0 {
		return 0, fmt.Errorf("no <fin/>: %s", el)
	}
	complete := string(attr(el[f:], "complete"))
	first, _ := child(el[f:], "first")
	if got == 0 || got > int64(cfg.page) || got < int64(cfg.page) && complete != "true" {
		return 0, fmt.Errorf("%d results for a page of %d (complete=%q): %s", got, cfg.page, complete, el)
	}
	if q.seq > warmQueries {
		q.measuredResults += got
	}
	if complete == "true" || len(first) == 0 {
		q.before = ""
		if q.seq > warmQueries {
			q.wrapped++
		}
	} else {
		q.before = string(first)
	}
	return d, nil
}
