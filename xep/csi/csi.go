// Package csi is Client State Indication (XEP-0352 v1.0.0) as a module:
// the server offers <csi xmlns='urn:xmpp:csi:0'/> among the stream
// features after authentication (§5; Conversations and Monal look for
// it), and a bound client says <inactive/> when its user is not looking
// (a phone's screen is off) and <active/> when it is again (§4). While a
// session is inactive, what it need not see at once is held back, which
// keeps a phone's radio asleep; XEP-0352 leaves what that is to the
// server (§6), so the rules are Prosody's mod_csi_simple's, with chat
// states and presence reduced to the latest per sender as ejabberd's
// mod_client_state does:
//
//   - presence updates (available, unavailable) are held, only the
//     latest per sender's full JID; chat states alone (XEP-0085) the
//     same;
//   - other bodiless messages the user need not see now — receipts
//     (XEP-0184), chat markers (XEP-0333), PEP events, headlines without
//     a body, carbons of those — are held in order;
//   - everything else is urgent: messages with a body or a subject, or
//     any payload not known to be unimportant (OMEMO and other encrypted
//     payloads, invitations, calls), carbons of those, errors, IQs,
//     subscription requests and answers, a MUC presence about the user's
//     own occupant. An urgent stanza releases everything held, in order,
//     and then goes;
//   - <active/> releases everything held;
//   - memory is bounded: once more than [modules.csi] max_stanzas or
//     max_bytes are held, all of it is released (Prosody's
//     csi_queue_size does the same).
//
// What the session is sent is always a subsequence of what was routed to
// it, in order: a replaced presence drops out, its successor keeps its own
// place. Deciding costs a scan of the stanza's start tag and direct
// children, and is done only for inactive sessions: an active one has no
// holder (c2s.Client.SetHolder). The state survives stream management's
// resumption (c2s.SessionResumed: the session is the same, and the client
// says <active/> when it is), as Prosody's does; it is dropped with the
// session (c2s.SessionEnded), and what was held with it — nothing that
// carries a body.
//
// Anything else in urn:xmpp:csi:0 is not handled, so c2s ends the stream
// with <unsupported-stanza-type/>, as it does for <active/> and
// <inactive/> before resource binding.
package csi

import (
	"context"
	"fmt"
	"sync"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/router"
)

// NS is the XEP-0352 namespace.
const NS = "urn:xmpp:csi:0"

// Feature is the stream feature offered after authentication (§5).
const Feature = "<csi xmlns='" + NS + "'/>"

// Options are the module's: [modules.csi].
type Options struct {
	// MaxStanzas bounds the stanzas held for one inactive session;
	// beyond it everything held is sent.
	MaxStanzas int `toml:"max_stanzas"`
	// MaxBytes bounds their length the same way.
	MaxBytes int `toml:"max_bytes"`
}

// Validate implements config.Validator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	if o.MaxStanzas < 1 || o.MaxStanzas > 10000 {
		p = append(p, config.OptionsProblem{Key: "max_stanzas", Message: fmt.Sprintf("must be between 1 and 10000, not %d", o.MaxStanzas)})
	}
	if o.MaxBytes < 1024 || o.MaxBytes > 64<<20 {
		p = append(p, config.OptionsProblem{Key: "max_bytes", Message: fmt.Sprintf("must be between 1024 and 67108864, not %d", o.MaxBytes)})
	}
	return p
}

// Defaults: well under [limits] outbound_queue (1000) and
// outbound_queue_bytes (4 MiB), which must take everything released at
// once.
const (
	defaultMaxStanzas = 100
	defaultMaxBytes   = 256 << 10
)

// Module is XEP-0352 as a module. The operator may turn it off.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "csi" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Options implements module.Configurable.
func (Module) Options() any {
	return &Options{MaxStanzas: defaultMaxStanzas, MaxBytes: defaultMaxBytes}
}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := newService(func() Options { return *env.Options().(*Options) })
	env.AddStreamFeature(func() string { return Feature })
	s.register(env.Bus)
	return nil
}

// service knows the inactive sessions.
type service struct {
	options func() Options // in force (reloads apply to the next <inactive/>)

	mu       sync.Mutex // guards inactive
	inactive map[router.Session]*holder
}

func newService(options func() Options) *service {
	return &service{options: options, inactive: make(map[router.Session]*holder)}
}

func (s *service) register(bus *event.Bus) {
	event.On(bus, event.Normal, "csi", s.nonza)
	event.On(bus, event.Normal, "csi", func(_ context.Context, e *c2s.SessionEnded) bool {
		s.ended(e.Session)
		return false
	})
}

// nonza handles <active/> and <inactive/> (§4).
func (s *service) nonza(_ context.Context, e *c2s.ClientNonza) bool {
	if e.Element.Name.Space != NS {
		return false
	}
	switch e.Element.Name.Local {
	case "inactive":
		s.setInactive(e.Session)
	case "active":
		s.setActive(e.Session)
	default:
		return false
	}
	return true
}

// setInactive starts holding for sess; a second <inactive/> changes
// nothing.
func (s *service) setInactive(sess c2s.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inactive[sess]; ok {
		return
	}
	o := s.options()
	h := newHolder(sess, o.MaxStanzas, o.MaxBytes)
	s.inactive[sess] = h
	sess.SetHolder(h)
}

// setActive releases what was held for sess and stops holding.
func (s *service) setActive(sess c2s.Client) {
	s.mu.Lock()
	h := s.inactive[sess]
	delete(s.inactive, sess)
	s.mu.Unlock()
	if h == nil {
		return
	}
	// Release first: until the holder is removed, a stanza delivered
	// meanwhile waits for the release and then passes.
	h.activate()
	sess.SetHolder(nil)
}

// ended forgets a session that has ended, and what was held for it.
func (s *service) ended(sess router.Session) {
	s.mu.Lock()
	h := s.inactive[sess]
	delete(s.inactive, sess)
	s.mu.Unlock()
	if h == nil {
		return
	}
	h.ended.Store(true)
	if c, ok := sess.(c2s.Client); ok {
		c.SetHolder(nil)
	}
}

// inactiveCount returns the number of inactive sessions (for tests).
func (s *service) inactiveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inactive)
}
