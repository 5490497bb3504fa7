// Package conformance holds black-box tests of the whole server. Transcript
// tests (testdata/*.txt, one file per RFC section or XEP) run against an
// in-process server; the format is described in testdata/README.md.
package conformance

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
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
	"github.com/starling-xmpp/starling/internal/testbin"
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
	// ln is the listener of an actor that plays another server's part
	// ("listens as"); conn is then the connection it accepted last.
	ln *s2sListener
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
	// env is the federation environment, with "config s2s enabled".
	env *s2sEnv
	// smids are the stream management ids (XEP-0198 §5) each actor
	// received last in <enabled/>, kept after it disconnects.
	smids map[string]string
	// kept are the values that receives: blocks kept with {keep:NAME}
	// (an archive's stanza-ids), for {kept:NAME} in later blocks.
	kept map[string]string
}

// runTranscript runs the transcript at path against a fresh server.
func runTranscript(t *testing.T, path string) {
	steps, err := parseTranscript(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, clients: map[string]*actor{}, passwords: map[string]string{}, smids: map[string]string{}, kept: map[string]string{}}
	var edits []func(*config.Config)
	for _, s := range steps {
		if s.actor == "config" {
			if s.verb == "s2s enabled" {
				r.env = newS2SEnv(t)
			}
			edits = append(edits, r.configEdit(s))
		}
	}
	r.srv = testserver.Start(t, func(c *config.Config) {
		// The message archive stamps every chat message it archives
		// with a stanza-id: it is off but in the transcripts that turn
		// it on ("config module mam: enabled = true"), so that the
		// others need not match them.
		if c.Modules == nil {
			c.Modules = map[string]config.ModuleTable{}
		}
		// Parsed for each server: decoding a table writes to its
		// metadata, which parallel transcripts must not share.
		mamOff, err := config.Parse([]byte("[modules.mam]\nenabled = false\n"))
		if err != nil {
			t.Fatal(err)
		}
		c.Modules["mam"] = mamOff.Modules["mam"]
		for _, e := range edits {
			e(c)
		}
		if r.env != nil {
			// Certificates of the test CA for every host.
			cert, key, err := r.env.CA.WriteFiles(r.env.dir, "server", c.Server.Hosts...)
			if err != nil {
				t.Fatal(err)
			}
			c.TLS = config.TLS{Cert: cert, Key: key}
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
// origin ORIGIN", "config host DOMAIN" (another host served), "config
// admin NAME" (NAME@host administers the host, XEP-0133), the
// federation settings ("config s2s enabled", "s2s trusts test ca", "s2s
// require valid certificates", "s2s encryption optional", "s2s insecure
// domain DOMAIN") and "config SETTING VALUE" for the limits below.
func (r *runner) configEdit(s step) func(*config.Config) {
	t := r.t
	switch s.verb {
	case "registration enabled":
		return func(c *config.Config) { c.Registration.Enabled = true }
	case "tls optional":
		return func(c *config.Config) { c.C2S.RequireTLS = false }
	case "s2s enabled":
		// The listener on a port of its own, remote domains found
		// through the transcript's DNS server only.
		return func(c *config.Config) {
			c.S2S.Enabled = true
			c.S2S.Listen = []string{fmt.Sprintf("127.0.0.1:%d", r.env.port)}
			c.S2S.Resolver = r.env.DNS.Addr()
		}
	case "s2s trusts test ca":
		return func(c *config.Config) { c.S2S.CAFile = r.s2s(s).CAFile }
	case "s2s require valid certificates":
		return func(c *config.Config) { c.S2S.RequireValidCertificates = true }
	case "s2s encryption optional":
		return func(c *config.Config) { c.S2S.RequireEncryption = false }
	}
	if name, ok := strings.CutPrefix(s.verb, "admin "); ok {
		// "config admin NAME": NAME@{domain} in server.admins.
		return func(c *config.Config) { c.Server.Admins = append(c.Server.Admins, name+"@"+c.Server.Hosts[0]) }
	}
	if host, ok := strings.CutPrefix(s.verb, "host "); ok {
		return func(c *config.Config) { c.Server.Hosts = append(c.Server.Hosts, host) }
	}
	if domain, ok := strings.CutPrefix(s.verb, "s2s insecure domain "); ok {
		return func(c *config.Config) { c.S2S.InsecureDomains = append(c.S2S.InsecureDomains, domain) }
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
		durations["s2s negotiation timeout"] = &c.S2S.NegotiationTimeout.Duration
		durations["s2s retry delay"] = &c.S2S.RetryDelay.Duration
		durations["resume timeout"] = &c.C2S.ResumeTimeout.Duration
		ints["s2s max queue"] = &c.S2S.MaxQueue
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
	// peerPattern is "{id:NAME}", the stream id of a peer's current
	// stream, "{key:NAME}", the dialback key of the last <db:result/>
	// it received, or "{iq:NAME}", the id of the last IQ request it
	// received; base64Pattern is "{base64:TEXT}".
	peerPattern = regexp.MustCompile(`\{(id|key|iq):([^}]+)\}`)
	// smidPattern is "{smid:NAME}", the stream management id NAME
	// received last.
	smidPattern   = regexp.MustCompile(`\{smid:([^}]+)\}`)
	base64Pattern = regexp.MustCompile(`\{base64:([^}]*)\}`)
	// keepPattern is "{keep:NAME}", an attribute value or text of a
	// receives: block that matches anything and is kept as
	// "{kept:NAME}" (keptPattern) for the blocks after it.
	keepPattern = regexp.MustCompile(`\{keep:([^}]+)\}`)
	keptPattern = regexp.MustCompile(`\{kept:([^}]+)\}`)
)

// expand substitutes the placeholders of a block of step s.
func (r *runner) expand(s step, text string) string {
	text = bytesPattern.ReplaceAllStringFunc(text, func(m string) string {
		n, _ := strconv.Atoi(bytesPattern.FindStringSubmatch(m)[1])
		return strings.Repeat("x", n)
	})
	text = strings.ReplaceAll(text, "{domain}", r.srv.Domain)
	text = peerPattern.ReplaceAllStringFunc(text, func(m string) string {
		sub := peerPattern.FindStringSubmatch(m)
		var p *peer
		if a, ok := r.clients[sub[2]]; ok {
			p, _ = a.conn.(*peer)
		}
		if p == nil {
			r.t.Fatalf("line %d: %s: %s is not a peer server", s.line, m, sub[2])
		}
		switch sub[1] {
		case "id":
			return p.id
		case "iq":
			if p.iq == "" {
				r.t.Fatalf("line %d: %s received no IQ request", s.line, sub[2])
			}
			return p.iq
		}
		if p.key == "" {
			r.t.Fatalf("line %d: %s received no dialback key", s.line, sub[2])
		}
		return p.key
	})
	text = smidPattern.ReplaceAllStringFunc(text, func(m string) string {
		name := smidPattern.FindStringSubmatch(m)[1]
		id, ok := r.smids[name]
		if !ok {
			r.t.Fatalf("line %d: %s received no stream management id", s.line, name)
		}
		return id
	})
	text = keptPattern.ReplaceAllStringFunc(text, func(m string) string {
		name := keptPattern.FindStringSubmatch(m)[1]
		v, ok := r.kept[name]
		if !ok {
			r.t.Fatalf("line %d: nothing kept as %s", s.line, name)
		}
		return v
	})
	text = base64Pattern.ReplaceAllStringFunc(text, func(m string) string {
		return base64.StdEncoding.EncodeToString([]byte(base64Pattern.FindStringSubmatch(m)[1]))
	})
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
	if a.conn == nil && a.ln != nil {
		r.t.Fatalf("line %d: %s has no connection (it accepts them)", s.line, s.actor)
	}
	if a.conn == nil {
		r.t.Fatalf("line %d: %s was refused with HTTP status %d", s.line, s.actor, a.refused)
	}
	return a.conn
}

// drop forgets the actor of s, whose connection has ended; an actor that
// listens keeps listening.
func (r *runner) drop(s step) {
	if a, ok := r.clients[s.actor]; ok && a.ln != nil {
		a.conn = nil
		return
	}
	delete(r.clients, s.actor)
}

// isHeader reports whether raw starts with a stream header.
func isHeader(raw string) bool {
	return strings.HasPrefix(raw, "<?xml") || strings.HasPrefix(raw, "<stream:stream")
}

// isPeer reports whether c speaks for another server.
func isPeer(c transport) bool {
	_, ok := c.(*peer)
	return ok
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
	ns := "jabber:client"
	if a, ok := r.clients[s.actor]; ok && (a.ln != nil || isPeer(a.conn)) {
		ns = nsServer
	}
	if err := xmlcmp.Equal([]byte(keepPattern.ReplaceAllString(want, "*")), got, ns); err != nil {
		r.t.Fatalf("line %d: %s received\n%s\nexpected\n%s\n%v", s.line, s.actor, got, want, err)
	}
	if keepPattern.MatchString(want) {
		w, err := xmlcmp.Parse([]byte(want), ns)
		if err != nil {
			r.t.Fatalf("line %d: %v", s.line, err)
		}
		g, _ := xmlcmp.Parse(got, ns)
		r.keep(w, g)
	}
}

// keep records the values of got that want, which it matched, marks
// with {keep:NAME}.
func (r *runner) keep(want, got *xmlcmp.Node) {
	for k, v := range want.Attr {
		if m := keepPattern.FindStringSubmatch(v); m != nil {
			r.kept[m[1]] = got.Attr[k]
		}
	}
	if m := keepPattern.FindStringSubmatch(want.Text); m != nil {
		r.kept[m[1]] = strings.TrimSpace(got.Text)
	}
	var gc []*xmlcmp.Node
	for _, c := range got.Children {
		if c.Name.Local != "" {
			gc = append(gc, c)
		}
	}
	for i, c := range want.Children {
		if c.Name.Local != "" && i < len(gc) {
			r.keep(c, gc[i])
		}
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
	case strings.HasPrefix(s.verb, "authenticates"):
		r.authenticate(s, words)
	case s.actor == "server" && strings.HasPrefix(s.verb, "will log "):
		// "server will log TEXT": a line containing TEXT, within the
		// client timeout (a timer of the server's, such as a
		// resumption timeout, firing).
		text := strings.TrimPrefix(s.verb, "will log ")
		deadline := time.Now().Add(xmpptest.Timeout)
		for len(r.srv.LogLines(text)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("line %d: the server logged nothing with %q in %v", s.line, text, xmpptest.Timeout)
			}
			<-time.After(10 * time.Millisecond)
		}
	case strings.HasPrefix(s.verb, "fails to log in"):
		// "eve fails to log in [from ADDR] [with MECH] [user NAME]
		// [password PW]": the server answers
		// <failure><not-authorized/></failure>.
		r.failLogin(s, words[4:], "not-authorized")
	case strings.HasPrefix(s.verb, "is refused as disabled"):
		// "dave is refused as disabled [with MECH] [user NAME]
		// [password PW]": the right password (by default the one of
		// "user NAME has password") is answered
		// <failure><account-disabled/></failure> (RFC 6120 §6.5.2).
		w := words[4:]
		if !slices.Contains(w, "password") {
			user := s.actor
			if i := slices.Index(w, "user"); i >= 0 && i+1 < len(w) {
				user = w[i+1]
			}
			w = append(slices.Clip(w), "password", r.passwords[user])
		}
		r.failLogin(s, w, "account-disabled")
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
		r.drop(s)
	case s.verb == "disconnects":
		r.client(s).Close()
		r.drop(s)
	case s.verb == "receives stream header" && isPeer(r.client(s)):
		p := r.peer(s)
		h, attrs := p.readHeader()
		p.checkHeader(h, attrs, r.hosts())
		p.id = h.ID
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
		block := r.block(s)
		if p, ok := r.client(s).(*peer); ok && !p.accepting && isHeader(block) {
			// A stream (re)started by hand: the server's answer starts
			// a new stream too.
			p.restartReader()
		}
		r.client(s).Send(block)
	case s.verb == "sends binary frame":
		r.webSocket(s).SendMessage(websocket.MessageBinary, r.block(s))
	case s.verb == "receives":
		el, err := r.client(s).Next()
		if err != nil {
			t.Fatalf("line %d: %s expected\n%s\ngot error %v", s.line, s.actor, s.block, err)
		}
		r.match(s, el.Raw)
		if p, ok := r.client(s).(*peer); ok && el.Name.Space == nsDialback && el.Name.Local == "result" {
			p.key = strings.TrimSpace(el.Text())
		}
		if p, ok := r.client(s).(*peer); ok && el.Name.Local == "iq" {
			if typ := xmpptest.Attr(el, "type"); typ == "get" || typ == "set" {
				p.iq = xmpptest.Attr(el, "id")
			}
		}
		if el.Name.Space == "urn:xmpp:sm:3" && el.Name.Local == "enabled" && el.AttrValue("id") != "" {
			r.smids[s.actor] = el.AttrValue("id")
		}
	case strings.HasPrefix(s.verb, "receives websocket close "):
		code, err := strconv.Atoi(words[len(words)-1])
		if err != nil {
			t.Fatalf("line %d: want 'receives websocket close CODE'", s.line)
		}
		r.webSocket(s).ExpectClosure(websocket.StatusCode(code))
		r.drop(s)
	case strings.HasPrefix(s.verb, "receives stream error "):
		r.client(s).ExpectStreamError(words[len(words)-1])
		r.drop(s)
	case s.verb == "is cut off":
		// The server drops the connection without a word (a stream
		// management resumption took its session, XEP-0198 §5).
		if el, err := r.client(s).Next(); err == nil {
			t.Fatalf("line %d: %s expected the connection to end, got %s", s.line, s.actor, el.Raw)
		}
		r.drop(s)
	case s.verb == "is disconnected":
		r.client(s).ExpectClosed()
		r.drop(s)
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
	case r.s2sStep(s, words):
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

// authenticate runs "alice authenticates [over websocket|bosh] [as
// RESOURCE] [with MECH] [user NAME] [password PW]": a login without the
// bind (the features after authentication read), for a stream
// management resumption (XEP-0198 §5). RESOURCE names the full JID the
// actor's {alice} stands for (the session it means to resume).
func (r *runner) authenticate(s step, words []string) {
	t := r.t
	o := r.loginOptions(s, words[1:], login{over: "tcp", mech: "SCRAM-SHA-256", user: s.actor})
	if o.password == "" {
		o.password = r.passwords[o.user]
	}
	var a actor
	var err error
	switch o.over {
	case "tcp":
		c := xmpptest.Dial(t, r.srv.Addr, r.srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		err = c.Auth(o.mech, o.user, o.password)
		a.conn = c
	case "websocket":
		c := xmpptest.DialWebSocket(t, r.srv.WebSocketURL(), r.srv.Domain, r.srv.WebSocketOptions(t))
		c.OpenStream()
		err = c.Auth(o.mech, o.user, o.password)
		a.conn = c
	case "bosh":
		c := xmpptest.NewBOSH(t, r.srv.HTTPClient(t, 0), r.srv.BOSHURL(), r.srv.Domain)
		c.Create()
		err = c.Auth(o.mech, o.user, o.password)
		a.conn = c
	default:
		t.Fatalf("line %d: no transport %q (tcp, websocket, bosh)", s.line, o.over)
	}
	if err != nil {
		t.Fatalf("line %d: %v", s.line, err)
	}
	if o.resource != "" {
		a.jid = o.user + "@" + r.srv.Domain + "/" + o.resource
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

// Federation (RFC 6120 server-to-server, XEP-0220, XEP-0178): the
// transcripts' actors that speak for other servers.

// Namespaces of server-to-server streams, as the peers write them.
const (
	nsServer   = "jabber:server"
	nsDialback = stream.NSDialback
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
)

// s2sEnv is what a transcript with "config s2s enabled" has besides the
// server: a test CA that issues every certificate (the server's too), a
// DNS server through which the server finds the peers' listeners (its
// [s2s] resolver: nothing is asked of the machine's DNS, nothing leaves
// loopback), and the port of the server's s2s listener.
type s2sEnv struct {
	*testserver.Federation
	port int
	dir  string
}

func newS2SEnv(t *testing.T) *s2sEnv {
	t.Helper()
	return &s2sEnv{Federation: testserver.NewFederation(t), port: testbin.FreePort(t), dir: t.TempDir()}
}

// peer is a connection of a transcript that speaks for another server:
// one it opened to the server's s2s listener (the initiating side), or
// one the server opened to its listener (the accepting side). Reads are
// bounded by xmpptest.Timeout, as a client's.
type peer struct {
	t         *testing.T
	nc        net.Conn
	rec       *recorder
	r         *stream.Reader
	accepting bool
	// opened: the server's stream header of the current stream was read.
	opened bool
	// from is the peer's own domain, to the server's: the addresses of
	// the headers the peer sends.
	from, to string
	// id is the current stream's id: the server's, or the peer's own
	// when accepting.
	id string
	// key is the dialback key of the last <db:result/> received.
	key string
	// iq is the id of the last IQ get or set received.
	iq string
	// peerCerts is the certificate chain the server presented in TLS.
	peerCerts []*x509.Certificate
}

// recorder keeps what is read through it while on, so that the raw
// stream header can be checked for what stream.Header does not carry
// (the dialback namespace declaration).
type recorder struct {
	src io.Reader
	on  bool
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.src.Read(p)
	if r.on {
		r.buf = append(r.buf, p[:n]...)
	}
	return n, err
}

func newPeer(t *testing.T, nc net.Conn, accepting bool) *peer {
	t.Cleanup(func() { nc.Close() })
	rec := &recorder{src: nc}
	return &peer{t: t, nc: nc, rec: rec, accepting: accepting,
		r: stream.NewReader(rec, stream.Limits{MaxElementBytes: 1 << 20, MaxDepth: 100})}
}

// Send writes raw as it is.
func (p *peer) Send(raw string) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(xmpptest.Timeout))
	if _, err := p.nc.Write([]byte(raw)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// Next reads the next top-level element.
func (p *peer) Next() (*stream.Element, error) {
	p.nc.SetReadDeadline(time.Now().Add(xmpptest.Timeout))
	return p.r.Next()
}

func (p *peer) mustNext() *stream.Element {
	p.t.Helper()
	el, err := p.Next()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return el
}

// Close closes the connection without closing the stream.
func (p *peer) Close() error { return p.nc.Close() }

// ExpectStreamError reads until a stream error with cond (after the
// server's header, which comes first even for a refused one, RFC 6120
// §4.9.1.2), then the end of the stream.
func (p *peer) ExpectStreamError(cond string) {
	p.t.Helper()
	if !p.opened {
		p.readHeader()
	}
	for {
		el, err := p.Next()
		if err != nil {
			p.t.Fatalf("expected stream error %s, got %v", cond, err)
		}
		if el.Name.Space == stream.NS && el.Name.Local == "error" {
			if !bytes.Contains(el.Raw, []byte("<"+cond+" ")) && !bytes.Contains(el.Raw, []byte("<"+cond+"/>")) {
				p.t.Fatalf("expected stream error %s, got %s", cond, el.Raw)
			}
			break
		}
	}
	p.ExpectClosed()
}

// ExpectClosed checks that the server closes the stream.
func (p *peer) ExpectClosed() {
	p.t.Helper()
	el, err := p.Next()
	switch {
	case err == nil:
		p.t.Fatalf("expected the stream to close, got %s", el.Raw)
	case errors.Is(err, stream.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
	default:
		p.t.Fatalf("expected the stream to close, got %v", err)
	}
}

// readHeader reads the server's stream header, with the attributes of
// its start tag as written (namespace declarations included, by their
// qualified names: "xmlns", "xmlns:db").
func (p *peer) readHeader() (stream.Header, map[string]string) {
	p.t.Helper()
	p.rec.buf, p.rec.on = p.rec.buf[:0], true
	p.nc.SetReadDeadline(time.Now().Add(xmpptest.Timeout))
	h, err := p.r.ReadHeader()
	p.rec.on = false
	if err != nil {
		p.t.Fatalf("the server's stream header: %v", err)
	}
	p.opened = true
	attrs := map[string]string{}
	d := xml.NewDecoder(bytes.NewReader(p.rec.buf))
	for {
		tok, err := d.RawToken()
		if err != nil {
			p.t.Fatalf("the server's stream header %q: %v", p.rec.buf, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				k := a.Name.Local
				if a.Name.Space != "" {
					k = a.Name.Space + ":" + k
				}
				attrs[k] = a.Value
			}
			break
		}
	}
	return h, attrs
}

// checkHeader checks a stream header of the server (RFC 6120 §4.7.1):
// jabber:server as the content namespace (§4.8.2), version 1.0 (§4.7.5),
// the dialback namespace declared (XEP-0220 §2.3.1, which peers look
// for); as the initiating entity, no id, a 'from' the server serves and
// the peer's domain as 'to'; as the receiving entity, an id, the domain
// addressed as 'from' and the peer's domain, if it gave one, as 'to'.
func (p *peer) checkHeader(h stream.Header, attrs map[string]string, hosts []string) {
	p.t.Helper()
	var bad []string
	if h.NS != nsServer {
		bad = append(bad, "content namespace "+strconv.Quote(h.NS))
	}
	if h.Version != "1.0" {
		bad = append(bad, "version "+strconv.Quote(h.Version))
	}
	if attrs["xmlns:db"] != nsDialback {
		bad = append(bad, "no xmlns:db='"+nsDialback+"'")
	}
	if p.accepting {
		if h.ID != "" {
			bad = append(bad, "an id from the initiating entity")
		}
		if !slices.Contains(hosts, h.From) {
			bad = append(bad, "from "+strconv.Quote(h.From)+", not a host of the server")
		}
		if h.To != p.from {
			bad = append(bad, "to "+strconv.Quote(h.To)+", want "+strconv.Quote(p.from))
		}
	} else {
		if h.ID == "" {
			bad = append(bad, "no id")
		}
		// A header the peer sent raw leaves its addresses unknown.
		if p.to != "" && h.From != p.to {
			bad = append(bad, "from "+strconv.Quote(h.From)+", want "+strconv.Quote(p.to))
		}
		if p.to != "" && h.To != p.from {
			bad = append(bad, "to "+strconv.Quote(h.To)+", want "+strconv.Quote(p.from))
		}
	}
	if len(bad) > 0 {
		p.t.Fatalf("the server's stream header %+v: %s", h, strings.Join(bad, "; "))
	}
}

// header is a stream header the peer sends: from its domain to the
// server's, with an id when it answers.
func (p *peer) header() string {
	h := "<?xml version='1.0'?><stream:stream xmlns='" + nsServer + "' xmlns:stream='" + stream.NS + "' xmlns:db='" + nsDialback + "' version='1.0'"
	for _, a := range [][2]string{{"from", p.from}, {"to", p.to}, {"id", p.id}} {
		if a[1] != "" {
			h += " " + a[0] + "='" + a[1] + "'"
		}
	}
	return h + ">"
}

// restartReader starts reading a new stream on the connection (RFC 6120
// §4.3.3): nothing read before counts.
func (p *peer) restartReader() {
	p.rec.src = p.nc
	p.r.Reset(p.rec)
	p.opened = false
}

// openStream is the initiating side of a stream (re)start: the peer's
// header, then the server's, checked.
func (p *peer) openStream(hosts []string) {
	p.t.Helper()
	if p.opened {
		p.restartReader()
	}
	p.Send(p.header())
	h, attrs := p.readHeader()
	p.checkHeader(h, attrs, hosts)
	p.id = h.ID
}

// answerStream is the accepting side: the server's header, checked, then
// the peer's with a new id.
func (p *peer) answerStream(hosts []string) {
	p.t.Helper()
	if p.opened {
		p.restartReader()
	}
	h, attrs := p.readHeader()
	p.checkHeader(h, attrs, hosts)
	p.to = h.From
	p.id = newStreamID()
	p.Send(p.header())
}

func newStreamID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startTLS is STARTTLS from the initiating side (RFC 6120 §5.4) with
// cert as the client certificate (nil: none); the server's certificate is
// not checked.
func (p *peer) startTLS(cert *tls.Certificate) {
	p.t.Helper()
	p.Send("<starttls xmlns='" + nsTLS + "'/>")
	if el := p.mustNext(); el.Name.Space != nsTLS || el.Name.Local != "proceed" {
		p.t.Fatalf("expected <proceed/>, got %s", el.Raw)
	}
	tc := tls.Client(p.nc, &tls.Config{
		ServerName:         p.to,
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		},
	})
	p.handshake(tc)
}

// acceptTLS is STARTTLS from the receiving side: the server's <starttls/>,
// <proceed/>, and a handshake with cert, the server's client certificate
// requested.
func (p *peer) acceptTLS(cert *tls.Certificate) {
	p.t.Helper()
	if el := p.mustNext(); el.Name.Space != nsTLS || el.Name.Local != "starttls" {
		p.t.Fatalf("expected <starttls/>, got %s", el.Raw)
	}
	p.Send("<proceed xmlns='" + nsTLS + "'/>")
	p.handshake(tls.Server(p.nc, &tls.Config{Certificates: []tls.Certificate{*cert}, ClientAuth: tls.RequestClientCert}))
}

func (p *peer) handshake(tc *tls.Conn) {
	p.t.Helper()
	tc.SetDeadline(time.Now().Add(xmpptest.Timeout))
	if err := tc.Handshake(); err != nil {
		p.t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	p.peerCerts = tc.ConnectionState().PeerCertificates
	p.nc = tc
	p.restartReader()
}

// s2sListener is an actor's listener, where the server's streams to its
// domain arrive.
type s2sListener struct {
	ln     *net.TCPListener
	domain string
	// cert is the certificate of its TLS; nil: it offers no TLS.
	cert *tls.Certificate
}

// s2s is the transcript's federation environment.
func (r *runner) s2s(s step) *s2sEnv {
	if r.env == nil {
		r.t.Fatalf("line %d: federation steps need 'config s2s enabled'", s.line)
	}
	return r.env
}

// peer is the actor of s as a peer server.
func (r *runner) peer(s step) *peer {
	p, ok := r.client(s).(*peer)
	if !ok {
		r.t.Fatalf("line %d: %s is not a peer server", s.line, s.actor)
	}
	return p
}

// hosts are the domains the server serves.
func (r *runner) hosts() []string { return r.srv.Config.Server.Hosts }

// certificate reads "with certificate for D", "with self-signed
// certificate for D" or "with no certificate" (nil) at the start of
// words, and returns the words after it.
func (r *runner) certificate(s step, words []string) (cert *tls.Certificate, rest []string) {
	e := r.s2s(s)
	switch {
	case len(words) >= 4 && words[0] == "with" && words[1] == "certificate" && words[2] == "for":
		c, err := e.CA.Issue(words[3])
		if err != nil {
			r.t.Fatal(err)
		}
		return &c, words[4:]
	case len(words) >= 5 && words[0] == "with" && words[1] == "self-signed" && words[2] == "certificate" && words[3] == "for":
		return selfSigned(r.t, words[4]), words[5:]
	case len(words) >= 3 && words[0] == "with" && words[1] == "no" && words[2] == "certificate":
		return nil, words[3:]
	}
	r.t.Fatalf("line %d: want 'with certificate for D', 'with self-signed certificate for D' or 'with no certificate'", s.line)
	return nil, nil
}

// selfSigned is a certificate for domain that no CA issued.
func selfSigned(t *testing.T, domain string) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// s2sStep runs the federation steps; it reports false for a step that
// is not one.
func (r *runner) s2sStep(s step, words []string) bool {
	t := r.t
	switch {
	case s.actor == "dns" && len(words) == 6 && strings.Join(words[1:], " ") == "points to a closed port":
		// Its SRV record names a port where nothing listens.
		r.s2s(s).Register(words[0], testbin.FreePort(t))
	case s.actor == "server" && strings.HasPrefix(s.verb, "logged "):
		if text := strings.TrimPrefix(s.verb, "logged "); len(r.srv.LogLines(text)) == 0 {
			t.Fatalf("line %d: the server logged nothing with %q", s.line, text)
		}
	case s.verb == "connects to s2s" || strings.HasPrefix(s.verb, "connects to s2s as "):
		e := r.s2s(s)
		nc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), xmpptest.Timeout)
		if err != nil {
			t.Fatalf("line %d: %v", s.line, err)
		}
		p := newPeer(t, nc, false)
		r.add(s.actor, &actor{conn: p})
		if len(words) > 3 {
			r.openStream(s, p, words[4:])
		}
	case strings.HasPrefix(s.verb, "opens stream as "):
		r.openStream(s, r.peer(s), words[3:])
	case strings.HasPrefix(s.verb, "starts tls"):
		p := r.peer(s)
		rest, sends := strings.CutSuffix(strings.Join(words[2:], " "), " and sends")
		if p.accepting {
			a := r.clients[s.actor]
			if a.ln == nil || a.ln.cert == nil || rest != "" || sends {
				t.Fatalf("line %d: an accepting peer starts tls with its listener's certificate", s.line)
			}
			p.acceptTLS(a.ln.cert)
			p.answerStream(r.hosts())
			return true
		}
		cert, more := r.certificate(s, strings.Fields(rest))
		if len(more) > 0 {
			t.Fatalf("line %d: unexpected %q", s.line, strings.Join(more, " "))
		}
		p.startTLS(cert)
		if sends {
			p.Send(r.block(s))
		} else {
			p.openStream(r.hosts())
		}
	case s.verb == "restarts stream":
		// After <success/> (RFC 6120 §6.4.6).
		if p := r.peer(s); p.accepting {
			p.answerStream(r.hosts())
		} else {
			p.openStream(r.hosts())
		}
	case strings.HasPrefix(s.verb, "listens as "):
		r.listen(s, words[2:])
	case s.verb == "accepts connection" || s.verb == "accepts stream":
		p := r.accept(s)
		if s.verb == "accepts stream" {
			p.answerStream(r.hosts())
		}
	case strings.HasPrefix(s.verb, "answers dialback verify "):
		r.answerVerify(s, words[3])
	case strings.HasPrefix(s.verb, "received client certificate for "):
		r.checkClientCert(s, words[4])
	default:
		return false
	}
	return true
}

// openStream runs "as D [to T]": the peer's domain D, addressing T
// (default: the server's first host).
func (r *runner) openStream(s step, p *peer, words []string) {
	switch {
	case len(words) == 1:
		p.from, p.to = words[0], r.srv.Domain
	case len(words) == 3 && words[1] == "to":
		p.from, p.to = words[0], r.expand(s, words[2])
	default:
		r.t.Fatalf("line %d: want 'as DOMAIN [to DOMAIN]'", s.line)
	}
	p.openStream(r.hosts())
}

// listen runs "remote listens as D [with certificate for D2 | with
// self-signed certificate for D2 | with no tls]": a listener registered
// in the DNS server as D's (_xmpp-server SRV record), offering STARTTLS
// with a certificate from the test CA for D by default.
func (r *runner) listen(s step, words []string) {
	e := r.s2s(s)
	if len(words) == 0 {
		r.t.Fatalf("line %d: want 'listens as DOMAIN [...]'", s.line)
	}
	l := &s2sListener{domain: words[0]}
	switch rest := words[1:]; {
	case len(rest) == 0:
		c, err := e.CA.Issue(l.domain)
		if err != nil {
			r.t.Fatal(err)
		}
		l.cert = &c
	case strings.Join(rest, " ") == "with no tls":
	default:
		cert, more := r.certificate(s, rest)
		if cert == nil || len(more) > 0 {
			r.t.Fatalf("line %d: a listener has a certificate, or 'with no tls'", s.line)
		}
		l.cert = cert
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ln.Close() })
	l.ln = ln
	e.Register(l.domain, ln.Addr().(*net.TCPAddr).Port)
	r.add(s.actor, &actor{ln: l})
}

// accept takes the next connection the server opened to the actor's
// listener; it becomes the actor's connection.
func (r *runner) accept(s step) *peer {
	a, ok := r.clients[s.actor]
	if !ok || a.ln == nil {
		r.t.Fatalf("line %d: %s listens nowhere", s.line, s.actor)
	}
	a.ln.ln.SetDeadline(time.Now().Add(xmpptest.Timeout))
	nc, err := a.ln.ln.Accept()
	if err != nil {
		r.t.Fatalf("line %d: %s: no connection from the server: %v", s.line, s.actor, err)
	}
	p := newPeer(r.t, nc, true)
	p.from = a.ln.domain
	a.conn = p
	return p
}

// answerVerify runs "auth answers dialback verify valid|invalid" [+
// block]: as the authoritative server of its listener's domain, it takes
// the server's connection, negotiates the stream (STARTTLS required if
// it has a certificate; then dialback with errors as the only feature),
// reads the <db:verify/> (matched against the block, if any), answers it
// with type (XEP-0220 §2.2.2: from and to swapped, the same id), and
// expects the server to close the stream, which served only this.
func (r *runner) answerVerify(s step, typ string) {
	t := r.t
	if typ != "valid" && typ != "invalid" {
		t.Fatalf("line %d: want 'answers dialback verify valid|invalid'", s.line)
	}
	p := r.accept(s)
	p.answerStream(r.hosts())
	if cert := r.clients[s.actor].ln.cert; cert != nil {
		p.Send("<stream:features><starttls xmlns='" + nsTLS + "'><required/></starttls></stream:features>")
		p.acceptTLS(cert)
		p.answerStream(r.hosts())
	}
	p.Send("<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>")
	el := p.mustNext()
	if el.Name.Space != nsDialback || el.Name.Local != "verify" {
		t.Fatalf("line %d: %s expected <db:verify/>, got %s", s.line, s.actor, el.Raw)
	}
	if s.block != "" {
		r.match(s, el.Raw)
	}
	attr := func(name string) string { return xmpptest.Attr(el, name) }
	p.Send("<db:verify xmlns:db='" + nsDialback + "' from='" + attr("to") + "' to='" + attr("from") + "' id='" + attr("id") + "' type='" + typ + "'/>")
	p.ExpectClosed()
}

// checkClientCert runs "remote received client certificate for D": the
// server presented, in the TLS of its connection to the actor, a
// certificate that the test CA issued for D (XEP-0178).
func (r *runner) checkClientCert(s step, domain string) {
	p := r.peer(s)
	if len(p.peerCerts) == 0 {
		r.t.Fatalf("line %d: the server presented no certificate", s.line)
	}
	inter := x509.NewCertPool()
	for _, c := range p.peerCerts[1:] {
		inter.AddCert(c)
	}
	_, err := p.peerCerts[0].Verify(x509.VerifyOptions{
		DNSName: r.expand(s, domain), Roots: r.s2s(s).CA.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		r.t.Fatalf("line %d: the server's certificate: %v", s.line, err)
	}
}
