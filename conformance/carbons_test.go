package conformance

import (
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestCarbonsTurnedOff: the server lists urn:xmpp:carbons:2 in its
// disco#info (XEP-0280 §3) and answers <enable/> (§4) while the module is
// on; with [modules.carbons] enabled = false it lists no such feature and
// an <enable/> gets service-unavailable (RFC 6120 §8.3.3.19), as a client
// that checks the feature first expects.
func TestCarbonsTurnedOff(t *testing.T) {
	on, off := onAndOff(t, "carbons")
	for _, srv := range []*testserver.Server{on, off} {
		srv.AddUser(t, "alice", "alice-secret")
		c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
		c.Send("<iq type='get' id='d1' to='" + srv.Domain + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		info := string(c.MustNext().Raw)
		c.Send("<iq type='set' id='e1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
		enable := string(c.MustNext().Raw)
		listed := strings.Contains(info, "<feature var='urn:xmpp:carbons:2'/>")
		if srv == off {
			if listed || !strings.Contains(enable, "service-unavailable") {
				t.Errorf("carbons turned off: disco#info %s; <enable/> answered %s", info, enable)
			}
		} else if !listed || !strings.Contains(enable, "type='result'") {
			t.Errorf("carbons on: disco#info %s; <enable/> answered %s", info, enable)
		}
	}
}
