package contactinfo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
)

// TestValidate: every address must be a URI of a known scheme that names
// something (XEP-0157 §3); problems name the option.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		toml     string
		problems []string
	}{
		{toml: ""},
		{toml: `abuse = ["mailto:abuse@example.org", "xmpp:abuse@example.org", "https://example.org/abuse"]
admin = ["xmpp:admin@example.org?message"]
status = ["http://status.example.org"]
support = ["xmpp:support@conference.example.org?join", "mailto:support%2Bxmpp@example.org"]
feedback = ["xmpp:example.org"]`},
		{toml: `abuse = ["abuse@example.org"]`, problems: []string{
			`modules.contactinfo.abuse: "abuse@example.org" is not a URI: write mailto:, xmpp: or https: before it`}},
		{toml: `admin = ["mailto:", "mailto:admin", "mailto:@example.org"]`, problems: []string{
			`modules.contactinfo.admin: "mailto:" is not a mailto: URI with an address, like mailto:abuse@example.org`,
			`modules.contactinfo.admin: "mailto:admin" is not a mailto: URI with an address, like mailto:abuse@example.org`,
			`modules.contactinfo.admin: "mailto:@example.org" is not a mailto: URI with an address, like mailto:abuse@example.org`}},
		{toml: `security = ["xmpp:", "xmpp:a@b@c", "xmpp://admin@example.org"]`, problems: []string{
			`modules.contactinfo.security: "xmpp:" is not an xmpp: URI with a JID, like xmpp:admin@example.org`,
			`modules.contactinfo.security: "xmpp:a@b@c" does not name a valid JID: *`,
			`modules.contactinfo.security: "xmpp://admin@example.org" is not an xmpp: URI with a JID, like xmpp:admin@example.org`}},
		{toml: `support = ["https:example.org", "ftp://example.org", "https://exa mple.org", "https://example.org/%zz"]`, problems: []string{
			`modules.contactinfo.support: "https:example.org" is not a URL with a host, like https://example.org/contact`,
			`modules.contactinfo.support: "ftp://example.org" is not a mailto:, xmpp:, http: or https: URI`,
			`modules.contactinfo.support: "https://exa mple.org" has a space or a control character (write it %-encoded)`,
			`modules.contactinfo.support: "https://example.org/%zz" is not a URI: invalid URL escape "%zz"`}},
		{toml: `sales = ["mailto:sales@example.org", "mailto:sales@example.org"]`, problems: []string{
			`modules.contactinfo.sales: "mailto:sales@example.org" is listed twice`}},
		{toml: `abuse = "mailto:abuse@example.org"`, problems: []string{
			`modules.contactinfo.abuse: expected an array of strings, got a string`}},
		{toml: `abuze = []`, problems: []string{`modules.contactinfo.abuze: unknown key (did you mean abuse?)`}},
	} {
		cfg, err := config.Parse([]byte("[modules.contactinfo]\n" + tc.toml + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cfg.DecodeModule("contactinfo", DefaultOptions(), true)
		var got []string
		if p, ok := errors.AsType[*config.Problems](err); ok {
			for _, pr := range p.List {
				got = append(got, pr.String())
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.problems) {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.toml, strings.Join(got, "\n"), strings.Join(tc.problems, "\n"))
			continue
		}
		for i, want := range tc.problems {
			if prefix, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(got[i], prefix) || got[i] == want {
				continue
			}
			t.Errorf("%s: problem %q, want %q", tc.toml, got[i], want)
		}
	}
}

// TestForm: the server's disco#info gets one field per role with
// addresses, in the configured order, and none without; a reload
// changes it.
func TestForm(t *testing.T) {
	cfg, err := config.Parse([]byte(`[modules.contactinfo]
support = ["https://example.org/support", "xmpp:support@example.org"]
abuse = ["mailto:abuse@example.org"]
`))
	if err != nil {
		t.Fatal(err)
	}
	mux := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	set := module.NewSet([]module.Module{Module{}})
	if err := set.Start(context.Background(), module.Env{IQ: mux, Config: func() *config.Config { return cfg }}); err != nil {
		t.Fatal(err)
	}
	want := []dispatch.Form{{Type: FormType, Fields: []dispatch.Field{
		{Var: "abuse-addresses", Values: []string{"mailto:abuse@example.org"}},
		{Var: "support-addresses", Values: []string{"https://example.org/support", "xmpp:support@example.org"}},
	}}}
	if got := mux.ServerForms(); !reflect.DeepEqual(got, want) {
		t.Errorf("forms %+v, want %+v", got, want)
	}
	// Reloaded without addresses: no form.
	if err := set.Reload(config.Default()); err != nil {
		t.Fatal(err)
	}
	if got := mux.ServerForms(); len(got) != 0 {
		t.Errorf("forms without addresses: %+v", got)
	}
}
