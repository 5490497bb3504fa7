// Package version answers Software Version requests to the server
// (XEP-0092 §2). The operating system is not disclosed (§3, security).
package version

import (
	"bytes"
	"context"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Register adds the version handler to m, reporting name and version.
func Register(m *dispatch.Mux, name, version string) {
	m.AddFeatures(NS)
	m.Handle(NS, "query", func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() || !req.ForServer() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		var b bytes.Buffer
		b.WriteString("<query xmlns='" + NS + "'><name>")
		stanza.EscapeAttr(&b, name)
		b.WriteString("</name><version>")
		stanza.EscapeAttr(&b, version)
		b.WriteString("</version></query>")
		return b.Bytes(), nil
	})
}

// Module is XEP-0092 as a module, reporting Software and Version.
type Module struct {
	Software, Version string
}

// Name implements module.Module.
func (Module) Name() string { return "version" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (m Module) Start(_ context.Context, env *module.Env) error {
	Register(env.IQ, m.Software, m.Version)
	return nil
}
