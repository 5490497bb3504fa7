package bosh

import (
	"bytes"
	"errors"
	"io"
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
	// condStreamError is the end of a stream with a stream error, which
	// the body carries (XEP-0206 §7).
	condStreamError = "remote-stream-error"
)

// errInactive ends the session of a client that sent no request within
// the inactivity period (XEP-0124 §7.1 'inactivity').
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
// response.
type request struct {
	body *body
	resp chan []byte // buffered: the response, sent once
	wait *time.Timer // while held: answer with an empty body at 'wait'
}

// Conn is one BOSH session (XEP-0124 with XEP-0206) as c2s sees it: a
// c2s.Framed. The payloads of the client's requests, taken in rid order,
// are the client's stream (ReadHeader, Next); what c2s writes, one
// top-level unit per Write, is sent back in the responses of held
// requests.
//
// Everything below mu is shared by the HTTP handlers of the session's
// requests, their wait and inactivity timers, and c2s's reader and writer.
type Conn struct {
	sid           string
	host          string
	remote, local net.Addr
	wait          time.Duration // granted 'wait'
	hold          int           // granted 'hold'
	inactivity    time.Duration
	window        int64  // 'requests': the rids accepted ahead of and behind the next
	maxOut, maxIn int    // bytes waiting for the client, for c2s
	forget        func() // removes the session from the handler's table

	mu        sync.Mutex
	next      int64              // the rid processed next
	ahead     map[int64]*request // received before their turn (XEP-0124 §14.2)
	held      []*request         // processed, waiting for output, oldest first
	sent      map[int64][]byte   // recent responses, by rid (§14.3)
	out       []byte             // output not yet sent
	streamErr bool               // out holds a stream error
	created   []byte             // attributes of the session creation response, until sent
	in        []item             // what c2s has not read yet
	inBytes   int
	closing   bool // the client terminated: its request waits for the end
	ended     bool
	final     []byte    // the end, with output no request was there to take
	idleSince time.Time // when the last held request was answered
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
// stream.ErrClosed (XEP-0124 §12).
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
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return 0, net.ErrClosed
	}
	switch {
	case bytes.Equal(b, []byte(stream.Close)):
		cond := ""
		if c.streamErr {
			cond = condStreamError
		}
		c.end(cond)
		return len(b), nil
	case bytes.HasPrefix(b, []byte("<?xml")): // stream.AppendHeader's
		if c.created != nil {
			// The id of the first stream is the session's 'authid'
			// (XEP-0206 §3).
			if h, err := stream.NewReader(bytes.NewReader(b), stream.Limits{}).ReadHeader(); err == nil && h.ID != "" {
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
	if len(c.held) > 0 && !c.closing {
		c.respond(c.held[0])
	}
	return len(b), nil
}

// Close ends the session, answering its requests (c2s closes the
// connection when the session has ended).
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.end("")
	}
	return nil
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.local }

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
// one is a retransmission, answered with the response it had (§14.3);
// anything else ends the session with item-not-found. The request's
// response arrives on req.resp.
func (c *Conn) accept(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rid := req.body.rid
	switch {
	case c.ended:
		// The session's last response, if nobody was there to get it;
		// else the session is gone, as for an unknown sid.
		b := c.final
		if b == nil {
			b = c.terminateBody(condItemNotFound)
		}
		c.final = nil
		req.resp <- b
		return
	case rid < c.next:
		if b, ok := c.sent[rid]; ok {
			req.resp <- b
			return
		}
		if i := slices.IndexFunc(c.held, func(h *request) bool { return h.body.rid == rid }); i >= 0 {
			// The client gave up on a request still held: the new one
			// takes its place.
			old := c.held[i]
			old.wait.Stop()
			old.resp <- c.emptyBody()
			c.held[i] = req
			req.wait = time.AfterFunc(c.wait, func() { c.expire(req) })
			return
		}
		c.fail(req, condItemNotFound)
		return
	case rid >= c.next+c.window:
		c.fail(req, condItemNotFound)
		return
	case rid > c.next:
		if old, ok := c.ahead[rid]; ok {
			old.wait.Stop()
			old.resp <- c.emptyBody()
		}
		c.ahead[rid] = req
		// A client retransmits a request it lost within about 'wait':
		// a gap still open after twice that will not close.
		req.wait = time.AfterFunc(2*c.wait, func() { c.lost(req) })
		return
	}
	for {
		if cond := c.process(req); cond != "" {
			c.fail(req, cond)
			return
		}
		c.next++
		var ok bool
		if req, ok = c.ahead[c.next]; !ok {
			break
		}
		req.wait.Stop()
		delete(c.ahead, c.next)
	}
	// At most 'hold' requests wait (XEP-0124 §10): the oldest are
	// answered, with whatever there is.
	for len(c.held) > c.hold || len(c.held) > 0 && len(c.out) > 0 && !c.closing {
		c.respond(c.held[0])
	}
}

// process hands the payload of a request to c2s and holds the request;
// it returns the condition to end the session with, if any.
func (c *Conn) process(req *request) string {
	b := req.body
	if b.restart {
		if len(b.payload) > 0 {
			return condBadRequest // XEP-0206 §5: a restart carries nothing else
		}
		to := b.to
		if to == "" {
			to = c.host
		}
		c.push(item{hdr: &stream.Header{To: to, Lang: b.lang, Version: "1.0", NS: nsClient}})
	}
	if c.inBytes+b.size > c.maxIn {
		return condPolicyViolation // c2s reads far behind: the client floods
	}
	for _, el := range b.payload {
		c.push(item{el: el})
	}
	if b.terminate {
		// The request is answered at the end, with what c2s writes
		// until then (XEP-0124 §12).
		c.push(item{err: stream.ErrClosed})
		c.closing = true
	}
	c.inactive.Stop()
	c.held = append(c.held, req)
	req.wait = time.AfterFunc(c.wait, func() { c.expire(req) })
	return ""
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
// (XEP-0124 §10).
func (c *Conn) expire(req *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.held, req) {
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

// respond answers the held request req with the output there is, and
// keeps the response for retransmission; mu is held.
func (c *Conn) respond(req *request) {
	req.wait.Stop()
	c.held = slices.DeleteFunc(c.held, func(h *request) bool { return h == req })
	b := c.responseBody("", c.out)
	c.out, c.streamErr = c.out[:0], false
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	c.sent[req.body.rid] = b
	for rid := range c.sent {
		if rid <= req.body.rid-c.window {
			delete(c.sent, rid)
		}
	}
	req.resp <- b
	c.idle()
}

// idle starts the inactivity period once no request is held; mu is held.
func (c *Conn) idle() {
	if len(c.held) == 0 && !c.ended {
		c.idleSince = time.Now()
		c.inactive.Reset(c.inactivity)
	}
}

// checkInactive ends a session whose client has let the inactivity period
// pass without a request (XEP-0124 §7.1): c2s ends it as any other, with
// the unavailable presence of a vanished client.
func (c *Conn) checkInactive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || len(c.held) > 0 || len(c.ahead) > 0 || time.Since(c.idleSince) < c.inactivity {
		return
	}
	c.push(item{err: errInactive})
	c.end("")
}

// fail ends the session with cond, req included; mu is held.
func (c *Conn) fail(req *request, cond string) {
	c.end(cond)
	req.resp <- c.terminateBody(cond)
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
		c.final = c.responseBody(cond, c.out)
		c.out = nil
		time.AfterFunc(c.inactivity, c.forget)
	} else {
		c.forget()
	}
	for _, req := range c.held {
		req.wait.Stop()
		req.resp <- c.responseBody(cond, c.out)
		c.out = nil
	}
	c.held = nil
	for rid, req := range c.ahead {
		req.wait.Stop()
		req.resp <- c.terminateBody(cond)
		delete(c.ahead, rid)
	}
}

// responseBody builds a response: <body/> with payload, with the session's
// attributes when it is the creation response, and type='terminate' when
// the session has ended (XEP-0124 §7.1, §17; XEP-0206 §3).
func (c *Conn) responseBody(cond string, payload []byte) []byte {
	b := make([]byte, 0, 160+len(c.created)+len(payload))
	b = append(b, "<body xmlns='"+NSHTTPBind+"' xmlns:stream='"+stream.NS+"'"...)
	b = append(b, c.created...)
	c.created = nil
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

func (c *Conn) emptyBody() []byte { return c.responseBody("", nil) }

func (c *Conn) terminateBody(cond string) []byte { return c.responseBody(cond, nil) }

// creationAttrs are the attributes of the session creation response
// (XEP-0124 §7.1, XEP-0206 §3). No 'ack' (acknowledgements are not
// offered, §9.1), no 'maxpause' (no pausing, §10).
func creationAttrs(sid, host string, wait time.Duration, hold int, inactivity time.Duration, window int64) []byte {
	var b []byte
	b = appendAttr(b, "sid", sid)
	b = appendAttr(b, "wait", seconds(wait))
	b = appendAttr(b, "hold", strconv.Itoa(hold))
	b = appendAttr(b, "requests", strconv.FormatInt(window, 10))
	b = appendAttr(b, "inactivity", seconds(inactivity))
	b = appendAttr(b, "polling", seconds(minPolling))
	b = appendAttr(b, "ver", protocolVersion)
	b = appendAttr(b, "from", host)
	b = appendAttr(b, "secure", "true")
	b = appendAttr(b, "xmlns:xmpp", NSXBOSH)
	b = appendAttr(b, "xmpp:version", "1.0")
	return appendAttr(b, "xmpp:restartlogic", "true")
}

// seconds is d in whole seconds, at least 1, as BOSH attributes have it.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}
