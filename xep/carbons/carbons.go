// Package carbons is Message Carbons (XEP-0280 v1.0.1) as a module: a
// client enables or disables carbons for its session (§4, §5; forgotten
// when the session ends), the server lists urn:xmpp:carbons:2 in its
// disco#info (§3), and the instant messages an account sends and receives
// are copied, wrapped in <sent/> or <received/> and a <forwarded/>
// (XEP-0297), to the account's other carbon-enabled resources (§7, §8).
//
// Which messages are copied (§6, the suggested rules): type chat; type
// normal (or none, or one not understood: RFC 6121 §5.2.2) with a <body/>
// or with a payload typically used in IM — receipts (XEP-0184), chat
// states (XEP-0085), chat markers (XEP-0333). Never groupchat or headline
// messages, nor a message received from a MUC room or one of its
// participants (§6: one with <x xmlns='…muc#user'/>), nor a carbon
// itself. Errors are not copied: §6 allows one only in answer to a message
// that was itself copied, which would mean tracking every message (the
// XEP says so itself), and an error reaches the resource that sent the
// message. A message with <private xmlns='urn:xmpp:carbons:2'/> or
// <no-copy xmlns='urn:xmpp:hints'/> is not copied either way, and the
// <private/> element is removed before the message is delivered to a
// local recipient (§9), while any session has carbons enabled.
//
// Sent carbons (§8) are made when a client sends a message (c2s.ClientStanza),
// for every carbon-enabled resource of the sender but the sending one,
// whether or not that one has carbons enabled. Received carbons (§7) are
// made once the router has delivered a message to a local account
// (router.Delivered, which names the sessions the delivery rules of RFC
// 6121 §8.5 gave it to): every other carbon-enabled resource of the
// account gets a copy, so that no resource gets the message twice. A
// message from the account to itself is copied the same way, as a sent
// carbon, and never back to the resource that sent it.
package carbons

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// NS is the XEP-0280 namespace, also its disco#info feature (§3).
const NS = "urn:xmpp:carbons:2"

// Namespaces that decide whether a message is copied (§6, §9).
const (
	nsForward    = "urn:xmpp:forward:0"                    // XEP-0297
	nsHints      = "urn:xmpp:hints"                        // XEP-0334 <no-copy/>
	nsReceipts   = "urn:xmpp:receipts"                     // XEP-0184
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsMarkers    = "urn:xmpp:chat-markers:0"               // XEP-0333
	nsMUCUser    = "http://jabber.org/protocol/muc#user"   // XEP-0045
	nsClient     = "jabber:client"
)

var nsBytes = []byte(NS)

// errBadRequest answers an <enable/> or <disable/> that is not an IQ set.
var errBadRequest = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}

// Module is XEP-0280 as a module. The operator may turn it off.
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "carbons" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	newService(env.Router).register(env.IQ, env.Bus)
	return nil
}

// service holds which sessions have carbons enabled.
type service struct {
	router router.Router

	mu sync.RWMutex // guards on
	on map[router.Session]struct{}
	// n is len(on): while it is 0, messages are not even looked at.
	n atomic.Int64
}

func newService(r router.Router) *service {
	return &service{router: r, on: make(map[router.Session]struct{})}
}

// register adds the IQ handlers, the feature and the event handlers.
func (s *service) register(iq *dispatch.Mux, bus *event.Bus) {
	iq.AddFeatures(NS)
	iq.Handle(NS, "enable", s.enable(true))
	iq.Handle(NS, "disable", s.enable(false))
	event.On(bus, event.Normal, "carbons", s.sent)
	event.On(bus, event.Normal, "carbons", s.routing)
	event.On(bus, event.Normal, "carbons", s.delivered)
	event.On(bus, event.Normal, "carbons", func(_ context.Context, e *c2s.SessionEnded) bool {
		s.set(e.Session, false)
		return false
	})
}

// enable answers <enable/> (on) and <disable/> (§4, §5): an IQ set from
// the session, to the account's bare JID or without 'to'. Enabling twice,
// or disabling what is not enabled, is no error (§10.1).
func (s *service) enable(on bool) dispatch.Handler {
	return func(_ context.Context, req dispatch.Request) ([]byte, error) {
		if req.ForServer() {
			// For the session's own account, not the server
			// (ejabberd answers the same).
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		if !req.Set() {
			return nil, errBadRequest
		}
		if sess := s.router.Session(req.Stanza.From); sess != nil {
			s.set(sess, on)
		}
		return nil, nil
	}
}

// set records whether sess has carbons enabled.
func (s *service) set(sess router.Session, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, was := s.on[sess]
	switch {
	case on && !was:
		s.on[sess] = struct{}{}
		s.n.Add(1)
	case !on && was:
		delete(s.on, sess)
		s.n.Add(-1)
	}
}

// enabled returns the sessions of bare with carbons enabled.
func (s *service) enabled(bare jid.JID) []router.Session {
	var out []router.Session
	s.mu.RLock()
	for _, sess := range s.router.Sessions(bare) {
		if _, ok := s.on[sess]; ok {
			out = append(out, sess)
		}
	}
	s.mu.RUnlock()
	return out
}

// sent makes the sent carbons of a message a client sends (§8): one for
// each carbon-enabled resource of the sender but the sending one. A
// message to the sender's own account is left to routing, which knows
// which of its resources got it.
func (s *service) sent(_ context.Context, e *c2s.ClientStanza) bool {
	st := e.Stanza
	if st.Kind != stanza.Message || s.n.Load() == 0 {
		return false
	}
	from := st.From.Bare()
	if st.To.Bare().Equal(from) {
		return false
	}
	targets := s.enabled(from)
	if len(targets) == 0 || (len(targets) == 1 && targets[0] == e.Session) ||
		!inspect(st.Raw).copied(st.Type, false) {
		return false
	}
	w := newWrapper(from, st, "sent")
	for _, sess := range targets {
		if sess != e.Session {
			sess.Deliver(w.to(sess.JID()))
		}
	}
	return false
}

// routing removes <private/> from a message for a local account before it
// is delivered, and marks it not to be copied (§9: the receiving server
// SHOULD remove it).
func (s *service) routing(_ context.Context, e *router.Routing) bool {
	st := e.Stanza
	// While nobody has carbons enabled there is nothing to keep the
	// message from: <private/> is left as it is (a SHOULD), and messages
	// are not even scanned.
	if e.Quiet || st.Kind != stanza.Message || s.n.Load() == 0 || !bytes.Contains(st.Raw, nsBytes) {
		return false
	}
	if st.To.Localpart() == "" || !s.router.IsLocal(st.To.Domainpart()) || !inspect(st.Raw).private {
		return false
	}
	if c, err := stanza.ParseElement(withoutPrivate(st.Raw)); err == nil {
		e.Stanza, e.NoCopy = c, true
	}
	return false
}

// delivered makes the carbons of a message delivered to a local account:
// every carbon-enabled resource of the account that the delivery rules of
// RFC 6121 §8.5 did not give it to gets a copy, as a received carbon (§7)
// or, for a message the account sent itself, a sent carbon (§8), never
// the resource that sent it. Prosody's mod_carbons and ejabberd's
// mod_carboncopy work out which resources the rules pick; the router says
// so instead, which keeps those rules in one place.
func (s *service) delivered(_ context.Context, e *router.Delivered) bool {
	st := e.Stanza
	if e.NoCopy || s.n.Load() == 0 {
		return false
	}
	account := st.To.Bare()
	targets := s.enabled(account)
	if len(targets) == 0 {
		return false
	}
	own := st.From.Bare().Equal(account)
	if !inspect(st.Raw).copied(st.Type, !own) {
		return false
	}
	kind := "received"
	if own {
		kind = "sent"
	}
	var w *wrapper
	for _, sess := range targets {
		if slices.Contains(e.Sessions, sess) || sess.JID().Equal(st.From) {
			continue
		}
		if w == nil {
			w = newWrapper(account, st, kind)
		}
		sess.Deliver(w.to(sess.JID()))
	}
	return false
}

// facts are what the eligibility rules (§6, §9) look at in a message's
// direct children.
type facts struct {
	body    bool // <body/>
	im      bool // a receipt, a chat state or a chat marker
	private bool // <private xmlns='urn:xmpp:carbons:2'/>
	noCopy  bool // <no-copy xmlns='urn:xmpp:hints'/>
	carbon  bool // <sent/> or <received/> of urn:xmpp:carbons:2: a carbon itself
	mucUser bool // <x xmlns='http://jabber.org/protocol/muc#user'/>
}

// inspect reads the direct children of a message.
func inspect(raw []byte) facts {
	var f facts
	for c := range stanza.Children(raw) {
		switch string(c.Space) {
		case "", nsClient:
			f.body = f.body || string(c.Local) == "body"
		case NS:
			f.private = f.private || string(c.Local) == "private"
			f.carbon = f.carbon || string(c.Local) == "sent" || string(c.Local) == "received"
		case nsHints:
			f.noCopy = f.noCopy || string(c.Local) == "no-copy"
		case nsReceipts, nsChatStates, nsMarkers:
			f.im = true
		case nsMUCUser:
			f.mucUser = f.mucUser || string(c.Local) == "x"
		}
	}
	return f
}

// copied applies §6 and §9 to a message of type typ with these children;
// received is true for a message an account receives from another.
func (f facts) copied(typ string, received bool) bool {
	if f.private || f.noCopy || f.carbon || (received && f.mucUser) {
		return false
	}
	switch typ {
	case "chat":
		return true
	case "groupchat", "headline", "error":
		return false
	}
	// normal, no type, or a type not understood (RFC 6121 §5.2.2).
	return f.body || f.im
}

// wrapper builds the carbons of one message: everything but the 'to' of
// the wrapping message is the same for each resource.
type wrapper struct {
	head, tail []byte
}

// newWrapper wraps st in <kind/> and <forwarded/>, from the account's bare
// JID and with st's type (§7, §8). The forwarded message keeps its
// addresses and is in jabber:client.
func newWrapper(account jid.JID, st *stanza.Stanza, kind string) *wrapper {
	var h bytes.Buffer
	h.WriteString("<message from='")
	stanza.EscapeAttr(&h, account.String())
	if st.Type != "" {
		h.WriteString("' type='")
		stanza.EscapeAttr(&h, st.Type)
	}
	h.WriteString("' to='")
	var t bytes.Buffer
	t.WriteString("'><")
	t.WriteString(kind)
	t.WriteString(" xmlns='" + NS + "'><forwarded xmlns='" + nsForward + "'>")
	t.Write(stanza.InClientNS(st.Raw))
	t.WriteString("</forwarded></")
	t.WriteString(kind)
	t.WriteString("></message>")
	return &wrapper{head: h.Bytes(), tail: t.Bytes()}
}

// to returns the carbon for the resource full.
func (w *wrapper) to(full jid.JID) []byte {
	b := bytes.NewBuffer(make([]byte, 0, len(w.head)+len(w.tail)+64))
	b.Write(w.head)
	stanza.EscapeAttr(b, full.String())
	b.Write(w.tail)
	return b.Bytes()
}

// withoutPrivate returns a message without its <private/> children (§9).
func withoutPrivate(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	last := 0
	for c := range stanza.Children(raw) {
		if c.Is(NS, "private") {
			out = append(out, raw[last:c.Start]...)
			last = c.Start + len(c.Raw)
		}
	}
	return append(out, raw[last:]...)
}
