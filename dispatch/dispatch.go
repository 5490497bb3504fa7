// Package dispatch answers the IQs that the server handles itself: those
// addressed to a local domain, to an account's bare JID on its behalf, or
// with no 'to' (RFC 6120 §10.3.3, §10.5.3.1). Modules register a handler per
// payload namespace and the disco features they provide (and the server's
// extended information forms, XEP-0128), so that service discovery
// (XEP-0030) is built from what is registered. Every IQ get or set
// gets exactly one answer: service-unavailable when nothing handles it
// (RFC 6120 §8.2.3, §8.3.3.19).
//
// An IQ to another local account's bare JID reaches only handlers
// registered with HandleForAccounts (vCard, XEP-0054 §3.3; last activity,
// XEP-0012 §3), and only when that account exists; otherwise the answer is
// service-unavailable, as for an account that does not exist (RFC 6121
// §8.5.1). Such a handler checks the sender's permission itself.
package dispatch

import (
	"context"
	"encoding/xml"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// Request is one IQ get or set for the server.
type Request struct {
	// Stanza is the whole IQ; its From is the sender's full JID, stamped.
	Stanza *stanza.Stanza
	// To is the address the IQ was for: a domain, a bare JID, or the
	// sender's bare JID when the IQ had no 'to'.
	To jid.JID
	// Name and Payload are the IQ's child element.
	Name    xml.Name
	Payload []byte

	// after holds what AfterReply registered.
	after *[]func()
}

// AfterReply runs f once the reply has been queued for the sender: for
// effects that must follow the answer, such as ending the sessions of an
// account that was just removed (XEP-0077 §3.2).
func (r Request) AfterReply(f func()) { *r.after = append(*r.after, f) }

// Set reports whether the request is an IQ set.
func (r Request) Set() bool { return r.Stanza.Type == "set" }

// ForServer reports whether the request is addressed to the domain itself.
func (r Request) ForServer() bool { return r.To.Localpart() == "" }

// Handler answers one request: the payload of the result (nil for an empty
// result) or a *stanza.Error.
type Handler func(ctx context.Context, req Request) ([]byte, error)

// Sender delivers a reply to a local full JID.
type Sender interface {
	DeliverTo(full jid.JID, raw []byte) bool
}

// AccountExists tells whether a local account exists.
type AccountExists func(ctx context.Context, bare jid.JID) bool

// Mux routes server IQs by payload namespace.
type Mux struct {
	log *slog.Logger

	mu        sync.RWMutex // guards the fields below; written at start-up
	handlers  map[xml.Name]entry
	observers map[xml.Name][]Observer // AfterSet's
	features  []string
	out       Sender
	exists    AccountExists
	preAuth   map[xml.Name]PreAuthHandler
	// What disco (XEP-0030) lists: the server's identities and items,
	// and the identities and features of every account's bare JID.
	identities        []Identity
	items             []Item
	accountIdentities []Identity
	accountFeatures   []string
	serverForms       []func() Form
	nodes             []Nodes
}

// Nodes answers service discovery for nodes (XEP-0030 §3.2, §4.2) that a
// module offers, such as the ad-hoc commands' (XEP-0050 §2). NodeInfo
// returns the identities and features of node and NodeItems its items,
// as req's sender may see them (req.To says which entity was asked); ok
// is false for a node the module does not have, or will not show that
// sender.
type Nodes interface {
	NodeInfo(ctx context.Context, req Request, node string) (ids []Identity, features []string, ok bool)
	NodeItems(ctx context.Context, req Request, node string) (items []Item, ok bool)
}

// AddNodes makes n answer service discovery for its nodes.
func (m *Mux) AddNodes(n Nodes) {
	m.mu.Lock()
	m.nodes = append(m.nodes, n)
	m.mu.Unlock()
}

// NodeInfo is the disco#info of node for req, from the first Nodes that
// has it; ok is false when none has.
func (m *Mux) NodeInfo(ctx context.Context, req Request, node string) ([]Identity, []string, bool) {
	for _, n := range snapshot(m, &m.nodes) {
		if ids, features, ok := n.NodeInfo(ctx, req, node); ok {
			return ids, features, true
		}
	}
	return nil, nil, false
}

// NodeItems is the disco#items of node for req, from the first Nodes
// that has it; ok is false when none has.
func (m *Mux) NodeItems(ctx context.Context, req Request, node string) ([]Item, bool) {
	for _, n := range snapshot(m, &m.nodes) {
		if items, ok := n.NodeItems(ctx, req, node); ok {
			return items, true
		}
	}
	return nil, false
}

// Identity is a service discovery identity (XEP-0030 §3.1).
type Identity struct {
	Category, Type, Lang, Name string
}

// Item is a service discovery item (XEP-0030 §4.1): an entity of the
// server, such as a service on a subdomain.
type Item struct {
	JID, Node, Name string
}

// Form is an extended information form (XEP-0128) of the server's
// disco#info: a data form (XEP-0004) of type 'result' whose FORM_TYPE, a
// hidden field, is Type.
type Form struct {
	Type   string
	Fields []Field
}

// Field is one field of a Form: its 'var', its 'type' (none when empty)
// and its values.
type Field struct {
	Var, Type string
	Values    []string
}

// AddServerForm lists an extended information form in the server's
// disco#info (XEP-0128 §2), and so in its entity capabilities (XEP-0115
// §5.4): f returns the form each time either is computed, so that it
// follows the configuration in force. A form without fields is left out,
// and so is one whose FORM_TYPE an earlier registered form has already
// (XEP-0115 §5.4 would call the result ill-formed).
func (m *Mux) AddServerForm(f func() Form) {
	m.mu.Lock()
	m.serverForms = append(m.serverForms, f)
	m.mu.Unlock()
}

// ServerForms returns the server's extended information forms as their
// functions return them now, sorted by FORM_TYPE.
func (m *Mux) ServerForms() []Form {
	var forms []Form
	for _, f := range snapshot(m, &m.serverForms) {
		form := f()
		if len(form.Fields) == 0 || slices.ContainsFunc(forms, func(o Form) bool { return o.Type == form.Type }) {
			continue
		}
		forms = append(forms, form)
	}
	slices.SortStableFunc(forms, func(a, b Form) int { return strings.Compare(a.Type, b.Type) })
	return forms
}

// AddIdentity lists an identity of the server (XEP-0030 §3.1).
func (m *Mux) AddIdentity(id Identity) { add(m, &m.identities, id) }

// AddItem lists an item of the server's disco#items (XEP-0030 §4.1): a
// service the server offers.
func (m *Mux) AddItem(it Item) { add(m, &m.items, it) }

// AddAccountIdentity lists an identity of every account's bare JID (PEP's
// pubsub/pep, XEP-0163 §6.1).
func (m *Mux) AddAccountIdentity(id Identity) { add(m, &m.accountIdentities, id) }

// AddAccountFeatures lists features of every account's bare JID disco#info
// (message archive, XEP-0313 §6.1, and PEP advertise themselves there).
func (m *Mux) AddAccountFeatures(vars ...string) { add(m, &m.accountFeatures, vars...) }

// Identities, Items, AccountIdentities and AccountFeatures return what
// was registered, identities and items in registration order, features
// sorted.
func (m *Mux) Identities() []Identity { return snapshot(m, &m.identities) }

func (m *Mux) Items() []Item { return snapshot(m, &m.items) }

func (m *Mux) AccountIdentities() []Identity { return snapshot(m, &m.accountIdentities) }

func (m *Mux) AccountFeatures() []string {
	f := snapshot(m, &m.accountFeatures)
	slices.Sort(f)
	return f
}

// add appends to *list, under m's lock, each of vs it does not hold yet.
func add[T comparable](m *Mux, list *[]T, vs ...T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range vs {
		if !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
}

// snapshot returns a copy of *list, read under m's lock.
func snapshot[T any](m *Mux, list *[]T) []T {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(*list)
}

// PreAuthHandler answers an IQ request of a stream that has not
// authenticated yet, for host (XEP-0077 §3.1 registration): the whole
// reply.
type PreAuthHandler func(ctx context.Context, host string, iq *stanza.Stanza) []byte

// HandlePreAuth registers h for IQ requests whose payload is
// {space}local sent before authentication, over TLS.
func (m *Mux) HandlePreAuth(space, local string, h PreAuthHandler) {
	m.mu.Lock()
	if m.preAuth == nil {
		m.preAuth = make(map[xml.Name]PreAuthHandler)
	}
	m.preAuth[xml.Name{Space: space, Local: local}] = h
	m.mu.Unlock()
}

// PreAuth answers iq, a request of a stream not authenticated yet, with
// the handler registered for its payload; nil when there is none (the
// stream then ends, RFC 6120 §4.9.3.12).
func (m *Mux) PreAuth(ctx context.Context, host string, iq *stanza.Stanza) []byte {
	name, _, ok := iq.Payload()
	if !ok {
		return nil
	}
	m.mu.RLock()
	h := m.preAuth[name]
	m.mu.RUnlock()
	if h == nil {
		return nil
	}
	return h(ctx, host, iq)
}

// entry is one registered handler.
type entry struct {
	h Handler
	// accounts: h also answers IQs to other local accounts' bare JIDs.
	accounts bool
}

// Observer is told of a request a handler answered with a result.
type Observer func(ctx context.Context, req Request)

// New returns a Mux that answers only the legacy session establishment:
// old clients still send it after binding (RFC 3921 §3), and RFC 6121
// Appendix E keeps it as a no-op (c2s offers it as <optional/>). It
// lists the server as an IM server (identity server/im, XEP-0030 §3.1,
// registry category "server") and each account as account/registered.
func New(log *slog.Logger) *Mux {
	m := &Mux{log: log, handlers: make(map[xml.Name]entry), observers: make(map[xml.Name][]Observer),
		identities:        []Identity{{Category: "server", Type: "im", Name: "Starling"}},
		accountIdentities: []Identity{{Category: "account", Type: "registered"}},
	}
	m.Handle("urn:ietf:params:xml:ns:xmpp-session", "session", func(context.Context, Request) ([]byte, error) {
		return nil, nil
	})
	return m
}

// SetSender sets where replies go (the router).
func (m *Mux) SetSender(s Sender) {
	m.mu.Lock()
	m.out = s
	m.mu.Unlock()
}

// SetAccountExists sets how the Mux learns whether a local account exists,
// for IQs addressed to another account's bare JID. Until it is set, such
// IQs are answered service-unavailable.
func (m *Mux) SetAccountExists(f AccountExists) {
	m.mu.Lock()
	m.exists = f
	m.mu.Unlock()
}

// Handle registers h for IQs whose payload is {space}local, addressed to a
// local domain or to the sender's own account.
func (m *Mux) Handle(space, local string, h Handler) {
	m.handle(space, local, entry{h: h})
}

// HandleForAccounts registers h like Handle, and also for IQs addressed to
// the bare JID of another existing local account, which the server answers
// on that account's behalf (RFC 6120 §10.5.3.1). h decides whether the
// sender may have an answer (req.To is then not the sender's bare JID).
func (m *Mux) HandleForAccounts(space, local string, h Handler) {
	m.handle(space, local, entry{h: h, accounts: true})
}

// AfterSet registers f to run after each IQ set of {space}local that its
// handler answered with a result, once that result is queued: for a module
// that keeps its data in step with what another stores (bookmarks,
// XEP-0402 §5.3, with private XML storage's; avatars, XEP-0398 §3, with
// the vCard's). f runs on the sender's reader, after the reply.
func (m *Mux) AfterSet(space, local string, f Observer) {
	m.mu.Lock()
	name := xml.Name{Space: space, Local: local}
	m.observers[name] = append(m.observers[name], f)
	m.mu.Unlock()
}

func (m *Mux) handle(space, local string, e entry) {
	m.mu.Lock()
	m.handlers[xml.Name{Space: space, Local: local}] = e
	m.mu.Unlock()
}

// AddFeatures lists disco#info features (XEP-0030 §3.1) a module provides.
func (m *Mux) AddFeatures(vars ...string) { add(m, &m.features, vars...) }

// Features returns the registered features, sorted.
func (m *Mux) Features() []string {
	f := snapshot(m, &m.features)
	slices.Sort(f)
	return f
}

// HandleServer answers an IQ request addressed to the server or to an
// account on its behalf, and a chat or normal message addressed to the
// server itself (service-unavailable). Presence addressed to the server
// is dropped; an IQ result or error addressed to it ends here.
func (m *Mux) HandleServer(ctx context.Context, s *stanza.Stanza) {
	if s.Kind == stanza.Message && s.To.Localpart() == "" && s.To.Domainpart() != "" &&
		s.Type != "error" && s.Type != "headline" && s.Type != "groupchat" {
		// A message to the server itself: nobody reads it, so the
		// sender is told (RFC 6121 §8.5.1 treats a message for an entity
		// that is not there the same way) rather than left waiting.
		m.reply(s, stanza.ErrorReply(s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}))
		return
	}
	if !s.IsRequest() {
		return
	}
	// A reply to an IQ without 'to' carries no 'from' either (RFC 6120
	// §10.3.3: the server answers on behalf of the account).
	to, from := s.To, s.To
	if to.Domainpart() == "" {
		to = s.From.Bare()
	}
	var after []func()
	m.reply(s, m.answer(ctx, s, to, from, &after))
	for _, f := range after {
		f()
	}
}

// reply sends raw, the answer to s, to its sender.
func (m *Mux) reply(s *stanza.Stanza, raw []byte) {
	m.mu.RLock()
	out := m.out
	m.mu.RUnlock()
	if out != nil {
		out.DeliverTo(s.From, raw)
	}
}

func (m *Mux) answer(ctx context.Context, s *stanza.Stanza, to, from jid.JID, after *[]func()) []byte {
	name, payload, ok := s.Payload()
	if !ok {
		// RFC 6120 §8.2.3: a get or set must contain exactly one child.
		return stanza.ErrorReply(s, from, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
	}
	m.mu.RLock()
	e, exists := m.handlers[name], m.exists
	m.mu.RUnlock()
	unavailable := e.h == nil
	if !unavailable && to.Localpart() != "" && !to.Equal(s.From.Bare()) {
		// Another account's bare JID: only for handlers that answer on
		// behalf of accounts, and only if the account exists (RFC 6121
		// §8.5.1: otherwise as if nothing were there).
		unavailable = !e.accounts || exists == nil || !exists(ctx, to)
	}
	if unavailable {
		return stanza.ErrorReply(s, from, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
	req := Request{Stanza: s, To: to, Name: name, Payload: payload, after: after}
	res, err := e.h(ctx, req)
	if err == nil && req.Set() {
		m.mu.RLock()
		obs := m.observers[name]
		m.mu.RUnlock()
		for _, f := range obs {
			req.AfterReply(func() { f(ctx, req) })
		}
	}
	if err != nil {
		se, ok := err.(*stanza.Error)
		if !ok {
			m.log.Error("iq handler failed", "ns", name.Space, "jid", s.From.String(), "err", err)
			se = &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		return stanza.ErrorReply(s, from, se)
	}
	return stanza.Result(s, from, res)
}
