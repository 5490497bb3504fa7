package xmpptest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/stream"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	NSHTTPBind = "http://jabber.org/protocol/httpbind"
	NSXBOSH    = "urn:xmpp:xbosh"
)

// BOSHWait is the 'wait' a BOSH client asks for at session creation: a
// request with nothing for the client comes back within it.
const BOSHWait = 5

// BOSH is an XEP-0124/XEP-0206 test client on net/http. Each request is
// posted in the background, since the server may hold it; responses are
// taken in the order of their rids, as a client processes them
// (XEP-0124 §14.2), whatever order they arrive in. It is used by one
// goroutine.
type BOSH struct {
	session
	HTTP *http.Client
	URL  string
	// Origin, when set, is sent with every request, as a browser does.
	Origin string
	// RID is the rid of the session creation request (random, as
	// XEP-0124 §14.1 has it); Request posts at the rids after it.
	RID int64
	// SID is the session's id, from the first response that has one.
	SID string

	next    int64       // the rid Request posts at
	seq     int         // requests posted
	pending []*Exchange // posted, not yet taken, by rid
	queue   []*stream.Element
	end     error // the session's end, once taken from a response
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Exchange is one request and, once done is closed, its response.
type Exchange struct {
	// RID is the rid of the request, -1 if it has none.
	RID    int64
	seq    int
	Posted time.Time
	done   chan struct{}
	// Status and Body are the response's, or Err why there is none.
	Status int
	Body   []byte
	Err    error
	// Arrived is when the response came.
	Arrived time.Time
}

// TerminateError is the end of a BOSH session: a response of
// type='terminate' (XEP-0124 §13, §17.2), with its condition ("" for a
// normal end).
type TerminateError struct{ Condition string }

func (e *TerminateError) Error() string {
	if e.Condition == "" {
		return "BOSH session terminated"
	}
	return "BOSH session terminated: " + e.Condition
}

// NewBOSH returns a client of the endpoint url for domain; nothing is
// sent. hc must not time out requests that the server holds.
func NewBOSH(t testing.TB, hc *http.Client, url, domain string) *BOSH {
	c := &BOSH{HTTP: hc, URL: url, RID: 1<<32 + rand.Int64N(1<<40)}
	c.session = session{t: t, conn: c, Domain: domain}
	c.next = c.RID
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		c.cancel()
		c.wg.Wait()
	})
	return c
}

// Post sends raw as a request and returns once the server has started
// reading it (or has answered it), so that requests reach the server in
// the order they are posted.
func (c *BOSH) Post(raw string) *Exchange {
	c.t.Helper()
	e := &Exchange{RID: ridOf(raw), seq: c.seq, Posted: time.Now(), done: make(chan struct{})}
	c.seq++
	reading := make(chan struct{})
	var once sync.Once
	trace := &httptrace.ClientTrace{Got100Continue: func() { once.Do(func() { close(reading) }) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(c.ctx, trace), http.MethodPost, c.URL, strings.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	// The server sends 100 Continue as it starts reading the body.
	req.Header.Set("Expect", "100-continue")
	if c.Origin != "" {
		req.Header.Set("Origin", c.Origin)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(e.done)
		resp, err := c.HTTP.Do(req)
		e.Arrived = time.Now()
		if err != nil {
			e.Err = err
			return
		}
		defer resp.Body.Close()
		e.Status = resp.StatusCode
		e.Body, e.Err = io.ReadAll(resp.Body)
	}()
	select {
	case <-reading:
	case <-e.done:
	case <-time.After(Timeout):
		c.t.Fatalf("the server did not read request %d within %v", e.RID, Timeout)
	}
	// Taken by rid, then in the order posted.
	i := len(c.pending)
	for i > 0 && c.pending[i-1].RID > e.RID {
		i--
	}
	c.pending = append(c.pending[:i], append([]*Exchange{e}, c.pending[i:]...)...)
	return e
}

// ridOf reads the rid of a request, -1 if it has none.
func ridOf(raw string) int64 {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return -1
		}
		if s, ok := tok.(xml.StartElement); ok {
			for _, a := range s.Attr {
				if a.Name.Space == "" && a.Name.Local == "rid" {
					if n, err := strconv.ParseInt(a.Value, 10, 64); err == nil {
						return n
					}
				}
			}
			return -1
		}
	}
}

// Body is a request of the session at rid with extra attributes and a
// payload.
func (c *BOSH) Body(rid int64, attrs, payload string) string {
	sid := ""
	if c.SID != "" {
		sid = " sid='" + c.SID + "'"
	}
	return fmt.Sprintf("<body xmlns='%s' xmlns:xmpp='%s'%s rid='%d'%s>%s</body>", NSHTTPBind, NSXBOSH, sid, rid, attrs, payload)
}

// Request posts a request of the session at the next rid.
func (c *BOSH) Request(attrs, payload string) *Exchange {
	c.t.Helper()
	e := c.Post(c.Body(c.next, attrs, payload))
	c.next++
	return e
}

// Response waits for the response to the oldest request not yet taken
// (the lowest rid) and takes it; the session's id is learnt from it.
func (c *BOSH) Response() *Exchange {
	c.t.Helper()
	if len(c.pending) == 0 {
		c.t.Fatal("no request is waiting for its response")
	}
	e := c.pending[0]
	c.pending = c.pending[1:]
	select {
	case <-e.done:
	case <-time.After(Timeout):
		c.t.Fatalf("no response to request %d within %v", e.RID, Timeout)
	}
	if e.Err != nil {
		c.t.Fatalf("request %d: %v", e.RID, e.Err)
	}
	if c.SID == "" {
		if start, _, err := splitBody(e.Body); err == nil {
			c.SID = attrValue(start.Attr, "sid")
		}
	}
	return e
}

// Create starts a session (XEP-0124 §7.1, XEP-0206) and reads the
// features.
func (c *BOSH) Create() {
	c.t.Helper()
	c.Request(fmt.Sprintf(" to='%s' xml:lang='en' wait='%d' hold='1' ver='1.11' xmpp:version='1.0'", c.Domain, BOSHWait), "")
	c.Features = c.Expect(nsStreams, "features")
	if c.SID == "" {
		c.t.Fatal("no sid in the session creation response")
	}
}

// Send posts payload in a request of its own.
func (c *BOSH) Send(payload string) {
	c.t.Helper()
	c.Request("", payload)
}

// Next returns the next element the server sent, posting an empty
// request when none is open for it to come in. After a response of
// type='terminate' and its payloads, it is a *TerminateError.
func (c *BOSH) Next() (*stream.Element, error) {
	deadline := time.Now().Add(Timeout)
	for len(c.queue) == 0 {
		if c.end != nil {
			return nil, c.end
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nothing received within %v", Timeout)
		}
		if len(c.pending) == 0 {
			c.Request("", "")
		}
		e := c.Response()
		if e.Status != http.StatusOK {
			return nil, fmt.Errorf("HTTP status %d: %s", e.Status, e.Body)
		}
		start, payloads, err := splitBody(e.Body)
		if err != nil {
			return nil, err
		}
		for _, el := range payloads {
			if el.Name.Space == NSHTTPBind {
				return nil, fmt.Errorf("a payload not qualified by its namespace (XEP-0206 §2): %s", e.Body)
			}
			if el.Name.Space == nsStreams && el.Name.Local == "features" {
				c.Features = el
			}
		}
		c.queue = append(c.queue, payloads...)
		if attrValue(start.Attr, "type") == "terminate" {
			c.end = &TerminateError{Condition: attrValue(start.Attr, "condition")}
		}
	}
	el := c.queue[0]
	c.queue = c.queue[1:]
	return el, nil
}

// Auth runs SASL with mech and, on success, restarts the stream
// (xmpp:restart, XEP-0206) and reads the new features.
func (c *BOSH) Auth(mech, user, password string) error {
	c.t.Helper()
	err := c.authenticate(nil, mech, user, password)
	if err == nil {
		c.Request(" to='"+c.Domain+"' xml:lang='en' xmpp:restart='true'", "")
		c.Features = c.Expect(nsStreams, "features")
	}
	return err
}

// LoginBOSH creates a session at url, authenticates with mech and binds
// resource.
func LoginBOSH(t testing.TB, hc *http.Client, url, domain, mech, user, password, resource string) *BOSH {
	t.Helper()
	c := NewBOSH(t, hc, url, domain)
	c.Create()
	c.login(c.Auth, mech, user, password, resource)
	return c
}

// ExpectStreamError reads until a stream error with condition cond,
// which must end the session with remote-stream-error (XEP-0206).
func (c *BOSH) ExpectStreamError(cond string) {
	c.t.Helper()
	for {
		el, err := c.Next()
		if err != nil {
			c.t.Fatalf("expected stream error %s, got %v", cond, err)
		}
		if el.Name.Space == nsStreams && el.Name.Local == "error" {
			if !bytes.Contains(el.Raw, []byte("<"+cond+" ")) && !bytes.Contains(el.Raw, []byte("<"+cond+"/>")) {
				c.t.Fatalf("expected stream error %s, got %s", cond, el.Raw)
			}
			break
		}
	}
	el, err := c.Next()
	if te, ok := errors.AsType[*TerminateError](err); !ok || te.Condition != "remote-stream-error" {
		c.t.Fatalf("expected the session to end with remote-stream-error, got %v %v", el, err)
	}
}

// ExpectClosed checks that the server ends the session with no condition.
func (c *BOSH) ExpectClosed() {
	c.t.Helper()
	el, err := c.Next()
	if te, ok := errors.AsType[*TerminateError](err); !ok || te.Condition != "" {
		if el != nil {
			c.t.Fatalf("expected the session to end, got %s", el.Raw)
		}
		c.t.Fatalf("expected the session to end, got %v", err)
	}
}

// Close abandons the session, as a client that vanishes: the requests
// still open are given up.
func (c *BOSH) Close() error {
	c.cancel()
	c.wg.Wait()
	c.pending = nil
	return nil
}

// splitBody parses a response: one <body/> of NSHTTPBind, its start tag
// and its payloads, each standing alone (as stream.Reader reads the
// elements of a stream whose header has the body's declarations).
func splitBody(raw []byte) (xml.StartElement, []*stream.Element, error) {
	var start xml.StartElement
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return start, nil, fmt.Errorf("no <body/> in %q: %v", raw, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s.Copy()
			break
		}
	}
	if start.Name != (xml.Name{Space: NSHTTPBind, Local: "body"}) {
		return start, nil, fmt.Errorf("not a <body xmlns='%s'/>: %s", NSHTTPBind, raw)
	}
	inner0, inner1 := d.InputOffset(), int64(-1)
	for depth := 1; depth > 0; {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return start, nil, fmt.Errorf("%v: %s", err, raw)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				inner1 = off
			}
		}
	}
	if _, err := d.Token(); err != io.EOF {
		return start, nil, fmt.Errorf("more than the <body/>: %s", raw)
	}
	inner := raw[inner0:max(inner0, inner1)]
	if len(bytes.TrimSpace(inner)) == 0 {
		return start, nil, nil
	}
	var hdr bytes.Buffer
	hdr.WriteString("<stream:stream xmlns:stream='" + nsStreams + "' version='1.0'")
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			hdr.WriteString(" xmlns='")
		case a.Name.Space == "xmlns" && a.Name.Local != "stream":
			hdr.WriteString(" xmlns:" + a.Name.Local + "='")
		default:
			continue
		}
		xml.EscapeText(&hdr, []byte(a.Value))
		hdr.WriteString("'")
	}
	hdr.WriteString(">")
	src := io.MultiReader(&hdr, bytes.NewReader(inner), strings.NewReader(stream.Close))
	r := stream.NewReader(src, stream.Limits{MaxElementBytes: 1 << 24, MaxDepth: 100})
	if _, err := r.ReadHeader(); err != nil {
		return start, nil, fmt.Errorf("the body's declarations: %v", err)
	}
	var payloads []*stream.Element
	for {
		el, err := r.Next()
		if errors.Is(err, stream.ErrClosed) {
			return start, payloads, nil
		}
		if err != nil {
			return start, nil, fmt.Errorf("payload: %v: %s", err, raw)
		}
		payloads = append(payloads, el)
	}
}
