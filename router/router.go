// Package router is the session directory and the delivery rules for local
// addresses (RFC 6120 §10, RFC 6121 §8). Delivering means handing the bytes
// to the recipient session's bounded outbound queue: the router never writes
// to a socket and never waits for a slow recipient.
package router

import (
	"context"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// Session is one bound client session as the router sees it.
type Session interface {
	// JID is the session's full JID, fixed at bind.
	JID() jid.JID
	// Deliver queues raw for the session's writer. It never blocks; a
	// session whose queue is full closes itself, and Deliver returns false.
	Deliver(raw []byte) bool
	// Available reports whether the session has sent available presence,
	// and its priority (RFC 6121 §4.7.2.3).
	Available() (ok bool, priority int)
	// Replace ends the session because another one bound the same full JID
	// (RFC 6120 §7.7.2.2: the older one receives <conflict/>).
	Replace()
}

// Server handles stanzas addressed to the server itself or, on behalf of
// an account, to its bare JID (RFC 6120 §10.3.3, §10.5.3.1).
type Server interface {
	HandleServer(ctx context.Context, s *stanza.Stanza)
}

// AccountExists tells whether a local account exists; it is only asked
// when the recipient has no session online.
type AccountExists func(ctx context.Context, bare jid.JID) bool

// Hooks connect delivery to the instant-messaging modules. They are set
// once, before the router serves (SetHooks); a nil hook is skipped.
type Hooks struct {
	// Blocked reports whether stanzas between the local account user (a
	// bare JID) and other are stopped by user's blocklist (XEP-0191).
	Blocked func(ctx context.Context, user, other jid.JID) bool
	// Presence handles presence of the subscription types and probes
	// addressed to a local domain's account, whether or not it exists
	// (RFC 6121 §3, §4.3): the roster and presence modules own them.
	Presence func(ctx context.Context, s *stanza.Stanza)
	// Offline takes a chat or normal message for an existing account that
	// has no available resource with non-negative priority (XEP-0160,
	// RFC 6121 §8.5.2.2.1). It returns nil when the message was stored or
	// deliberately dropped, or the error to bounce to the sender.
	Offline func(ctx context.Context, s *stanza.Stanza) *stanza.Error
}

// Router delivers stanzas between the sessions of the local hosts.
type Router struct {
	hosts  map[string]bool
	exists AccountExists
	server Server
	hooks  Hooks

	mu sync.RWMutex // guards users
	// users maps a bare JID string to its sessions by resourcepart.
	users map[string]map[string]Session
}

// New returns a router for the given local domains.
func New(hosts []string, exists AccountExists, server Server) *Router {
	h := make(map[string]bool, len(hosts))
	for _, d := range hosts {
		h[d] = true
	}
	return &Router{hosts: h, exists: exists, server: server, users: make(map[string]map[string]Session)}
}

// SetHooks installs the IM modules' hooks; call it before serving.
func (r *Router) SetHooks(h Hooks) { r.hooks = h }

// IsLocal reports whether domain is served here.
func (r *Router) IsLocal(domain string) bool { return r.hosts[domain] }

// ErrTooManySessions is returned by Bind when the account has max sessions.
var ErrTooManySessions = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many sessions for this account"}

// Bind registers s under its full JID. A session already bound to the same
// full JID is replaced (it receives <conflict/>). When the account already
// has max sessions (and none is replaced), ErrTooManySessions is returned.
func (r *Router) Bind(s Session, max int) error {
	j := s.JID()
	bare := j.Bare().String()
	r.mu.Lock()
	res := r.users[bare]
	old := res[j.Resourcepart()]
	if old == nil && max > 0 && len(res) >= max {
		r.mu.Unlock()
		return ErrTooManySessions
	}
	if res == nil {
		res = make(map[string]Session)
		r.users[bare] = res
	}
	res[j.Resourcepart()] = s
	r.mu.Unlock()
	if old != nil {
		old.Replace()
	}
	return nil
}

// Unbind removes s, if it is still the session bound to its JID.
func (r *Router) Unbind(s Session) {
	j := s.JID()
	bare := j.Bare().String()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.users[bare]
	if res[j.Resourcepart()] != s {
		return
	}
	delete(res, j.Resourcepart())
	if len(res) == 0 {
		delete(r.users, bare)
	}
}

// Sessions returns the sessions of a bare JID.
func (r *Router) Sessions(bare jid.JID) []Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res := r.users[bare.String()]
	out := make([]Session, 0, len(res))
	for _, s := range res {
		out = append(out, s)
	}
	return out
}

// Session returns the session bound to a full JID, or nil.
func (r *Router) Session(full jid.JID) Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.users[full.Bare().String()][full.Resourcepart()]
}

// All returns every bound session (for shutdown).
func (r *Router) All() []Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Session
	for _, res := range r.users {
		for _, s := range res {
			out = append(out, s)
		}
	}
	return out
}

// Route delivers s, whose 'from' the caller has already stamped, following
// RFC 6120 §10 and RFC 6121 §8. Errors that the rules call for are sent
// back to the sender through the router itself.
func (r *Router) Route(ctx context.Context, s *stanza.Stanza) {
	to := s.To
	if r.blocked(ctx, s) {
		return
	}
	if s.Kind == stanza.Presence && r.hooks.Presence != nil && to.Localpart() != "" && r.hosts[to.Domainpart()] {
		switch s.Type {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
			// RFC 6121 §3.1.3, §4.3.2: handled by the account's server
			// at its bare JID, even when sent to a full JID.
			r.hooks.Presence(ctx, s)
			return
		}
	}
	switch {
	case to.Domainpart() == "":
		// RFC 6120 §10.3.3: no 'to' — handled by the server on behalf of
		// the sender's account.
		r.server.HandleServer(ctx, s)
	case !r.hosts[to.Domainpart()]:
		// No server-to-server yet: the remote domain cannot be reached
		// (RFC 6120 §8.3.3.15). The error comes from the address the
		// stanza was sent to, 'from' and 'to' swapped (§8.3.1), so that
		// a client waiting on it (a room being joined) sees it.
		r.bounce(ctx, s, to, &stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	case to.Localpart() == "":
		r.server.HandleServer(ctx, s)
	case to.Resourcepart() == "":
		r.toBare(ctx, s)
	default:
		r.toFull(ctx, s)
	}
}

// toFull applies RFC 6121 §8.5.3.
func (r *Router) toFull(ctx context.Context, s *stanza.Stanza) {
	if sess := r.Session(s.To); sess != nil {
		sess.Deliver(s.Raw)
		return
	}
	if s.Kind == stanza.IQ && !s.IsRequest() {
		return // a result or error for a session that has gone
	}
	if !r.accountExists(ctx, s.To.Bare()) {
		r.noAccount(ctx, s)
		return
	}
	switch s.Kind {
	case stanza.Message:
		// §8.5.3.2.1: normal and chat are treated as if sent to the bare
		// JID; groupchat gets an error; headline and error are dropped.
		switch s.Type {
		case "", "normal", "chat":
			r.toBare(ctx, s)
		case "groupchat":
			r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
	case stanza.IQ:
		// §8.5.3.2.3.
		r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
	// §8.5.3.2.2: presence to an unavailable resource is dropped.
}

// toBare applies RFC 6121 §8.5.2 for an existing or unknown account.
func (r *Router) toBare(ctx context.Context, s *stanza.Stanza) {
	if s.Kind == stanza.IQ {
		// §8.5.2.1.3 / RFC 6120 §10.5.3.1: the server answers for the
		// account.
		r.server.HandleServer(ctx, s)
		return
	}
	sessions := r.Sessions(s.To.Bare())
	if len(sessions) == 0 && !r.accountExists(ctx, s.To.Bare()) {
		r.noAccount(ctx, s)
		return
	}
	switch s.Kind {
	case stanza.Presence:
		// §8.5.2.1.2 / §8.5.2.2.2: directed presence goes to every
		// available resource (subscriptions: RFC 6121 §3, not yet).
		for _, sess := range sessions {
			if ok, _ := sess.Available(); ok {
				sess.Deliver(s.Raw)
			}
		}
	case stanza.Message:
		r.messageToBare(ctx, s, sessions)
	}
}

// messageToBare applies RFC 6121 §8.5.2.1.1 and §8.5.2.2.1.
func (r *Router) messageToBare(ctx context.Context, s *stanza.Stanza, sessions []Session) {
	if s.Type == "error" {
		return
	}
	if s.Type == "groupchat" {
		r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	// Resources with non-negative priority; chat and normal go to those
	// with the highest priority, headline to all of them.
	best := -1
	var targets []Session
	for _, sess := range sessions {
		ok, prio := sess.Available()
		if !ok || prio < 0 {
			continue
		}
		switch {
		case s.Type == "headline":
			targets = append(targets, sess)
		case prio > best:
			best = prio
			targets = append(targets[:0], sess)
		case prio == best:
			targets = append(targets, sess)
		}
	}
	if len(targets) == 0 {
		// §8.5.2.2.1: no available resource. Chat and normal messages are
		// stored offline, or refused where there is no offline storage;
		// headlines are dropped.
		if s.Type == "headline" {
			return
		}
		e := &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		if r.hooks.Offline != nil {
			e = r.hooks.Offline(ctx, s)
		}
		if e != nil {
			r.bounce(ctx, s, s.To, e)
		}
		return
	}
	for _, sess := range targets {
		sess.Deliver(s.Raw)
	}
}

// blocked applies XEP-0191 §3.3: a stanza from a local account to a JID
// it blocks is refused with <not-acceptable/> and the blocking error
// (presence and errors are dropped); a stanza to a local account from a
// JID it blocks is dropped, or refused with <service-unavailable/> if it
// is a chat or normal message or an IQ request, as if the account did not
// exist.
func (r *Router) blocked(ctx context.Context, s *stanza.Stanza) bool {
	if r.hooks.Blocked == nil {
		return false
	}
	from, to := s.From, s.To
	if from.Localpart() != "" && r.hosts[from.Domainpart()] && to.Domainpart() != "" && r.hooks.Blocked(ctx, from.Bare(), to) {
		if s.Kind != stanza.Presence {
			r.bounce(ctx, s, to, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, App: blockedError})
		}
		return true
	}
	if to.Localpart() != "" && r.hosts[to.Domainpart()] && from.Domainpart() != "" && r.hooks.Blocked(ctx, to.Bare(), from) {
		chat := s.Kind == stanza.Message && (s.Type == "" || s.Type == "normal" || s.Type == "chat")
		if chat || s.IsRequest() {
			r.bounce(ctx, s, to, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return true
	}
	return false
}

// blockedError is XEP-0191 §3.5's application condition.
var blockedError = []byte(`<blocked xmlns='urn:xmpp:blocking:errors'/>`)

// noAccount applies RFC 6121 §8.5.1: IQs and messages (but not errors)
// get service-unavailable; presence is silently dropped.
func (r *Router) noAccount(ctx context.Context, s *stanza.Stanza) {
	if s.Kind == stanza.Presence || s.IsError() || (s.Kind == stanza.IQ && !s.IsRequest()) {
		return
	}
	if s.Kind == stanza.Message && s.Type == "headline" {
		return
	}
	r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
}

// bounce sends an error reply for s back to its sender, unless s is itself
// an error (RFC 6120 §8.3.1: never answer an error with an error).
func (r *Router) bounce(ctx context.Context, s *stanza.Stanza, from jid.JID, e *stanza.Error) {
	if s.IsError() || (s.Kind == stanza.IQ && !s.IsRequest()) {
		return
	}
	r.Reply(ctx, s, stanza.ErrorReply(s, from, e))
}

// Reply delivers raw to the sender of s, which is a local full JID.
func (r *Router) Reply(_ context.Context, s *stanza.Stanza, raw []byte) {
	if sess := r.Session(s.From); sess != nil {
		sess.Deliver(raw)
	}
}

// DeliverAvailable hands raw to every available resource of bare (RFC 6121
// §4.2.2, §3.1.3: presence and subscription requests for an account go to
// its available resources). It reports how many got it.
func (r *Router) DeliverAvailable(bare jid.JID, raw []byte) int {
	n := 0
	for _, sess := range r.Sessions(bare) {
		if ok, _ := sess.Available(); ok && sess.Deliver(raw) {
			n++
		}
	}
	return n
}

// DeliverTo hands raw to the session bound to full, if any.
func (r *Router) DeliverTo(full jid.JID, raw []byte) bool {
	if sess := r.Session(full); sess != nil {
		return sess.Deliver(raw)
	}
	return false
}

func (r *Router) accountExists(ctx context.Context, bare jid.JID) bool {
	return r.exists != nil && r.exists(ctx, bare)
}
