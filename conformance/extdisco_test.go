package conformance

import (
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestExtdiscoPushOnReload: XEP-0215 §3.2's pushes. A session that asked
// for services gets the changes of a reload (SIGHUP's path,
// server.Reload) as an IQ set — the service added, the one modified with
// fresh credentials, the one removed —, and answers it; a session that
// never asked gets nothing. The feature is listed though the server
// started without services.
func TestExtdiscoPushOnReload(t *testing.T) {
	modules := func(toml string) map[string]config.ModuleTable {
		parsed, err := config.Parse([]byte(toml))
		if err != nil {
			t.Fatal(err)
		}
		return parsed.Modules
	}
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "alice", "alice-secret")
	alice := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	other := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")

	alice.Send("<iq to='" + srv.Domain + "' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if got := string(alice.MustNext().Raw); !strings.Contains(got, "urn:xmpp:extdisco:2") {
		t.Errorf("no services at start: disco#info %s", got)
	}
	alice.Send("<iq to='" + srv.Domain + "' type='get' id='s1'><services xmlns='urn:xmpp:extdisco:2'/></iq>")
	if got := string(alice.MustNext().Raw); !strings.Contains(got, "<services xmlns='urn:xmpp:extdisco:2'></services>") &&
		!strings.Contains(got, "<services xmlns='urn:xmpp:extdisco:2'/>") {
		t.Errorf("no services: %s", got)
	}

	reload := func(toml string) {
		t.Helper()
		next := srv.Config.Clone()
		next.Modules = modules(toml)
		if err := srv.Reload(next); err != nil {
			t.Fatal(err)
		}
	}
	reload(`[[modules.extdisco.services]]
type = "stun"
host = "stun.example.org"
[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
secret = "north"
`)
	push := string(alice.MustNext().Raw)
	for _, want := range []string{
		"type='set'", "to='alice@" + srv.Domain + "/phone'",
		"<service action='add' type='stun' host='stun.example.org' port='3478' transport='udp'/>",
		"<service action='add' type='turn' host='turn.example.org' port='3478' transport='udp' restricted='1' username='",
	} {
		if !strings.Contains(push, want) {
			t.Errorf("first push lacks %s: %s", want, push)
		}
	}
	alice.Send("<iq to='" + srv.Domain + "' type='result' id='" + idOf(push) + "'/>")

	reload(`[[modules.extdisco.services]]
type = "turn"
host = "turn.example.org"
secret = "south"
[[modules.extdisco.services]]
type = "turn"
host = "relay.example.org"
username = "calls"
password = "south"
`)
	push = string(alice.MustNext().Raw)
	for _, want := range []string{
		"<service action='modify' type='turn' host='turn.example.org' port='3478' transport='udp' restricted='1' username='",
		"<service action='add' type='turn' host='relay.example.org' port='3478' transport='udp' restricted='1' username='calls' password='south'/>",
		"<service action='delete' type='stun' host='stun.example.org' port='3478' transport='udp'/>",
	} {
		if !strings.Contains(push, want) {
			t.Errorf("second push lacks %s: %s", want, push)
		}
	}
	alice.Send("<iq to='" + srv.Domain + "' type='result' id='" + idOf(push) + "'/>")

	// The answers to the pushes drew nothing back; the session that never
	// asked got no push: the next stanza of each is a ping's answer.
	for _, c := range []*xmpptest.Client{alice, other} {
		c.Send("<iq to='" + srv.Domain + "' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
		if got := string(c.MustNext().Raw); !strings.Contains(got, "id='p1'") || !strings.Contains(got, "type='result'") {
			t.Errorf("after the pushes: %s", got)
		}
	}
}

// idOf returns the id attribute of raw, an element's start.
func idOf(raw string) string {
	_, rest, ok := strings.Cut(raw, " id='")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "'")
	return id
}
