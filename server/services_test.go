package server

import (
	"slices"
	"testing"

	"github.com/starling-xmpp/starling/config"
)

// TestServiceDomains: group chat on every host by default, file upload
// with an HTTPS listener, each under its configured subdomain, none for
// a module turned off.
func TestServiceDomains(t *testing.T) {
	for _, c := range []struct {
		toml string
		want []string
	}{
		{"[server]\nhosts = [\"a.test\", \"b.test\"]\n", []string{"conference.a.test", "conference.b.test"}},
		{"[http]\ntls_listen = [\"127.0.0.1:0\"]\n", []string{"conference.localhost", "upload.localhost"}},
		{"[http]\ntls_listen = [\"127.0.0.1:0\"]\n[modules.muc]\nsubdomain = \"rooms\"\n[modules.upload]\nsubdomain = \"files\"\n", []string{"files.localhost", "rooms.localhost"}},
		{"[modules.muc]\nenabled = false\n", nil},
	} {
		cfg, err := config.Parse([]byte(c.toml))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ServiceDomains(cfg)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: ServiceDomains = %q, %v; want %q", c.toml, got, err, c.want)
		}
	}
}
