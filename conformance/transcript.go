// Package conformance holds black-box tests of the whole server. Transcript
// tests (testdata/*.txt, one file per RFC section or XEP) run against an
// in-process server; the format is described in testdata/README.md.
package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// step is one line of a transcript with its indented XML block.
type step struct {
	line  int
	actor string
	verb  string // everything after the actor, e.g. "logs in as phone"
	block string
}

// parseTranscript reads the steps of a transcript file.
func parseTranscript(path string) ([]step, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var steps []step
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if len(steps) == 0 {
				return nil, fmt.Errorf("%s:%d: indented line without a step", path, n)
			}
			steps[len(steps)-1].block += trimmed + "\n"
		default:
			actor, verb, _ := strings.Cut(strings.TrimSuffix(trimmed, ":"), " ")
			steps = append(steps, step{line: n, actor: actor, verb: verb})
		}
	}
	return steps, sc.Err()
}

// transport is an actor's connection, whatever carries it: TCP
// (*xmpptest.Client), WebSocket (*xmpptest.WebSocket, RFC 7395) or BOSH
// (*xmpptest.BOSH, XEP-0206). The steps that do not name a transport
// use only this.
type transport interface {
	// Send writes raw as the transport's unit: bytes on TCP, one message
	// on WebSocket, the payload of one request on BOSH.
	Send(raw string)
	// Next returns the next element the server sent.
	Next() (*stream.Element, error)
	ExpectStreamError(cond string)
	ExpectClosed()
	Close() error
}

// actor is a connection of the transcript.
type actor struct {
	conn transport
	// jid is the full JID bound by a "logs in" step.
	jid string
	// refused is the HTTP status of a WebSocket upgrade the server
	// refused; conn is nil then.
	refused int
}

// runner executes one transcript.
type runner struct {
	t       *testing.T
	srv     *testserver.Server
	clients map[string]*actor
	order   []string
	barrier int
	// passwords of the accounts created by "user" steps.
	passwords map[string]string
}

// runTranscript runs the transcript at path against a fresh server.
func runTranscript(t *testing.T, path string) {
	steps, err := parseTranscript(path)
	if err != nil {
		t.Fatal(err)
	}
	var edits []func(*config.Config)
	for _, s := range steps {
		if s.actor == "config" {
			edits = append(edits, configEdit(t, s))
		}
	}
	r := &runner{t: t, clients: map[string]*actor{}, passwords: map[string]string{}}
	r.srv = testserver.Start(t, func(c *config.Config) {
		for _, e := range edits {
			e(c)
		}
	})
	var at step
	defer func() {
		// A helper's t.Fatalf does not say which step failed.
		if t.Failed() {
			t.Logf("%s:%d: %s %s", path, at.line, at.actor, at.verb)
		}
	}()
	for _, s := range steps {
		if s.actor != "config" {
			at = s
			r.run(s)
		}
	}
}

// configEdit understands the server settings transcripts change:
// "config registration enabled", "config tls optional", "config allowed
// origin ORIGIN" and "config SETTING VALUE" for the limits below.
func configEdit(t *testing.T, s step) func(*config.Config) {
	switch s.verb {
	case "registration enabled":
		return func(c *config.Config) { c.Registration.Enabled = true }
	case "tls optional":
		return func(c *config.Config) { c.C2S.RequireTLS = false }
	}
	if rest, ok := strings.CutPrefix(s.verb, "module "); ok {
		// "config module NAME: KEY = VALUE[; KEY = VALUE]": the
		// module's [modules.NAME] table.
		name, settings, _ := strings.Cut(rest, ":")
		text := "[modules." + strings.TrimSpace(name) + "]\n" + strings.ReplaceAll(settings, ";", "\n") + "\n"
		parsed, err := config.Parse([]byte(text))
		if err != nil {
			t.Fatalf("line %d: %v", s.line, err)
		}
		return func(c *config.Config) {
			if c.Modules == nil {
				c.Modules = map[string]config.ModuleTable{}
			}
			for k, v := range parsed.Modules {
				c.Modules[k] = v
			}
		}
	}
	if origin, ok := strings.CutPrefix(s.verb, "allowed origin "); ok {
		return func(c *config.Config) { c.HTTP.AllowedOrigins = append(c.HTTP.AllowedOrigins, origin) }
	}
	i := strings.LastIndexByte(s.verb, ' ')
	name, value := s.verb[:max(i, 0)], s.verb[i+1:]
	n, nerr := strconv.Atoi(value)
	d, derr := time.ParseDuration(value)
	ints := map[string]*int{}
	durations := map[string]*time.Duration{}
	edit := func(c *config.Config) {
		ints["max sessions per account"] = &c.Limits.MaxSessionsPerAccount
		ints["max stanza bytes"] = &c.Limits.MaxStanzaBytes
		ints["max auth attempts"] = &c.Limits.MaxAuthAttempts
		ints["auth failures per address"] = &c.Limits.AuthFailuresPerAddress
		ints["auth failures per account"] = &c.Limits.AuthFailuresPerAccount
		ints["max unauthenticated per address"] = &c.Limits.MaxUnauthenticatedPerAddress
		ints["outbound queue"] = &c.Limits.OutboundQueue
		ints["max roster items"] = &c.Limits.MaxRosterItems
		durations["connect timeout"] = &c.Limits.ConnectTimeout.Duration
		durations["auth timeout"] = &c.Limits.AuthTimeout.Duration
		durations["idle timeout"] = &c.Limits.IdleTimeout.Duration
		durations["ping timeout"] = &c.Limits.PingTimeout.Duration
		durations["bosh max wait"] = &c.HTTP.BOSHMaxWait.Duration
		durations["bosh inactivity"] = &c.HTTP.BOSHInactivity.Duration
		if p, ok := ints[name]; ok && nerr == nil {
			*p = n
		} else if p, ok := durations[name]; ok && derr == nil {
			*p = d
		} else {
			t.Fatalf("line %d: unknown config %q", s.line, s.verb)
		}
	}
	return edit
}

// bytesPattern is "{bytes N}" in a block: N filler characters, for size
// limits; ridPattern is "{rid}" or "{rid+N}", a BOSH actor's first rid
// or the Nth after it.
var (
	bytesPattern = regexp.MustCompile(`\{bytes (\d+)\}`)
	ridPattern   = regexp.MustCompile(`\{rid(?:\+(\d+))?\}`)
)

// expand substitutes the placeholders of a block of step s.
func (r *runner) expand(s step, text string) string {
	text = bytesPattern.ReplaceAllStringFunc(text, func(m string) string {
		n, _ := strconv.Atoi(bytesPattern.FindStringSubmatch(m)[1])
		return strings.Repeat("x", n)
	})
	text = strings.ReplaceAll(text, "{domain}", r.srv.Domain)
	for name, a := range r.clients {
		if a.jid != "" {
			text = strings.ReplaceAll(text, "{"+name+"}", a.jid)
			bare, _, _ := strings.Cut(a.jid, "/")
			text = strings.ReplaceAll(text, "{"+name+"/bare}", bare)
		}
	}
	if a, ok := r.clients[s.actor]; ok {
		if b, ok := a.conn.(*xmpptest.BOSH); ok {
			text = ridPattern.ReplaceAllStringFunc(text, func(m string) string {
				n, _ := strconv.ParseInt(ridPattern.FindStringSubmatch(m)[1], 10, 64)
				return strconv.FormatInt(b.RID+n, 10)
			})
			if strings.Contains(text, "{sid}") && b.SID == "" {
				r.t.Fatalf("line %d: {sid} before %s received a session creation response", s.line, s.actor)
			}
			text = strings.ReplaceAll(text, "{sid}", b.SID)
		}
	}
	return text
}

// block is the XML of step s, placeholders substituted.
func (r *runner) block(s step) string {
	return r.expand(s, strings.TrimRight(s.block, "\n"))
}

// client is the connection of the actor of s.
func (r *runner) client(s step) transport {
	a, ok := r.clients[s.actor]
	if !ok {
		r.t.Fatalf("line %d: %s is not connected", s.line, s.actor)
	}
	if a.conn == nil {
		r.t.Fatalf("line %d: %s was refused with HTTP status %d", s.line, s.actor, a.refused)
	}
	return a.conn
}

// webSocket and boshClient are the connection of the actor of s, for the
// steps of one transport.
func (r *runner) webSocket(s step) *xmpptest.WebSocket {
	c, ok := r.client(s).(*xmpptest.WebSocket)
	if !ok {
		r.t.Fatalf("line %d: %s is not a WebSocket client", s.line, s.actor)
	}
	return c
}

func (r *runner) boshClient(s step) *xmpptest.BOSH {
	if _, ok := r.clients[s.actor]; !ok {
		// A BOSH client starts with its first request.
		r.add(s.actor, &actor{conn: xmpptest.NewBOSH(r.t, r.srv.HTTPClient(r.t, 0), r.srv.BOSHURL(), r.srv.Domain)})
	}
	c, ok := r.client(s).(*xmpptest.BOSH)
	if !ok {
		r.t.Fatalf("line %d: %s is not a BOSH client", s.line, s.actor)
	}
	return c
}

func (r *runner) add(name string, a *actor) {
	if !slices.Contains(r.order, name) {
		r.order = append(r.order, name)
	}
	r.clients[name] = a
}

// match checks that got matches the block of s.
func (r *runner) match(s step, got []byte) {
	r.t.Helper()
	want := r.expand(s, s.block)
	if err := xmlcmp.Equal([]byte(want), got, "jabber:client"); err != nil {
		r.t.Fatalf("line %d: %s received\n%s\nexpected\n%s\n%v", s.line, s.actor, got, want, err)
	}
}

func (r *runner) run(s step) {
	t := r.t
	t.Helper()
	words := strings.Fields(s.verb)
	switch {
	case s.actor == "user":
		// "user alice has password secret"
		if len(words) != 4 || words[1] != "has" || words[2] != "password" {
			t.Fatalf("line %d: want 'user NAME has password PW'", s.line)
		}
		r.srv.AddUser(t, words[0], words[3])
		r.passwords[words[0]] = words[3]
	case strings.HasPrefix(s.verb, "logs in"):
		r.login(s, words)
	case strings.HasPrefix(s.verb, "fails to log in"):
		// "eve fails to log in [from ADDR] [with MECH] [user NAME]
		// [password PW]": the server answers
		// <failure><not-authorized/></failure>.
		r.failLogin(s, words[4:], "not-authorized")
	case strings.HasPrefix(s.verb, "is throttled"):
		// "eve is throttled [from ADDR] [with MECH] [user NAME]
		// [password PW]": the server answers
		// <failure><temporary-auth-failure/></failure> to the client's
		// first message, before a password could matter.
		r.failLogin(s, words[2:], "temporary-auth-failure")
	case s.verb == "connects" || strings.HasPrefix(s.verb, "connects from "):
		from, _ := strings.CutPrefix(s.verb, "connects from ")
		if from == s.verb {
			from = ""
		}
		r.add(s.actor, &actor{conn: xmpptest.DialFrom(t, from, r.srv.Addr, r.srv.Domain)})
	case s.verb == "connects with direct tls":
		r.add(s.actor, &actor{conn: xmpptest.DialTLS(t, r.srv.DirectTLSAddr, r.srv.Domain)})
	case s.verb == "connects with tls":
		c := xmpptest.Dial(t, r.srv.Addr, r.srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		r.add(s.actor, &actor{conn: c})
	case strings.HasPrefix(s.verb, "opens websocket"):
		r.openWebSocket(s, words[2:])
	case strings.HasPrefix(s.verb, "is refused with http "):
		a, ok := r.clients[s.actor]
		if !ok {
			t.Fatalf("line %d: %s opened nothing", s.line, s.actor)
		}
		if want := words[len(words)-1]; strconv.Itoa(a.refused) != want {
			t.Fatalf("line %d: %s: expected HTTP status %s, the upgrade got %d", s.line, s.actor, want, max(a.refused, http.StatusSwitchingProtocols))
		}
		delete(r.clients, s.actor)
	case s.verb == "disconnects":
		r.client(s).Close()
		delete(r.clients, s.actor)
	case s.verb == "receives stream header":
		c, ok := r.client(s).(*xmpptest.Client)
		if !ok {
			t.Fatalf("line %d: %s has no stream header (receive its <open/>)", s.line, s.actor)
		}
		h := c.ReadHeader()
		if h.From != r.srv.Domain || h.Version != "1.0" || h.ID == "" || h.NS != "jabber:client" {
			t.Fatalf("line %d: unexpected stream header %+v", s.line, h)
		}
	case s.verb == "sends whitespace":
		r.client(s).Send(" \n\t \r\n")
	case s.verb == "sends":
		r.client(s).Send(r.block(s))
	case s.verb == "sends binary frame":
		r.webSocket(s).SendMessage(websocket.MessageBinary, r.block(s))
	case s.verb == "receives":
		el, err := r.client(s).Next()
		if err != nil {
			t.Fatalf("line %d: %s expected\n%s\ngot error %v", s.line, s.actor, s.block, err)
		}
		r.match(s, el.Raw)
	case strings.HasPrefix(s.verb, "receives websocket close "):
		code, err := strconv.Atoi(words[len(words)-1])
		if err != nil {
			t.Fatalf("line %d: want 'receives websocket close CODE'", s.line)
		}
		r.webSocket(s).ExpectClosure(websocket.StatusCode(code))
		delete(r.clients, s.actor)
	case strings.HasPrefix(s.verb, "receives stream error "):
		r.client(s).ExpectStreamError(words[len(words)-1])
		delete(r.clients, s.actor)
	case s.verb == "is disconnected":
		r.client(s).ExpectClosed()
		delete(r.clients, s.actor)
	case s.verb == "posts" || strings.HasPrefix(s.verb, "posts with origin "):
		// A BOSH request, sent in the background: the server may hold it.
		c := r.boshClient(s)
		origin, ok := strings.CutPrefix(s.verb, "posts with origin ")
		if !ok {
			origin = ""
		}
		c.Origin = origin
		c.Post(r.block(s))
	case s.verb == "receives response" || strings.HasPrefix(s.verb, "receives response after "):
		e := r.boshClient(s).Response()
		if e.Status != http.StatusOK {
			t.Fatalf("line %d: %s: HTTP status %d: %s", s.line, s.actor, e.Status, e.Body)
		}
		if after, ok := strings.CutPrefix(s.verb, "receives response after "); ok {
			d, err := time.ParseDuration(after)
			if err != nil {
				t.Fatalf("line %d: want 'receives response after DURATION'", s.line)
			}
			if took := e.Arrived.Sub(e.Posted); took < d {
				t.Fatalf("line %d: %s: the response came after %v, before %v", s.line, s.actor, took.Round(time.Millisecond), d)
			}
		}
		r.match(s, e.Body)
	case strings.HasPrefix(s.verb, "receives http status "):
		e := r.boshClient(s).Response()
		if want := words[len(words)-1]; strconv.Itoa(e.Status) != want {
			t.Fatalf("line %d: %s: expected HTTP status %s, got %d: %s", s.line, s.actor, want, e.Status, e.Body)
		}
		if s.block != "" {
			r.match(s, e.Body)
		}
	case s.actor == "nobody" && s.verb == "receives anything":
		r.quiet(s)
	default:
		t.Fatalf("line %d: unknown step %q", s.line, s.actor+" "+s.verb)
	}
}

// login is how a login step logs in.
type login struct{ over, from, resource, mech, user, password string }

// failLogin runs a login over TCP that must fail with cond.
func (r *runner) failLogin(s step, words []string, cond string) {
	t := r.t
	o := r.loginOptions(s, words, login{over: "tcp", mech: "SCRAM-SHA-256", user: s.actor, password: "wrong"})
	if o.over != "tcp" || o.resource != "" {
		t.Fatalf("line %d: a failed login is over TCP, with no resource", s.line)
	}
	c := xmpptest.DialFrom(t, o.from, r.srv.Addr, r.srv.Domain)
	c.OpenStream()
	c.StartTLS(0)
	err := c.Auth(o.mech, o.user, o.password)
	if !errors.Is(err, xmpptest.ErrAuth) || !strings.Contains(err.Error(), "<"+cond+"/>") {
		t.Fatalf("line %d: expected <%s/>, got %v", s.line, cond, err)
	}
	if cond == "temporary-auth-failure" && c.Challenges != 0 {
		t.Fatalf("line %d: <%s/> came after %d challenges, not at the first message", s.line, cond, c.Challenges)
	}
	r.add(s.actor, &actor{conn: c})
}

// loginOptions reads "[over TRANSPORT] [from ADDR] [as RESOURCE] [with
// MECH] [user NAME] [password PW]" from words, over the defaults in o;
// from (a local IP address to connect from) is for TCP.
func (r *runner) loginOptions(s step, words []string, o login) login {
	if len(words)%2 != 0 {
		r.t.Fatalf("line %d: options of a login come in pairs", s.line)
	}
	for i := 0; i < len(words); i += 2 {
		v := words[i+1]
		switch words[i] {
		case "over":
			o.over = v
		case "from":
			o.from = v
		case "as":
			o.resource = v
		case "with":
			o.mech = v
		case "user":
			o.user = v
		case "password":
			o.password = v
		default:
			r.t.Fatalf("line %d: unknown %q in a login", s.line, words[i])
		}
	}
	return o
}

// login runs "alice logs in [over websocket|bosh] [from ADDR] [as
// RESOURCE] [with MECH] [user NAME] [password PW]": over TCP with STARTTLS
// by default (from the local address ADDR, if given), over wss:// or
// https:// with the others.
func (r *runner) login(s step, words []string) {
	t := r.t
	o := r.loginOptions(s, words[2:], login{over: "tcp", resource: s.actor, mech: "SCRAM-SHA-256", user: s.actor})
	if o.password == "" {
		o.password = r.passwords[o.user]
	}
	if o.from != "" && o.over != "tcp" {
		t.Fatalf("line %d: 'from' is for logins over TCP", s.line)
	}
	var a actor
	switch o.over {
	case "tcp":
		c := xmpptest.LoginFrom(t, o.from, r.srv.Addr, r.srv.Domain, o.user, o.password, o.mech, o.resource)
		a = actor{conn: c, jid: c.JID}
	case "websocket":
		c := xmpptest.LoginWebSocket(t, r.srv.WebSocketURL(), r.srv.Domain, r.srv.WebSocketOptions(t), o.mech, o.user, o.password, o.resource)
		a = actor{conn: c, jid: c.JID}
	case "bosh":
		c := xmpptest.LoginBOSH(t, r.srv.HTTPClient(t, 0), r.srv.BOSHURL(), r.srv.Domain, o.mech, o.user, o.password, o.resource)
		a = actor{conn: c, jid: c.JID}
	default:
		t.Fatalf("line %d: no transport %q (tcp, websocket, bosh)", s.line, o.over)
	}
	r.add(s.actor, &a)
}

// openWebSocket runs "raw opens websocket [with subprotocol P | with no
// subprotocol] [origin ORIGIN]": an upgrade at the wss:// endpoint,
// offering the subprotocol xmpp unless told otherwise. A refused upgrade
// is for an "is refused" step.
func (r *runner) openWebSocket(s step, words []string) {
	opts := r.srv.WebSocketOptions(r.t)
	for len(words) > 0 {
		switch {
		case len(words) >= 3 && words[0] == "with" && words[1] == "subprotocol":
			opts.Subprotocols = []string{words[2]}
			words = words[3:]
		case len(words) >= 3 && words[0] == "with" && words[1] == "no" && words[2] == "subprotocol":
			opts.Subprotocols = nil
			words = words[3:]
		case len(words) >= 2 && words[0] == "origin":
			opts.HTTPHeader.Set("Origin", words[1])
			words = words[2:]
		default:
			r.t.Fatalf("line %d: want 'opens websocket [with subprotocol P | with no subprotocol] [origin O]'", s.line)
		}
	}
	c, resp := xmpptest.DialWebSocketResult(r.t, r.srv.WebSocketURL(), r.srv.Domain, opts)
	if c == nil {
		r.add(s.actor, &actor{refused: resp.StatusCode})
		return
	}
	if p := c.WS.Subprotocol(); p != "xmpp" {
		r.t.Fatalf("line %d: the server accepted the upgrade with subprotocol %q (RFC 7395 §3.1 requires xmpp)", s.line, p)
	}
	r.add(s.actor, &actor{conn: c})
}

// quiet checks that no client has anything pending: each pings the server
// twice, and each answer must be the next element it receives. The first
// round makes sure everything sent before has been routed; the second
// catches what was routed to a client after its first answer.
func (r *runner) quiet(s step) {
	for round := 0; round < 2; round++ {
		for _, name := range r.order {
			a, ok := r.clients[name]
			if !ok || a.jid == "" {
				continue
			}
			c := a.conn
			r.barrier++
			id := fmt.Sprintf("barrier-%d", r.barrier)
			c.Send("<iq xmlns='jabber:client' type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
			el, err := c.Next()
			if err != nil {
				r.t.Fatalf("line %d: %s: %v", s.line, name, err)
			}
			if err := xmlcmp.Equal([]byte("<iq type='result' id='"+id+"' to='"+a.jid+"'/>"), el.Raw, "jabber:client"); err != nil {
				r.t.Fatalf("line %d: %s received unexpected\n%s", s.line, name, el.Raw)
			}
		}
	}
}
