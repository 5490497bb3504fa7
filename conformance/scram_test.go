package conformance

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestSCRAMIterations: with [auth] scram_iterations set, an account
// created under it and an account that does not exist get the same
// iteration count in the server-first message (RFC 5802 §5.1, §9), so
// the count does not tell them apart.
func TestSCRAMIterations(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) { c.Auth.SCRAMIterations = 20000 })
	srv.AddUser(t, "dave", "dave-secret")
	for _, user := range []string{"dave", "nobody"} {
		c := xmpptest.Dial(t, srv.Addr, srv.Domain)
		c.OpenStream()
		c.StartTLS(0)
		first := "n,,n=" + user + ",r=fyko+d2lbbFgONRv9qkxdawL"
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>")
		el := c.MustNext()
		if el.Name.Local != "challenge" {
			t.Fatalf("%s: %s", user, el.Raw)
		}
		var text string
		if i, j := strings.Index(string(el.Raw), ">"), strings.LastIndex(string(el.Raw), "<"); i >= 0 && j > i {
			text = string(el.Raw[i+1 : j])
		}
		msg, err := base64.StdEncoding.DecodeString(text)
		if err != nil || !strings.HasSuffix(string(msg), ",i=20000") {
			t.Errorf("%s: server-first message %q (%v), want i=20000", user, msg, err)
		}
	}
}

// TestSCRAMHashes: with [auth] scram_hashes naming SHA-1 only (accounts
// imported with SHA-1 keys), only SCRAM-SHA-1 (and PLAIN) is offered, a
// client asking for another SCRAM family gets invalid-mechanism (RFC 6120
// §6.5.7), and SCRAM-SHA-1 logs in.
func TestSCRAMHashes(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) { c.Auth.SCRAMHashes = []string{"SHA-1"} })
	srv.AddUser(t, "dave", "dave-secret")
	c := xmpptest.Dial(t, srv.Addr, srv.Domain)
	c.OpenStream()
	c.StartTLS(0)
	if got, want := strings.Join(c.Mechanisms(), " "), "SCRAM-SHA-1-PLUS SCRAM-SHA-1 PLAIN"; got != want {
		t.Errorf("mechanisms %q, want %q", got, want)
	}
	c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte("n,,n=dave,r=fyko+d2lbbFgONRv9qkxdawL")) + "</auth>")
	if el := c.MustNext(); !strings.Contains(string(el.Raw), "<invalid-mechanism/>") {
		t.Errorf("SCRAM-SHA-256: %s", el.Raw)
	}
	xmpptest.Login(t, srv.Addr, srv.Domain, "dave", "dave-secret", "SCRAM-SHA-1", "phone")
}
