// Package conformance holds black-box tests of the whole server. Transcript
// tests (testdata/*.txt, one file per RFC section or XEP) run against an
// in-process server; the format is described in testdata/README.md.
package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/internal/xmpptest"
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

// runner executes one transcript.
type runner struct {
	t       *testing.T
	srv     *testserver.Server
	clients map[string]*xmpptest.Client
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
	r := &runner{t: t, clients: map[string]*xmpptest.Client{}, passwords: map[string]string{}}
	r.srv = testserver.Start(t, func(c *config.Config) {
		for _, e := range edits {
			e(c)
		}
	})
	for _, s := range steps {
		if s.actor != "config" {
			r.run(s)
		}
	}
}

// configEdit understands the server settings transcripts change:
// "config registration enabled", "config tls optional" and
// "config SETTING VALUE" for the limits below.
func configEdit(t *testing.T, s step) func(*config.Config) {
	switch s.verb {
	case "registration enabled":
		return func(c *config.Config) { c.Registration.Enabled = true }
	case "tls optional":
		return func(c *config.Config) { c.C2S.RequireTLS = false }
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
		ints["outbound queue"] = &c.Limits.OutboundQueue
		ints["max roster items"] = &c.Limits.MaxRosterItems
		ints["max offline messages"] = &c.Limits.MaxOfflineMessages
		durations["connect timeout"] = &c.Limits.ConnectTimeout.Duration
		durations["auth timeout"] = &c.Limits.AuthTimeout.Duration
		durations["idle timeout"] = &c.Limits.IdleTimeout.Duration
		durations["ping timeout"] = &c.Limits.PingTimeout.Duration
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
// limits.
var bytesPattern = regexp.MustCompile(`\{bytes (\d+)\}`)

func (r *runner) expand(s string) string {
	s = bytesPattern.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.Atoi(bytesPattern.FindStringSubmatch(m)[1])
		return strings.Repeat("x", n)
	})
	s = strings.ReplaceAll(s, "{domain}", r.srv.Domain)
	for name, c := range r.clients {
		if c.JID != "" {
			s = strings.ReplaceAll(s, "{"+name+"}", c.JID)
			bare, _, _ := strings.Cut(c.JID, "/")
			s = strings.ReplaceAll(s, "{"+name+"/bare}", bare)
		}
	}
	return s
}

func (r *runner) client(s step) *xmpptest.Client {
	c, ok := r.clients[s.actor]
	if !ok {
		r.t.Fatalf("line %d: %s is not connected", s.line, s.actor)
	}
	return c
}

func (r *runner) add(name string, c *xmpptest.Client) {
	r.clients[name] = c
	r.order = append(r.order, name)
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
		// "alice logs in [as RESOURCE] [with MECH] [user NAME] [password PW]"
		res, mech, user := s.actor, "SCRAM-SHA-256", s.actor
		pw := ""
		for i := 2; i+1 < len(words); i += 2 {
			switch words[i] {
			case "as":
				res = words[i+1]
			case "with":
				mech = words[i+1]
			case "password":
				pw = words[i+1]
			case "user":
				user = words[i+1]
			}
		}
		if pw == "" {
			pw = r.passwords[user]
		}
		r.add(s.actor, xmpptest.Login(t, r.srv.Addr, r.srv.Domain, user, pw, mech, res))
	case strings.HasPrefix(s.verb, "fails to log in"):
		// "eve fails to log in [with MECH] [user NAME] [password PW]": the
		// server answers <failure><not-authorized/></failure>.
		mech, user, pw := "SCRAM-SHA-256", s.actor, "wrong"
		for i := 4; i+1 < len(words); i += 2 {
			switch words[i] {
			case "with":
				mech = words[i+1]
			case "password":
				pw = words[i+1]
			case "user":
				user = words[i+1]
			}
		}
		c := xmpptest.Dial(t, r.srv.Addr, r.srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		err := c.Auth(mech, user, pw)
		if !errors.Is(err, xmpptest.ErrAuth) || !strings.Contains(err.Error(), "<not-authorized/>") {
			t.Fatalf("line %d: expected <not-authorized/>, got %v", s.line, err)
		}
		r.add(s.actor, c)
	case s.verb == "connects":
		r.add(s.actor, xmpptest.Dial(t, r.srv.Addr, r.srv.Domain))
	case s.verb == "connects with direct tls":
		r.add(s.actor, xmpptest.DialTLS(t, r.srv.DirectTLSAddr, r.srv.Domain))
	case s.verb == "disconnects":
		r.client(s).Conn.Close()
		delete(r.clients, s.actor)
	case s.verb == "receives stream header":
		h := r.client(s).ReadHeader()
		if h.From != r.srv.Domain || h.Version != "1.0" || h.ID == "" || h.NS != "jabber:client" {
			t.Fatalf("line %d: unexpected stream header %+v", s.line, h)
		}
	case s.verb == "connects with tls":
		c := xmpptest.Dial(t, r.srv.Addr, r.srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		r.add(s.actor, c)
	case s.verb == "sends whitespace":
		r.client(s).Send(" \n\t \r\n")
	case s.verb == "sends":
		r.client(s).Send(r.expand(strings.TrimRight(s.block, "\n")))
	case s.verb == "receives":
		c := r.client(s)
		el, err := c.Next()
		if err != nil {
			t.Fatalf("line %d: %s expected\n%s\ngot error %v", s.line, s.actor, s.block, err)
		}
		want := r.expand(s.block)
		if err := xmlcmp.Equal([]byte(want), el.Raw, "jabber:client"); err != nil {
			t.Fatalf("line %d: %s received\n%s\nexpected\n%s\n%v", s.line, s.actor, el.Raw, want, err)
		}
	case strings.HasPrefix(s.verb, "receives stream error "):
		r.client(s).ExpectStreamError(words[len(words)-1])
		delete(r.clients, s.actor)
	case s.verb == "is disconnected":
		r.client(s).ExpectClosed()
		delete(r.clients, s.actor)
	case s.actor == "nobody" && s.verb == "receives anything":
		r.quiet(s)
	default:
		t.Fatalf("line %d: unknown step %q", s.line, s.actor+" "+s.verb)
	}
}

// quiet checks that no client has anything pending: each pings the server
// twice, and each answer must be the next element it receives. The first
// round makes sure everything sent before has been routed; the second
// catches what was routed to a client after its first answer.
func (r *runner) quiet(s step) {
	for round := 0; round < 2; round++ {
		for _, name := range r.order {
			c, ok := r.clients[name]
			if !ok || c.JID == "" {
				continue
			}
			r.barrier++
			id := fmt.Sprintf("barrier-%d", r.barrier)
			c.Send("<iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
			el, err := c.Next()
			if err != nil {
				r.t.Fatalf("line %d: %s: %v", s.line, name, err)
			}
			if err := xmlcmp.Equal([]byte("<iq type='result' id='"+id+"' to='"+c.JID+"'/>"), el.Raw, "jabber:client"); err != nil {
				r.t.Fatalf("line %d: %s received unexpected\n%s", s.line, name, el.Raw)
			}
		}
	}
}
