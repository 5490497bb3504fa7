package bosh

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/stream"
)

// Terminal conditions a session ends with (XEP-0124 §17.2).
const (
	condBadRequest      = "bad-request"
	condHostUnknown     = "host-unknown"
	condItemNotFound    = "item-not-found"
	condPolicyViolation = "policy-violation"
	condSystemShutdown  = "system-shutdown"
	// condStreamError is the end of a stream with a stream error, which
	// the body carries (XEP-0206 §2, and its remote-stream-error section).
	condStreamError = "remote-stream-error"
)

// errInactive ends the session of a client that sent no request within
// the inactivity period (XEP-0124 §10).
var errInactive = errors.New("bosh: no request within the inactivity period")

// errTerminated ends the c2s session of a BOSH session the server
// terminated with a condition (XEP-0124 §17.2), which the client has been
// told in its response.
var errTerminated = errors.New("bosh: session terminated")

// errOutputFull is a client that does not fetch what the server has for
// it: its session ends, as a TCP client's when its queue overflows.
var errOutputFull = errors.New("bosh: too much output waiting for the client")

// item is one unit of the client's stream, as c2s reads it: a stream
// (re)start, an element, or the end.
type item struct {
	hdr *stream.Header
	el  *stream.Element
	err error // stream.ErrClosed (the client terminated), errInactive
}

// request is one HTTP request of the session, from its arrival to its
// response. body and resp are set before the session sees it; the rest is
// under the session's mu.
type request struct {
	body    *body
	resp    chan []byte // buffered: the response, sent once
	wait    *time.Timer // while held: answer with an empty body at 'wait'
	arrived time.Time   // when it was received (XEP-0124 §11, §12)
	// gotPayload is whether its response carried output (§12).
	gotPayload bool
}

// sentResponse is a response kept for retransmission (XEP-0124 §14.3),
// with when it was sent (§9.2 'time').
type sentResponse struct {
	body []byte
	at   time.Time
}

// Conn is one BOSH session (XEP-0124 with XEP-0206) as c2s sees it: a
// c2s.Framed. The payloads of the client's requests, taken in rid order,
// are the client's stream (ReadHeader, Next); what c2s writes, one
// top-level unit per Write, is sent back in the responses of held
// requests.
//
// The fields above mu are set at creation and only read after. Everything
// below mu is shared by the HTTP handlers of the session's requests, their
// wait and inactivity timers, and c2s's reader and writer.
type Conn struct {
	sid           string
	host          string
	remote, local net.Addr
	wait          time.Duration // granted 'wait'
	hold          int           // granted 'hold'
	inactivity    time.Duration
	window        int64  // 'requests': the rids accepted ahead of and behind the next
	acks          bool   // the client asked for acknowledgements (XEP-0124 §9)
	ver           string // the version of XEP-0124 the creation response has (§7.2)
	maxOut, maxIn int    // bytes waiting for the client, for c2s
	forget        func() // removes the session from the handler's table
	// now is the clock of arrivals and responses (§9.2, §11, §12); the
	// timers run on real time.
	now func() time.Time

	mu        sync.Mutex
	next      int64                  // the rid processed next
	ahead     map[int64]*request     // received before their turn (XEP-0124 §14.2)
	held      []*request             // processed, waiting for output, oldest first
	sent      map[int64]sentResponse // recent responses, by rid (§14.3)
	lastSent  int64                  // the highest rid answered (§9.2)
	report    int64                  // a response the client missed, for the next response to report (§9.2); 0 for none
	reported  int64                  // the last rid reported
	prev      *request               // the request processed last (§12)
	out       []byte                 // output not yet sent
	streamErr bool                   // out holds a stream error
	created   []byte                 // attributes of the session creation response, until sent
	in        []item                 // what c2s has not read yet
	inBytes   int
	closing   bool // the client terminated: its request waits for the end
	ended     bool
	// opening is the request that opens a stream, the session creation
	// request or a restart (XEP-0206's Session Creation Response, §5),
	// until c2s has written the features of the new stream: its response
	// waits for them.
	opening *request
	// final is the end, with output no request was there to take, for
	// the client's next request; finalCond is its condition.
	final     []byte
	finalCond string
	idleSince time.Time     // when the last held request was answered
	limit     time.Duration // the inactivity period in force: 'inactivity', or a pause (§10) until the next request
	inactive  *time.Timer
	inReady   chan struct{} // signalled when in grows
	done      chan struct{} // closed at the end
}

// ReadHeader returns the header of the stream the client starts: at
// session creation (XEP-0124 §7.1) and at each restart (XEP-0206 §5).
func (c *Conn) ReadHeader() (stream.Header, error) {
	it, err := c.read()
	if err != nil {
		return stream.Header{}, err
	}
	if it.hdr == nil {
		return stream.Header{}, &stream.Error{Condition: stream.BadFormat, Text: "a stream restart (xmpp:restart='true', XEP-0206 §5) was expected"}
	}
	return *it.hdr, nil
}

// Next returns the client's next element; a type='terminate' request is
// stream.ErrClosed (XEP-0124 §13).
func (c *Conn) Next() (*stream.Element, error) {
	it, err := c.read()
	if err != nil {
		return nil, err
	}
	if it.el == nil {
		return nil, &stream.Error{Condition: stream.BadFormat, Text: "an unexpected stream restart"}
	}
	return it.el, nil
}

// read waits for the next item of the client's stream.
func (c *Conn) read() (item, error) {
	for {
		c.mu.Lock()
		if len(c.in) > 0 {
			it := c.in[0]
			c.in[0] = item{}
			c.in = c.in[1:]
			if it.el != nil {
				c.inBytes -= len(it.el.Raw)
			}
			c.mu.Unlock()
			if it.err != nil {
				return it, it.err
			}
			return it, nil
		}
		ended := c.ended
		c.mu.Unlock()
		if ended {
			return item{}, net.ErrClosed
		}
		select {
		case <-c.inReady:
		case <-c.done:
		}
	}
}

// push queues items for c2s; mu is held.
func (c *Conn) push(its ...item) {
	for _, it := range its {
		if it.el != nil {
			c.inBytes += len(it.el.Raw)
		}
		c.in = append(c.in, it)
	}
	select {
	case c.inReady <- struct{}{}:
	default:
	}
}

// Read is for the end of the stream, when c2s lets the client close its
// side: a BOSH session has nothing more to read.
func (c *Conn) Read([]byte) (int, error) { return 0, io.EOF }

// Write takes one top-level unit of the stream c2s writes. Our stream
// header is not sent (the session creation response stands for it,
// XEP-0206 §3); the closing tag ends the session; an element is queued
// for the next response, and answers a held request at once.
//
// A stream error answers nothing: the closing tag that follows it ends
// the session with the terminal condition remote-stream-error, the error
// (and whatever was queued before it) in the terminate body of the
// request held then, or of the client's next request (XEP-0124 §17.2,
// XEP-0206 §2 and "Stream Errors"). Answered at once, in an ordinary
// response, it would leave the end to the client's next request, which
// would find no session (item-not-found) and never learn why.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return 0, net.ErrClosed
	}
	switch {
	case bytes.Equal(b, []byte(stream.Close)):
		c.end(c.endCond())
		return len(b), nil
	case bytes.HasPrefix(b, []byte("<?xml")): // stream.AppendHeader's
		if c.created != nil {
			// The id of the first stream is the session's 'authid'
			// (XEP-0206 §3).
			pr := getPayloadReader(stream.Limits{})
			pr.src = parts{b}
			pr.r.Reset(&pr.src)
			h, err := pr.r.ReadHeader()
			putPayloadReader(stream.Limits{}, pr)
			if err == nil && h.ID != "" {
				c.created = appendAttr(c.created, "authid", h.ID)
			}
		}
		return len(b), nil
	}
	if len(c.out)+len(b) > c.maxOut {
		return 0, errOutputFull
	}
	c.streamErr = c.streamErr || bytes.HasPrefix(b, []byte("<stream:error"))
	c.out = appendQualified(c.out, b)
	c.opening = nil // the features (or a stream error)
	c.flush()
	return len(b), nil
}

// Close ends the session, answering its requests (c2s closes the
// connection when the session has ended).
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.end(c.endCond())
	}
	return nil
}

// endCond is the condition of an end that c2s brings about: none, or
// remote-stream-error after a stream error (XEP-0124 §17.2); mu is held.
func (c *Conn) endCond() string {
	if c.streamErr {
		return condStreamError
	}
	return ""
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Transport implements c2s.Transporter.
func (c *Conn) Transport() string { return "bosh" }

// RemoteAddr is the address of the client's session creation request.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn: writes never block, and reading ends
// with the session.
func (c *Conn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.Conn (see SetDeadline).
func (c *Conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.Conn (see SetDeadline).
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// accept takes a request of the session in rid order (XEP-0124 §14):
// the next rid is processed, with the ones received ahead of it that
// follow; a later rid within the window waits for its turn; an earlier
// one is a retransmission, answered with the response it had (§14.3), or,
// if it has none yet, taking the place of the request it repeats, which
// gets a recoverable binding error (type='error', §14.3, §17.3); anything
// else ends the session with item-not-found. A new request that
// comes too many or too often (overactive) ends it with policy-violation.
// The request's response arrives on req.resp.
func (c *Conn) accept(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, rid := req.body, req.body.rid
	req.arrived = c.now()
	switch {
	case c.ended:
		// The session's last response, if nobody was there to get it;
		// else the session is gone, as for an unknown sid.
		if c.final != nil {
			req.resp <- c.responseBody(rid, c.finalCond, c.final)
			c.final = nil
		} else {
			req.resp <- c.terminateBody(rid, condItemNotFound)
		}
		return
	case rid < c.next:
		if s, ok := c.sent[rid]; ok {
			req.resp <- s.body
			return
		}
		if i := slices.IndexFunc(c.held, func(h *request) bool { return h.body.rid == rid }); i >= 0 {
			// The client gave up on a request still held: the old one
			// gets a recoverable binding error at once, and the new one
			// takes its place (§14.3).
			old := c.held[i]
			old.wait.Stop()
			old.resp <- recoverable()
			req.arrived = old.arrived
			if c.prev == old {
				c.prev = req
			}
			if c.opening == old {
				c.opening = req
			}
			c.held[i] = req
			req.wait = time.AfterFunc(c.wait, func() { c.expire(req) })
			return
		}
		c.fail(req, condItemNotFound)
		return
	case rid >= c.next+c.window && !(extra(b) && rid == c.next+c.window):
		// A pause or terminate request may come on top of the others
		// (§11).
		c.fail(req, condItemNotFound)
		return
	}
	if old, ok := c.ahead[rid]; ok {
		// Sent again before its turn: the same (§14.3).
		old.wait.Stop()
		old.resp <- recoverable()
		req.arrived = old.arrived
	} else if cond := c.overactive(req); cond != "" {
		c.fail(req, cond)
		return
	}
	if rid > c.next {
		c.ahead[rid] = req
		// A client retransmits a request it lost within about 'wait':
		// a gap still open after twice that will not close.
		req.wait = time.AfterFunc(2*c.wait, func() { c.lost(req) })
		return
	}
	for {
		c.next++
		if cond := c.process(req); cond != "" {
			c.fail(req, cond)
			return
		}
		var ok bool
		if req, ok = c.ahead[c.next]; !ok {
			break
		}
		req.wait.Stop()
		delete(c.ahead, c.next)
	}
	c.flush()
}

// flush answers held requests, oldest first (XEP-0124 §8): while more
// than 'hold' are held, with whatever there is; while there is output, or
// a missed response to report (§9.2). But the request that opens a stream
// is answered only with its features (opening), or at the end: so the
// session creation response always has 'authid' and the features
// (XEP-0206's Session Creation Response), in a polling session ('hold'
// or 'wait' 0, §12) too, where it would otherwise go at once, whether c2s
// had written them or not. Output does not go while a terminate request
// or a stream error waits for the end (Write). mu is held.
func (c *Conn) flush() {
	for len(c.held) > 0 && c.held[0] != c.opening &&
		(len(c.held) > c.hold || (len(c.out) > 0 || c.report != 0) && !c.closing && !c.streamErr) {
		c.respond(c.held[0])
	}
}

// extra reports whether b may be the one request a client sends on top
// of 'requests': one that pauses or terminates the session (XEP-0124 §11).
func extra(b *body) bool { return b.terminate || b.pause >= 0 }

// emptyPoll reports whether b only asks for output: no payload, no
// stream restart, no pause, no terminate. Only such requests can come too
// often (XEP-0124 §11, §12).
func emptyPoll(b *body) bool { return len(b.payload) == 0 && !b.restart && !extra(b) }

// overactive applies XEP-0124's rules on requests that come too many or
// too often to req, a request not received before, and returns the
// condition to end the session with, if any; mu is held. The rules:
//   - §11: more requests open at once (none of them answered yet) than
//     'requests', besides one that pauses or terminates the session;
//   - §11: in a session that holds requests, as many open as 'requests'
//     (not counting one that pauses or terminates), the last of them by
//     rid an empty poll, and the last two received less than 'polling'
//     apart (requests sent together may arrive in any order, §14.2);
//   - §12: in a polling session ('hold' or 'wait' 0), an empty poll
//     received less than 'polling' after the previous request, also an
//     empty poll, whose response had no payload.
func (c *Conn) overactive(req *request) string {
	open, regular := 1, 1 // req, and the other open requests
	bonus := extra(req.body)
	var last time.Time // the latest arrival among the other regular ones
	final := req       // the regular request with the highest rid
	note := func(r *request) {
		open++
		if extra(r.body) {
			bonus = true
			return
		}
		regular++
		if r.arrived.After(last) {
			last = r.arrived
		}
		if r.body.rid > final.body.rid {
			final = r
		}
	}
	for _, r := range c.held {
		note(r)
	}
	for _, r := range c.ahead {
		note(r)
	}
	limit := int(c.window)
	if bonus {
		limit++
	}
	switch {
	case open > limit:
		return condPolicyViolation
	case extra(req.body):
		return ""
	case c.hold == 0 || c.wait == 0:
		p := c.prev
		if emptyPoll(req.body) && p != nil && emptyPoll(p.body) && !p.gotPayload && !slices.Contains(c.held, p) && req.arrived.Sub(p.arrived) < minPolling {
			return condPolicyViolation
		}
	case regular == int(c.window) && emptyPoll(final.body) && req.arrived.Sub(last) < minPolling:
		return condPolicyViolation
	}
	return ""
}

// process hands the payload of a request to c2s and holds the request,
// or answers it at once when it pauses the session (XEP-0124 §10); it
// returns the condition to end the session with, if any. next is already
// past req's rid.
func (c *Conn) process(req *request) string {
	b := req.body
	if b.pause > int64(maxPause/time.Second) {
		return condPolicyViolation // §10: longer than 'maxpause'
	}
	if b.restart {
		if len(b.payload) > 0 {
			return condBadRequest // XEP-0206 §5: a restart carries nothing else
		}
		to := b.to
		if to == "" {
			to = c.host
		}
		c.push(item{hdr: &stream.Header{To: to, Lang: b.lang, Version: "1.0", NS: nsClient}})
		c.opening = req
	}
	if c.inBytes+b.size > c.maxIn {
		return condPolicyViolation // c2s reads far behind: the client floods
	}
	for _, el := range b.payload {
		c.push(item{el: el})
	}
	if b.terminate {
		// The request is answered at the end, with what c2s writes
		// until then (XEP-0124 §13).
		c.push(item{err: stream.ErrClosed})
		c.closing = true
	}
	if c.acks {
		c.acknowledged(req)
	}
	c.inactive.Stop()
	c.prev = req
	c.limit = c.inactivity // a pause lasts until the next request (§10)
	if b.pause >= 0 && !c.closing {
		// §10: the held requests are answered at once, and so is the
		// pause request, without payloads; the inactivity period until
		// the next request is the pause.
		c.limit = time.Duration(b.pause) * time.Second
		for len(c.held) > 0 {
			c.respond(c.held[0])
		}
		c.respond(req)
		return ""
	}
	c.held = append(c.held, req)
	req.wait = time.AfterFunc(c.wait, func() { c.expire(req) })
	return ""
}

// acknowledged applies what req acknowledges (XEP-0124 §9.2): the
// responses up to its 'ack', or up to the request before it when it has
// none, reached the client and leave the buffer (§14.3). A response sent
// after those is one the client missed: the next response reports it,
// once, if it is still kept (the client can then ask for it again).
func (c *Conn) acknowledged(req *request) {
	ack := req.body.rid - 1
	if a := req.body.ack; a >= 0 && a < ack {
		ack = a
	}
	for rid := range c.sent {
		if rid <= ack {
			delete(c.sent, rid)
		}
	}
	if missed := ack + 1; missed <= c.lastSent && missed > c.reported {
		if _, ok := c.sent[missed]; ok {
			c.report, c.reported = missed, missed
		}
	}
}

// lost ends the session when the request req, received ahead of its turn,
// is still waiting for a request that never came.
func (c *Conn) lost(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rid := req.body.rid; c.ahead[rid] == req {
		delete(c.ahead, rid)
		c.fail(req, condItemNotFound)
	}
}

// expire answers a request held for 'wait' with what there is: nothing
// (XEP-0124 §8).
func (c *Conn) expire(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The request that opens a stream waits for its features; output
	// before a stream error waits for the end (flush).
	if slices.Contains(c.held, req) && req != c.opening && !c.streamErr {
		c.respond(req)
	}
}

// abandon forgets a request whose client went away before its response:
// a client that retransmits it gets the response from sent, if there was
// one.
func (c *Conn) abandon(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.held, req); i >= 0 {
		req.wait.Stop()
		c.held = slices.Delete(c.held, i, i+1)
		c.idle()
	}
	if c.ahead[req.body.rid] == req {
		req.wait.Stop()
		delete(c.ahead, req.body.rid)
		c.idle()
	}
}

// respond answers the request req, held or a pause request, with the
// output there is (none for a pause request, XEP-0124 §10), and keeps the
// response for retransmission; mu is held.
func (c *Conn) respond(req *request) {
	if req.wait != nil {
		req.wait.Stop()
	}
	c.held = slices.DeleteFunc(c.held, func(h *request) bool { return h == req })
	rid := req.body.rid
	var payload []byte
	if req.body.pause < 0 && !c.streamErr {
		// A stream error, and what came before it, are for the end
		// (Write).
		payload = c.out
	}
	b := c.responseBody(rid, "", payload)
	if len(payload) > 0 {
		req.gotPayload = true
		c.out, c.streamErr = c.out[:0], false
		if cap(c.out) > 64<<10 {
			c.out = nil
		}
	}
	c.sent[rid] = sentResponse{body: b, at: c.now()}
	c.lastSent = max(c.lastSent, rid)
	c.trimSent(rid)
	req.resp <- b
	c.idle()
}

// trimSent bounds the responses kept for retransmission after the one to
// rid (XEP-0124 §14.3): those of the last 'requests' rids or, with
// acknowledgements, the ones not acknowledged yet, maxUnacked at most;
// mu is held.
func (c *Conn) trimSent(rid int64) {
	if !c.acks {
		for r := range c.sent {
			if r <= rid-c.window {
				delete(c.sent, r)
			}
		}
		return
	}
	for len(c.sent) > maxUnacked {
		delete(c.sent, slices.Min(slices.Collect(maps.Keys(c.sent))))
	}
}

// idle starts the inactivity period once no request is held; mu is held.
func (c *Conn) idle() {
	if len(c.held) == 0 && !c.ended {
		c.idleSince = time.Now()
		c.inactive.Reset(c.limit)
	}
}

// checkInactive ends a session whose client has let the inactivity period
// (or its pause) pass without a request (XEP-0124 §10): c2s ends it as
// any other, with the unavailable presence of a vanished client.
func (c *Conn) checkInactive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || len(c.held) > 0 || len(c.ahead) > 0 || time.Since(c.idleSince) < c.limit {
		return
	}
	c.push(item{err: errInactive})
	c.end("")
}

// refused ends the session with cond, for a request of it refused
// before it could be taken (a body that is not well-formed, or too large:
// Handler.refuse): the held requests get the condition, and c2s ends the
// XMPP session.
func (c *Conn) refused(cond string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.end(cond)
	c.push(item{err: errTerminated})
}

// fail ends the session with cond, req included; mu is held.
func (c *Conn) fail(req *request, cond string) {
	c.end(cond)
	req.resp <- c.terminateBody(req.body.rid, cond)
	// c2s learns of it from its next read.
	c.push(item{err: errTerminated})
}

// end terminates the session with cond ("" for none): every request
// still open is answered with type='terminate', the first with the output
// there is; the session leaves the handler's table. mu is held.
func (c *Conn) end(cond string) {
	if c.ended {
		return
	}
	c.ended = true
	c.inactive.Stop()
	close(c.done)
	// Output at the end (a stream error, <system-shutdown/>) that no
	// request is there to take waits for the client's next request, for
	// the inactivity period at most. Otherwise the session leaves the
	// table before the client learns of the end, so that its next
	// request finds no session.
	if len(c.held) == 0 && len(c.out) > 0 {
		c.final, c.finalCond = c.out, cond
		c.out = nil
		time.AfterFunc(c.inactivity, c.forget)
	} else {
		c.forget()
	}
	for _, req := range c.held {
		req.wait.Stop()
		req.resp <- c.responseBody(req.body.rid, cond, c.out)
		c.out = nil
	}
	c.held = nil
	for rid, req := range c.ahead {
		req.wait.Stop()
		req.resp <- c.terminateBody(rid, cond)
		delete(c.ahead, rid)
	}
}

// received is the highest rid received with every rid before it
// (XEP-0124 §9.1); mu is held.
func (c *Conn) received() int64 {
	r := c.next - 1
	for c.ahead[r+1] != nil {
		r++
	}
	return r
}

// responseBody builds the response to the request rid: <body/> with
// payload; with the session's attributes when it is the creation response
// (XEP-0124 §7.2, XEP-0206 §3); with 'ack' in a session with
// acknowledgements (§9.1), and 'report' and 'time' when the client missed
// a response (§9.2); type='terminate' when the session has ended (§17).
// mu is held.
func (c *Conn) responseBody(rid int64, cond string, payload []byte) []byte {
	b := make([]byte, 0, 200+len(c.created)+len(payload))
	b = append(b, "<body xmlns='"+NSHTTPBind+"' xmlns:stream='"+stream.NS+"'"...)
	switch {
	case c.created != nil:
		b = append(b, c.created...)
		c.created = nil
	case c.acks:
		// §9.1: the highest rid received, unless that is the rid
		// answered.
		if a := c.received(); a != rid {
			b = appendAttr(b, "ack", strconv.FormatInt(a, 10))
		}
	}
	if c.report != 0 {
		s := c.sent[c.report]
		b = appendAttr(b, "report", strconv.FormatInt(c.report, 10))
		b = appendAttr(b, "time", strconv.FormatInt(c.now().Sub(s.at).Milliseconds(), 10))
		c.report = 0
	}
	if c.ended {
		b = appendAttr(b, "type", "terminate")
		if cond != "" {
			b = appendAttr(b, "condition", cond)
		}
	}
	if len(payload) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, payload...)
	return append(b, "</body>"...)
}

// recoverable is the response with the recoverable binding condition
// (XEP-0124 §17.3, type='error'): the one a request gets when the client
// sends its rid again before it was answered (§14.3). It does not end the
// session, carries nothing, and is not kept for retransmission (§14.3
// keeps no response that was a binding error); the client, if it still
// reads it, sends the requests it has no response to again.
func recoverable() []byte {
	return append(appendAttr([]byte("<body xmlns='"+NSHTTPBind+"'"), "type", "error"), "/>"...)
}

func (c *Conn) terminateBody(rid int64, cond string) []byte { return c.responseBody(rid, cond, nil) }

// creationAttrs are the attributes of the session creation response to
// the request rid (XEP-0124 §7.2, XEP-0206 §3): with 'ack' when the
// client asked for acknowledgements (§9.1), and 'maxpause' (§10).
func (c *Conn) creationAttrs(rid int64) []byte {
	var b []byte
	b = appendAttr(b, "sid", c.sid)
	if c.wait == 0 {
		b = appendAttr(b, "wait", "0") // a polling session (§12)
	} else {
		b = appendAttr(b, "wait", seconds(c.wait))
	}
	b = appendAttr(b, "hold", strconv.Itoa(c.hold))
	b = appendAttr(b, "requests", strconv.FormatInt(c.window, 10))
	b = appendAttr(b, "inactivity", seconds(c.inactivity))
	b = appendAttr(b, "polling", seconds(minPolling))
	b = appendAttr(b, "maxpause", seconds(maxPause))
	if c.acks {
		b = appendAttr(b, "ack", strconv.FormatInt(rid, 10))
	}
	b = appendAttr(b, "ver", c.ver)
	b = appendAttr(b, "from", c.host)
	b = appendAttr(b, "secure", "true")
	b = appendAttr(b, "xmlns:xmpp", NSXBOSH)
	b = appendAttr(b, "xmpp:version", "1.0")
	return appendAttr(b, "xmpp:restartlogic", "true")
}

// seconds is d in whole seconds, at least 1, as BOSH attributes have it.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
