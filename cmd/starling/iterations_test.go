package main_test

import (
	"encoding/base64"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// TestUserIterations: `starling user add` and `user passwd` derive keys
// with the [auth] scram_iterations of the configuration file, which the
// SCRAM server-first message then shows (RFC 5802 §5.1 "i").
func TestUserIterations(t *testing.T) {
	setup := testbin.NewSetup(t, "[auth]\nscram_iterations = 5000\n")
	if out, ok := starling(t, "first-secret\n", "user", "add", "--config", setup.Config, "alice@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	if out, ok := starling(t, "first-secret\n", "user", "add", "--config", setup.Config, "bob@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	setup.Write(t, "[auth]\nscram_iterations = 6000\n")
	if out, ok := starling(t, "second-secret\n", "user", "passwd", "--config", setup.Config, "alice@localhost"); !ok {
		t.Fatalf("user passwd: %s", out)
	}
	testbin.Start(t, testbin.Build(t), setup.Config)
	for user, want := range map[string]string{"alice": "i=6000", "bob": "i=5000"} {
		c := xmpptest.Dial(t, setup.StartTLS, "localhost")
		c.OpenStream()
		c.StartTLS(0)
		c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" +
			base64.StdEncoding.EncodeToString([]byte("n,,n="+user+",r=abcdef")) + "</auth>")
		el := c.MustNext()
		var text string
		xml.Unmarshal(el.Raw, &text)
		sf, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if el.Name.Local != "challenge" || err != nil {
			t.Fatalf("%s: %s", user, el.Raw)
		}
		if !strings.HasSuffix(string(sf), ","+want) {
			t.Errorf("%s: server-first %q, want %s", user, sf, want)
		}
	}
	xmpptest.Login(t, setup.StartTLS, "localhost", "alice", "second-secret", "SCRAM-SHA-256", "r")
	xmpptest.Login(t, setup.StartTLS, "localhost", "bob", "first-secret", "PLAIN", "r")
}
