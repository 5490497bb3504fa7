// Package entitytime answers Entity Time requests to the server (XEP-0202
// §3): UTC time in XEP-0082 format and the server's offset.
package entitytime

import (
	"context"
	"time"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the XEP-0202 namespace.
const NS = "urn:xmpp:time"

// Register adds the time handler to m; now is the clock (time.Now).
func Register(m *dispatch.Mux, now func() time.Time) {
	m.AddFeatures(NS)
	m.Handle(NS, "time", func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.Set() || !req.ForServer() {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		t := now()
		return []byte("<time xmlns='" + NS + "'><tzo>" + t.Format("-07:00") + "</tzo><utc>" +
			t.UTC().Format("2006-01-02T15:04:05.000Z") + "</utc></time>"), nil
	})
}

// Module is XEP-0202 as a module, on the system clock.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "time" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	Register(env.IQ, time.Now)
	return nil
}
