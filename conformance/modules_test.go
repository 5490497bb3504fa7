package conformance

import (
	"regexp"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestModuleTurnedOff: a module the operator turned off ([modules.vcard]
// enabled = false) registers nothing: its IQs get service-unavailable
// (RFC 6120 §8.3.3.19), and disco#info no longer lists its feature, nor
// does the capabilities hash count it.
func TestModuleTurnedOff(t *testing.T) {
	on, off := onAndOff(t, "vcard")
	var caps [2]string
	for i, srv := range []*testserver.Server{on, off} {
		srv.AddUser(t, "alice", "alice-secret")
		c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
		if m := capsVer.FindStringSubmatch(string(c.Features.Raw)); m != nil {
			caps[i] = m[1]
		}
		c.Send("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
		vcard := string(c.MustNext().Raw)
		c.Send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		info := string(c.MustNext().Raw)
		if srv == off {
			if !strings.Contains(vcard, "service-unavailable") || strings.Contains(info, "vcard-temp") {
				t.Errorf("vcard turned off: answered %s; disco#info %s", vcard, info)
			}
		} else if strings.Contains(vcard, "error") || !strings.Contains(info, "vcard-temp") {
			t.Errorf("vcard on: answered %s; disco#info %s", vcard, info)
		}
	}
	if caps[0] == caps[1] {
		t.Errorf("the same capabilities hash %s with and without vCard", caps[0])
	}
}

var capsVer = regexp.MustCompile(`<c [^>]*ver='([^']*)'`)

// onAndOff starts two servers: one with every module, one with the module
// name turned off ([modules.NAME] enabled = false).
func onAndOff(t *testing.T, name string) (on, off *testserver.Server) {
	t.Helper()
	parsed, err := config.Parse([]byte("[modules." + name + "]\nenabled = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	on = testserver.Start(t, nil)
	off = testserver.Start(t, func(c *config.Config) { c.Modules = parsed.Modules })
	return on, off
}
