// Package ping answers XMPP Ping (XEP-0199 §4.2 client-to-server ping) for
// the server and for the sender's own account.
package ping

import (
	"context"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Register adds the ping handler to m.
func Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	m.Handle(NS, "ping", func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() || req.Stanza.Type == "get" {
			return nil, nil
		}
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	})
}

// Module is XEP-0199 as a module. It cannot be turned off: clients keep
// their connections alive with it.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "ping" }

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	Register(env.IQ)
	return nil
}
