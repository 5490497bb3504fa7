// Package contactinfo publishes the service's contact addresses (XEP-0157,
// version 1.1.1): the addresses the operator configured for abuse
// reports, the administrators, feedback, sales, security reports, service
// status and support, as URIs (mailto:, xmpp:, https:), in the server's
// disco#info as a XEP-0128 extended information form whose FORM_TYPE is
// http://jabber.org/network/serverinfo (§3), with one field per role,
// abuse-addresses to support-addresses (§5, the registered fields).
//
// Only the roles with addresses have a field, as ejabberd's mod_disco
// does; with none the form is left out. (Prosody's mod_server_contact_info
// lists every field, empty ones too, and falls back to its admins for
// admin-addresses; Starling has no list of administrators to fall back on.)
// The form is part of the server's entity capabilities (XEP-0115 §5.4),
// and it follows the configuration in force, so SIGHUP changes it.
package contactinfo

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
)

// FormType is the FORM_TYPE of XEP-0157 §3.
const FormType = "http://jabber.org/network/serverinfo"

// Options are the module's: [modules.contactinfo]. Each is a list of URIs.
type Options struct {
	Abuse    []string `toml:"abuse"`
	Admin    []string `toml:"admin"`
	Feedback []string `toml:"feedback"`
	Sales    []string `toml:"sales"`
	Security []string `toml:"security"`
	Status   []string `toml:"status"`
	Support  []string `toml:"support"`
}

// DefaultOptions are the options of an empty table: no addresses.
func DefaultOptions() *Options {
	return &Options{Abuse: []string{}, Admin: []string{}, Feedback: []string{}, Sales: []string{},
		Security: []string{}, Status: []string{}, Support: []string{}}
}

// role is one list of addresses: its option and its field (XEP-0157 §5).
type role struct {
	key, field string
	list       []string
}

// roles lists o's addresses in the order of their fields.
func (o *Options) roles() []role {
	return []role{
		{"abuse", "abuse-addresses", o.Abuse},
		{"admin", "admin-addresses", o.Admin},
		{"feedback", "feedback-addresses", o.Feedback},
		{"sales", "sales-addresses", o.Sales},
		{"security", "security-addresses", o.Security},
		{"status", "status-addresses", o.Status},
		{"support", "support-addresses", o.Support},
	}
}

// Validate implements config.Validator: every address is a mailto:,
// xmpp:, http: or https: URI (XEP-0157 §3: valid URIs), once per list.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	for _, r := range o.roles() {
		for i, addr := range r.list {
			if err := CheckURI(addr); err != nil {
				p = append(p, config.OptionsProblem{Key: r.key, Message: err.Error()})
			} else if slices.Contains(r.list[:i], addr) {
				p = append(p, config.OptionsProblem{Key: r.key, Message: fmt.Sprintf("%q is listed twice", addr)})
			}
		}
	}
	return p
}

// CheckURI reports what is wrong with addr as a contact address: it must
// be a mailto: URI with an address, an xmpp: URI with a JID (RFC 5122), or
// an http: or https: URL with a host, without spaces or control
// characters.
func CheckURI(addr string) error {
	if strings.IndexFunc(addr, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("%q has a space or a control character (write it %%-encoded)", addr)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("%q is not a URI: %v", addr, errorText(err))
	}
	switch u.Scheme {
	case "mailto":
		mbox, err := url.PathUnescape(u.Opaque)
		local, domain, ok := strings.Cut(mbox, "@")
		if err != nil || !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return fmt.Errorf("%q is not a mailto: URI with an address, like mailto:abuse@example.org", addr)
		}
	case "xmpp":
		// RFC 5122 §2.2: xmpp:node@domain, perhaps with a query
		// (?message); the authority form (xmpp://) names the
		// sender's account, not a contact.
		path, err := url.PathUnescape(u.Opaque)
		if err != nil || path == "" {
			return fmt.Errorf("%q is not an xmpp: URI with a JID, like xmpp:admin@example.org", addr)
		}
		if _, err := jid.Parse(path); err != nil {
			return fmt.Errorf("%q does not name a valid JID: %v", addr, err)
		}
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q is not a URL with a host, like https://example.org/contact", addr)
		}
	case "":
		return fmt.Errorf("%q is not a URI: write mailto:, xmpp: or https: before it", addr)
	default:
		return fmt.Errorf("%q is not a mailto:, xmpp:, http: or https: URI", addr)
	}
	return nil
}

// errorText is a url.Error's reason without the URL repeated.
func errorText(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}

// Form returns the contact addresses of o as the XEP-0157 form: a field
// per role that has addresses, none when there are none.
func Form(o *Options) dispatch.Form {
	f := dispatch.Form{Type: FormType}
	for _, r := range o.roles() {
		if len(r.list) > 0 {
			f.Fields = append(f.Fields, dispatch.Field{Var: r.field, Values: slices.Clone(r.list)})
		}
	}
	return f
}

// Module is XEP-0157 as a module. The operator may turn it off.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "contactinfo" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Options implements module.Configurable.
func (Module) Options() any { return DefaultOptions() }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	env.IQ.AddServerForm(func() dispatch.Form { return Form(env.Options().(*Options)) })
	return nil
}
