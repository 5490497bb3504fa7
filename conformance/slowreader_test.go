package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestStuckRecipient: a recipient that stops reading fills its bounded
// outbound queue; its own stream ends with <policy-violation/>, and the
// sender and everyone else keep being served (issue 2 part 7; the router
// never blocks on a slow recipient).
//
// The queue is bounded in stanzas and in bytes (issue 11 part 5: 1000
// stanzas of 256 KiB were 256 MiB for one session); the log says which.
func TestStuckRecipient(t *testing.T) {
	for _, tc := range []struct {
		name         string
		items, bytes int
		reason       string
	}{
		{"items", 16, 4 << 20, "queue-items"},
		{"bytes", 1000, 64 << 10, "queue-bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, func(c *config.Config) {
				c.Limits.OutboundQueue = tc.items
				c.Limits.OutboundQueueBytes = tc.bytes
				c.Limits.MaxStanzaBytes = 16 << 10
				c.Modules = offlineMax1.Modules
			})
			stuckRecipient(t, srv)
			if l := srv.LogLines(`msg="outbound queue full, closing session" jid=bob@localhost/stuck reason=` + tc.reason); len(l) != 1 {
				t.Errorf("logged %d closes of bob's session for %s", len(l), tc.reason)
			}
		})
	}
}

// offlineMax1 keeps one offline message per account.
var offlineMax1, _ = config.Parse([]byte("[modules.offline]\nmax_messages = 1\n"))

func stuckRecipient(t *testing.T, srv *testserver.Server) {
	srv.AddUser(t, "alice", "alice-secret")
	srv.AddUser(t, "bob", "bob-secret")
	srv.AddUser(t, "carol", "carol-secret")
	alice := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	bob := xmpptest.Login(t, srv.Addr, srv.Domain, "bob", "bob-secret", "SCRAM-SHA-256", "stuck")
	carol := xmpptest.Login(t, srv.Addr, srv.Domain, "carol", "carol-secret", "SCRAM-SHA-256", "phone")

	// bob reads nothing while alice sends more than the socket buffers and
	// his queue hold, until what she sends him bounces because his session
	// is gone; each round ends with a ping, so alice's own stream is known
	// to be served throughout.
	body := strings.Repeat("x", 8000)
	bounced := 0
	for round := 0; bounced == 0; round++ {
		if round == 2000 {
			t.Fatal("bob's session survived 256 MB he did not read")
		}
		var batch strings.Builder
		for i := 0; i < 16; i++ {
			fmt.Fprintf(&batch, "<message to='%s' type='chat'><body>%s</body></message>", bob.JID, body)
		}
		fmt.Fprintf(&batch, "<iq type='get' id='r%d'><ping xmlns='urn:xmpp:ping'/></iq>", round)
		alice.Send(batch.String())
		// Once bob's session is gone, what is sent to him is stored
		// offline (RFC 6121 §8.5.3.2.1, §8.5.2.2.1) up to the limit of
		// one message, and then bounces (XEP-0160 §2).
		for {
			el := alice.MustNext()
			if strings.Contains(string(el.Raw), fmt.Sprintf("'r%d'", round)) {
				break
			}
			if !strings.Contains(string(el.Raw), "service-unavailable") {
				t.Fatalf("alice, round %d: %s", round, el.Raw)
			}
			bounced++
		}
	}
	bob.ExpectStreamError("policy-violation")

	alice.Send("<message to='" + carol.JID + "' type='chat' id='after'><body>still here</body></message>")
	if el := carol.MustNext(); !strings.Contains(string(el.Raw), "still here") {
		t.Fatalf("carol: %s", el.Raw)
	}
}
