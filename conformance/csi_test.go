package conformance

import (
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestCSITurnedOff: while the module is on, the stream features after
// authentication offer <csi xmlns='urn:xmpp:csi:0'/> (XEP-0352 §5) and
// <inactive/> is taken; with [modules.csi] enabled = false the feature is
// gone, so that a client does not send it, and one that does anyway ends
// its stream with <unsupported-stanza-type/> (RFC 6120 §4.9.3.24).
func TestCSITurnedOff(t *testing.T) {
	on, off := onAndOff(t, "csi")
	for _, srv := range []*testserver.Server{on, off} {
		srv.AddUser(t, "alice", "alice-secret")
		c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
		offered := strings.Contains(string(c.Features.Raw), "urn:xmpp:csi:0")
		c.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
		if srv == off {
			if offered {
				t.Errorf("csi turned off: features %s", c.Features.Raw)
			}
			c.ExpectStreamError("unsupported-stanza-type")
			continue
		}
		if !offered {
			t.Errorf("csi on: features %s", c.Features.Raw)
		}
		c.Send("<iq type='get' id='p1' to='" + srv.Domain + "'><ping xmlns='urn:xmpp:ping'/></iq>")
		if got := string(c.MustNext().Raw); !strings.Contains(got, "type='result'") {
			t.Errorf("csi on: after <inactive/>, ping answered %s", got)
		}
	}
}
