package extdisco

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
)

// TestCredentials: the TURN REST API scheme, against values computed with
// `printf %s USERNAME | openssl dgst -sha1 -hmac north -binary | base64`.
func TestCredentials(t *testing.T) {
	u, p := Credentials("north", "alice@example.org", time.Unix(1700000000, 0))
	if u != "1700000000:alice@example.org" || p != "PZI+z4ibN1IQ7v4pzuL4fO8lnhI=" {
		t.Errorf("Credentials = %q, %q", u, p)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		toml     string
		problems []string
	}{
		{toml: ""},
		{toml: `[[modules.extdisco.services]]
type = "stun"
host = "stun.example.org"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
secret = "north"
ttl = "1h"
name = "Example TURN"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
transport = "tcp"
secret = "north"
[[modules.extdisco.services]]
type = "turns"
host = "192.0.2.1"
port = 443
restricted = true
[[modules.extdisco.services]]
type = "stun"
host = "2001:db8::1"`},
		{toml: `[[modules.extdisco.services]]
type = "relay"
host = "turn..example.org"
port = 70000
[[modules.extdisco.services]]
host = "-turn.example.org"
transport = "sctp"
[[modules.extdisco.services]]
type = "turns"
host = ""
transport = "udp"`, problems: []string{
			`modules.extdisco.services.1.host: "turn..example.org" is not a host name or an IP address`,
			`modules.extdisco.services.1.port: must be between 1 and 65535 (0: the default), not 70000`,
			`modules.extdisco.services.1.type: must be stun, stuns, turn or turns, not "relay"`,
			`modules.extdisco.services.2.host: "-turn.example.org" is not a host name or an IP address`,
			`modules.extdisco.services.2.transport: must be udp or tcp, not "sctp"`,
			`modules.extdisco.services.2.type: missing: write stun, stuns, turn or turns`,
			`modules.extdisco.services.3.host: missing: the service's host name or IP address`,
			`modules.extdisco.services.3.transport: turns is over TLS: tcp, not udp`,
		}},
		{toml: `[[modules.extdisco.services]]
type = "stun"
host = "stun.example.org"
secret = "north"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
ttl = "1h"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
secret = "north"
ttl = "10s"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
port = 3478
transport = "udp"`, problems: []string{
			`modules.extdisco.services.1.secret: only a turn or turns service has credentials`,
			`modules.extdisco.services.2.ttl: is the lifetime of credentials computed from a secret: set secret, or remove ttl`,
			`modules.extdisco.services.3.host: the same service as services.2 (type, host, port and transport)`,
			`modules.extdisco.services.3.ttl: must be between 1m and 720h, not 10s`,
			`modules.extdisco.services.4.host: the same service as services.2 (type, host, port and transport)`,
			`modules.extdisco.services.4.host: the same service as services.3 (type, host, port and transport)`,
		}},
		{toml: `[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
username = "calls"
password = "north"
[[modules.extdisco.services]]
type = "turns"
host = "turn.example.org"
username = "calls"
password = "north"`},
		{toml: `[[modules.extdisco.services]]
type = "stun"
host = "stun.example.org"
username = "calls"
password = "north"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
username = "calls"
password = "north"
secret = "north"
[[modules.extdisco.services]]
type = "turn"
host = "turn2.example.org"
username = "calls"
[[modules.extdisco.services]]
type = "turn"
host = "turn3.example.org"
password = "north"
ttl = "1h"`, problems: []string{
			`modules.extdisco.services.1.password: only a turn or turns service has credentials`,
			`modules.extdisco.services.1.username: only a turn or turns service has credentials`,
			`modules.extdisco.services.2.secret: credentials are computed from a secret or given by username and password, not both: remove one`,
			`modules.extdisco.services.3.password: missing: static credentials are a username and a password`,
			`modules.extdisco.services.4.ttl: is the lifetime of credentials computed from a secret: set secret, or remove ttl`,
			`modules.extdisco.services.4.username: missing: static credentials are a username and a password`,
		}},
		{toml: `[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
secert = "north"`, problems: []string{`modules.extdisco.services.1.secert: unknown key (did you mean secret?)`}},
	} {
		cfg, err := config.Parse([]byte("[modules.extdisco]\n" + tc.toml + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cfg.DecodeModule("extdisco", DefaultOptions(), true)
		var got []string
		if p, ok := errors.AsType[*config.Problems](err); ok {
			for _, pr := range p.List {
				got = append(got, pr.String())
			}
		} else if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if strings.Join(got, "\n") != strings.Join(tc.problems, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.toml, strings.Join(got, "\n"), strings.Join(tc.problems, "\n"))
		}
	}
}

// sender records replies.
type sender struct{ replies [][]byte }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, raw)
	return true
}

// TestRequests: §3.1 every service, §3.2 those of a type, §3.3
// credentials of named services; credentials computed from the injected
// clock; the refusals.
func TestRequests(t *testing.T) {
	opts := &Options{Services: []Service{
		{Type: "stun", Host: "stun.example.org"},
		{Type: "turn", Host: "turn.example.org", Secret: "north", TTL: config.Duration{Duration: time.Hour}, Name: "Example & TURN"},
		{Type: "turn", Host: "turn.example.org", Transport: "tcp", Secret: "north", TTL: config.Duration{Duration: time.Hour}},
		{Type: "turns", Host: "turn.example.org", Port: 443, Restricted: true},
	}}
	now := time.Date(2025, 12, 7, 12, 0, 0, 500, time.UTC)
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	d := &Discovery{Options: func() *Options { return opts }, Now: func() time.Time { return now }}
	d.Register(m)
	if got := m.Features(); len(got) != 1 || got[0] != NS {
		t.Errorf("features %v", got)
	}
	const (
		stun     = `<service type='stun' host='stun.example.org' port='3478' transport='udp'/>`
		turnUDP  = `<service type='turn' host='turn.example.org' port='3478' transport='udp' name='Example &amp; TURN' restricted='1' username='1765112400:alice@example.org' password='3BlOBbdAsGvsMlVgLL2YpEyYMrA=' expires='2025-12-07T13:00:00Z'/>`
		turnTCP  = `<service type='turn' host='turn.example.org' port='3478' transport='tcp' restricted='1' username='1765112400:alice@example.org' password='3BlOBbdAsGvsMlVgLL2YpEyYMrA=' expires='2025-12-07T13:00:00Z'/>`
		turns    = `<service type='turns' host='turn.example.org' port='443' transport='tcp' restricted='1'/>`
		alice    = `from='alice@example.org/phone' to='example.org'`
		aliceRes = `from='example.org' to='alice@example.org/phone'`
	)
	for _, tc := range []struct{ name, send, want string }{
		{"every service", `<iq ` + alice + ` type='get' id='1'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq ` + aliceRes + ` type='result' id='1'><services xmlns='urn:xmpp:extdisco:2'>` + stun + turnUDP + turnTCP + turns + `</services></iq>`},
		{"by type", `<iq ` + alice + ` type='get' id='2'><services xmlns='urn:xmpp:extdisco:2' type='turn'/></iq>`,
			`<iq ` + aliceRes + ` type='result' id='2'><services xmlns='urn:xmpp:extdisco:2' type='turn'>` + turnUDP + turnTCP + `</services></iq>`},
		{"a type not offered", `<iq ` + alice + ` type='get' id='3'><services xmlns='urn:xmpp:extdisco:2' type='ftp'/></iq>`,
			`<iq ` + aliceRes + ` type='result' id='3'><services xmlns='urn:xmpp:extdisco:2' type='ftp'/></iq>`},
		{"credentials", `<iq ` + alice + ` type='get' id='4'><credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='turn.example.org'/></credentials></iq>`,
			`<iq ` + aliceRes + ` type='result' id='4'><credentials xmlns='urn:xmpp:extdisco:2'>` + turnUDP + turnTCP + `</credentials></iq>`},
		{"credentials by port", `<iq ` + alice + ` type='get' id='5'><credentials xmlns='urn:xmpp:extdisco:2'><service type='turns' host='TURN.example.org' port='443'/><service type='turn' host='turn.example.org' port='5349'/></credentials></iq>`,
			`<iq ` + aliceRes + ` type='result' id='5'><credentials xmlns='urn:xmpp:extdisco:2'>` + turns + `</credentials></iq>`},
		{"credentials of no service", `<iq ` + alice + ` type='get' id='6'><credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='turn.example.net'/></credentials></iq>`,
			`<iq ` + aliceRes + ` type='error' id='6'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"credentials without host", `<iq ` + alice + ` type='get' id='7'><credentials xmlns='urn:xmpp:extdisco:2'><service type='turn'/></credentials></iq>`,
			`<iq ` + aliceRes + ` type='error' id='7'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"credentials of nothing", `<iq ` + alice + ` type='get' id='8'><credentials xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq ` + aliceRes + ` type='error' id='8'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"a set", `<iq ` + alice + ` type='set' id='9'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq ` + aliceRes + ` type='error' id='9'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"another server's user", `<iq from='mallory@example.net/x' to='example.org' type='get' id='10'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq from='example.org' to='mallory@example.net/x' type='error' id='10'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"another server", `<iq from='example.net' to='example.org' type='get' id='11'><credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='turn.example.org'/></credentials></iq>`,
			`<iq from='example.org' to='example.net' type='error' id='11'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"another host's user", `<iq from='carol@other.example/x' to='example.org' type='get' id='12'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq from='example.org' to='carol@other.example/x' type='error' id='12'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{"to the account", `<iq from='alice@example.org/phone' type='get' id='13'><services xmlns='urn:xmpp:extdisco:2'/></iq>`,
			`<iq to='alice@example.org/phone' type='error' id='13'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := stanza.Parse([]byte(tc.send), bytes.IndexByte([]byte(tc.send), '>')+1)
			if err != nil {
				t.Fatal(err)
			}
			out.replies = nil
			m.HandleServer(context.Background(), s)
			if len(out.replies) != 1 {
				t.Fatalf("%d replies", len(out.replies))
			}
			if err := xmlcmp.Equal([]byte(tc.want), out.replies[0], "jabber:client"); err != nil {
				t.Errorf("got %s\nwant %s\n%v", out.replies[0], tc.want, err)
			}
		})
	}
	// An hour later, new credentials; bob's are his own.
	now = now.Add(time.Hour)
	raw := []byte(`<iq from='bob@example.org/x' to='example.org' type='get' id='1'><services xmlns='urn:xmpp:extdisco:2' type='turn'/></iq>`)
	s, err := stanza.Parse(raw, bytes.IndexByte(raw, '>')+1)
	if err != nil {
		t.Fatal(err)
	}
	out.replies = nil
	m.HandleServer(context.Background(), s)
	if len(out.replies) != 1 || !bytes.Contains(out.replies[0], []byte(`username='1765116000:bob@example.org'`)) ||
		!bytes.Contains(out.replies[0], []byte(`expires='2025-12-07T14:00:00Z'`)) {
		t.Errorf("an hour later: %s", out.replies)
	}
}

// TestStaticCredentials: a service with a username and a password gives
// them as they are, to every user, in <services/> and <credentials/>,
// restricted and without 'expires'.
func TestStaticCredentials(t *testing.T) {
	opts := &Options{Services: []Service{
		{Type: "turn", Host: "turn.example.org", Username: "calls", Password: "n'orth&"},
		{Type: "turns", Host: "turn.example.org", Secret: "north"},
	}}
	now := time.Date(2025, 12, 7, 12, 0, 0, 0, time.UTC)
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	(&Discovery{Options: func() *Options { return opts }, Now: func() time.Time { return now }}).Register(m)
	const static = `<service type='turn' host='turn.example.org' port='3478' transport='udp' restricted='1' username='calls' password='n&apos;orth&amp;'/>`
	for _, tc := range []struct{ from, send, want string }{
		{"alice@example.org/phone", `<services xmlns='urn:xmpp:extdisco:2' type='turn'/>`,
			`<services xmlns='urn:xmpp:extdisco:2' type='turn'>` + static + `</services>`},
		{"bob@example.org/x", `<services xmlns='urn:xmpp:extdisco:2' type='turn'/>`,
			`<services xmlns='urn:xmpp:extdisco:2' type='turn'>` + static + `</services>`},
		{"bob@example.org/x", `<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='turn.example.org'/></credentials>`,
			`<credentials xmlns='urn:xmpp:extdisco:2'>` + static + `</credentials>`},
	} {
		raw := []byte(`<iq from='` + tc.from + `' to='example.org' type='get' id='1'>` + tc.send + `</iq>`)
		s, err := stanza.Parse(raw, bytes.IndexByte(raw, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		out.replies = nil
		m.HandleServer(context.Background(), s)
		want := `<iq from='example.org' to='` + tc.from + `' type='result' id='1'>` + tc.want + `</iq>`
		if len(out.replies) != 1 {
			t.Fatalf("%s: %d replies", tc.send, len(out.replies))
		}
		if err := xmlcmp.Equal([]byte(want), out.replies[0], "jabber:client"); err != nil {
			t.Errorf("got %s\nwant %s\n%v", out.replies[0], want, err)
		}
	}
}

// TestNoServices: without services the feature is listed all the same
// (XEP-0215 §4: the server supports the protocol; a reload may add
// services, pushed to those who asked).
func TestNoServices(t *testing.T) {
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	(&Discovery{Options: DefaultOptions}).Register(m)
	if f := m.Features(); len(f) != 1 || f[0] != NS {
		t.Errorf("features %v", f)
	}
}

// TestDiff: services are the same by type, host, port and transport
// (defaults filled in); those only in the new list are added, those in
// both but configured otherwise modified, those only in the old deleted.
func TestDiff(t *testing.T) {
	stun := Service{Type: "stun", Host: "stun.example.org"}
	turn := Service{Type: "turn", Host: "turn.example.org", Secret: "north"}
	turnTCP := Service{Type: "turn", Host: "turn.example.org", Transport: "tcp", Secret: "north"}
	old := []Service{stun, turn, turnTCP}
	stunPort := Service{Type: "stun", Host: "STUN.example.org", Port: 3478, Transport: "udp"}
	turnNew := turn
	turnNew.Secret = "south"
	static := Service{Type: "turn", Host: "relay.example.org", Username: "calls", Password: "south"}
	got := Diff(old, []Service{stunPort, turnNew, static})
	want := []Change{{"modify", turnNew}, {"add", static}, {"delete", turnTCP}}
	if !slices.Equal(got, want) {
		t.Errorf("Diff = %+v\nwant %+v", got, want)
	}
	if got := Diff(old, old); len(got) != 0 {
		t.Errorf("no change: %+v", got)
	}
}

// pushes records what a push delivers, and which sessions are online.
type pushes struct {
	online map[string]bool
	sent   []string
}

func (p *pushes) DeliverTo(to jid.JID, raw []byte) bool {
	if !p.online[to.String()] {
		return false
	}
	p.sent = append(p.sent, string(raw))
	return true
}

// TestPush: the changes go, as IQ sets from the host, to the sessions
// that asked for services — all of them to one that asked for every
// type, those of its type to one that asked for a type, none to one that
// only asked for credentials or asked for a type that did not change —,
// with credentials computed at the injected clock; a session gone is
// forgotten.
func TestPush(t *testing.T) {
	opts := &Options{Services: []Service{
		{Type: "stun", Host: "stun.example.org"},
		{Type: "turn", Host: "turn.example.org", Secret: "north", TTL: config.Duration{Duration: time.Hour}},
	}}
	now := time.Date(2025, 12, 7, 12, 0, 0, 0, time.UTC)
	p := &pushes{online: map[string]bool{
		"alice@example.org/phone": true, "alice@example.org/laptop": true, "bob@example.org/x": true, "carol@example.org/y": true,
	}}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.SetSender(&sender{})
	d := &Discovery{Options: func() *Options { return opts }, Now: func() time.Time { return now }, Sender: p}
	d.Register(m)
	if got := m.Features(); len(got) != 1 || got[0] != NS {
		t.Errorf("features %v", got)
	}
	ask := func(from, payload string) {
		raw := []byte(`<iq from='` + from + `' to='example.org' type='get' id='q'>` + payload + `</iq>`)
		s, err := stanza.Parse(raw, bytes.IndexByte(raw, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		m.HandleServer(context.Background(), s)
	}
	ask("alice@example.org/phone", `<services xmlns='urn:xmpp:extdisco:2'/>`)
	ask("alice@example.org/phone", `<services xmlns='urn:xmpp:extdisco:2' type='stun'/>`)
	ask("bob@example.org/x", `<services xmlns='urn:xmpp:extdisco:2' type='turn'/>`)
	ask("carol@example.org/y", `<services xmlns='urn:xmpp:extdisco:2' type='stuns'/>`)
	ask("alice@example.org/laptop", `<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn' host='turn.example.org'/></credentials>`)
	ask("dave@example.org/gone", `<services xmlns='urn:xmpp:extdisco:2'/>`)

	now = now.Add(time.Hour)
	old := opts.Services
	opts = &Options{Services: []Service{
		{Type: "turn", Host: "turn.example.org", Secret: "south", TTL: config.Duration{Duration: time.Hour}},
		{Type: "turn", Host: "relay.example.org", Username: "calls", Password: "south"},
	}}
	if n := d.Push(Diff(old, opts.Services)); n != 2 {
		t.Errorf("%d pushes", n)
	}
	u, pw := Credentials("south", "alice@example.org", now.Add(time.Hour))
	turn := `<service action='modify' type='turn' host='turn.example.org' port='3478' transport='udp' restricted='1' username='` + u + `' password='` + pw + `' expires='2025-12-07T14:00:00Z'/>`
	relay := `<service action='add' type='turn' host='relay.example.org' port='3478' transport='udp' restricted='1' username='calls' password='south'/>`
	del := `<service action='delete' type='stun' host='stun.example.org' port='3478' transport='udp'/>`
	bu, bpw := Credentials("south", "bob@example.org", now.Add(time.Hour))
	bobTurn := strings.Replace(strings.Replace(turn, u, bu, 1), pw, bpw, 1)
	want := []string{
		`<iq type='set' from='example.org' to='alice@example.org/phone' id='extdisco-1'><services xmlns='urn:xmpp:extdisco:2'>` + turn + relay + del + `</services></iq>`,
		`<iq type='set' from='example.org' to='bob@example.org/x' id='extdisco-2'><services xmlns='urn:xmpp:extdisco:2' type='turn'>` + bobTurn + relay + `</services></iq>`,
	}
	if len(p.sent) != len(want) {
		t.Fatalf("pushes:\n%s", strings.Join(p.sent, "\n"))
	}
	for i := range want {
		if err := xmlcmp.Equal([]byte(want[i]), []byte(p.sent[i]), "jabber:client"); err != nil {
			t.Errorf("push %d: got %s\nwant %s\n%v", i, p.sent[i], want[i], err)
		}
	}
	d.mu.Lock()
	_, dave := d.askers["dave@example.org/gone"]
	d.mu.Unlock()
	if dave {
		t.Error("a session gone is still remembered")
	}

	// A session that ended gets no more pushes; no change, no push.
	d.Forget(jid.MustParse("bob@example.org/x"))
	p.sent = nil
	if n := d.Push(Diff(opts.Services, opts.Services[:1])); n != 1 || len(p.sent) != 1 || !strings.Contains(p.sent[0], "alice@example.org/phone") {
		t.Errorf("after bob left: %d pushes %s", n, p.sent)
	}
	if n := d.Push(nil); n != 0 {
		t.Errorf("no change: %d pushes", n)
	}
}
