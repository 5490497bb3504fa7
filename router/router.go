// Package router is the server's address space (RFC 6120 §10, RFC 6121
// §8): one Route decides by a stanza's 'to' whether it goes to a local
// session, to the server or on an account's behalf to the IQ dispatcher,
// to a service of the server (a subdomain, or a component), or to another
// server (federation). It keeps the session directory and applies the
// delivery rules; the IM modules take part through its events (Routing,
// AccountPresence, NoResource, Delivered). Delivering means handing the
// bytes to the recipient session's bounded outbound queue: the router
// never writes to a socket and never waits for a slow recipient. Router is
// the interface; Local is the implementation for one process.
package router

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/event"
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
	// SetAvailable records what the session's last broadcast presence
	// said (the presence module calls it): available or not, and with
	// which priority.
	SetAvailable(ok bool, priority int)
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

// Service handles every stanza addressed to a domain it serves: a service
// of this server on a subdomain (multi-user chat, file upload, a pubsub
// service) or a component (XEP-0114). It answers requests itself; what it
// leaves unanswered is dropped.
type Service interface {
	HandleService(ctx context.Context, s *stanza.Stanza)
}

// Remote takes stanzas for domains this server does not serve
// (federation, RFC 6120 §10.4). Without one, they bounce with
// remote-server-not-found.
type Remote interface {
	RouteRemote(ctx context.Context, s *stanza.Stanza)
}

// Routing is fired (event.Fire) for every stanza the router is about to
// deliver, whatever its origin, before any delivery rule applies. The
// event is reused: a handler must not keep it. A handler that stops it
// has dealt with it: answered the sender or dropped it (XEP-0191 blocking
// does). A handler may replace Stanza by a stanza with the same addresses
// (message carbons remove <private/>, XEP-0280 §9), and set NoCopy on a
// message that must not be copied to the account's other resources, which
// Delivered then carries. When Quiet, the stanza is not being sent: the
// firer only asks whether it would be stopped (an offline message stored
// before its sender was blocked), and nothing may be answered.
type Routing struct {
	Stanza *stanza.Stanza
	Quiet  bool
	NoCopy bool
}

// AccountPresence is fired for presence of the subscription types
// (subscribe, subscribed, unsubscribe, unsubscribed) and probes addressed
// to an account of a local domain, bare or full JID, whether or not the
// account exists: the roster (RFC 6121 §3) and presence (§4.3) modules
// handle them on the account's behalf. If no handler stops it, it is
// dropped.
type AccountPresence struct {
	Stanza *stanza.Stanza
}

// NoResource is fired for a chat or normal message to an existing local
// account that has no available resource with non-negative priority
// (RFC 6121 §8.5.2.2.1, §8.5.3.2.1). Err is what bounces to the sender
// after the handlers: service-unavailable unless one (offline storage,
// XEP-0160) stores the message and sets it to nil, or to its own error.
type NoResource struct {
	Stanza *stanza.Stanza
	Err    *stanza.Error
}

// Delivered is fired once a message for a local account has been handed
// to the sessions the delivery rules chose (RFC 6121 §8.5): Sessions, as
// addressed to a full JID or to the account's bare JID; none when offline
// storage took it. It is not fired for a message refused or dropped. The
// event is reused, as Routing. Message carbons copy the message to the
// account's other resources (XEP-0280 §6), unless NoCopy.
type Delivered struct {
	Stanza   *stanza.Stanza
	Sessions []Session
	NoCopy   bool

	one [1]Session // Sessions of a message to a full JID
}

// Router is the server's address space as the rest of the server sees
// it: the session directory and the delivery rules. Local is the
// implementation for one process; a cluster one can replace it.
type Router interface {
	// Route delivers s, its 'from' stamped, by its 'to' address.
	Route(ctx context.Context, s *stanza.Stanza)
	// Reply sends raw, an answer to s, to the sender of s.
	Reply(ctx context.Context, s *stanza.Stanza, raw []byte)
	// Bounce answers s with the error e, from the address s was sent
	// to, unless s is an error or an IQ result.
	Bounce(ctx context.Context, s *stanza.Stanza, e *stanza.Error)
	// Undelivered takes back s, a stanza a session was given and never
	// acknowledged before it ended (stream management, XEP-0198 §5):
	// a chat or normal message goes to NoResource (offline storage) or
	// bounces, a request is answered service-unavailable, the rest is
	// dropped.
	Undelivered(ctx context.Context, s *stanza.Stanza)
	// DeliverTo sends raw, a stanza the server built, to full.
	DeliverTo(full jid.JID, raw []byte) bool
	// DeliverAvailable hands raw to every available resource of bare.
	DeliverAvailable(bare jid.JID, raw []byte) int
	// Sessions returns the sessions of an account; Session the one bound
	// to a full JID, or nil.
	Sessions(bare jid.JID) []Session
	Session(full jid.JID) Session
	// HostSessions returns every session bound to an account of host,
	// sorted by full JID: who is online (XEP-0133 §4.20).
	HostSessions(host string) []Session
	// Bind and Unbind add and remove a session (RFC 6120 §7).
	Bind(s Session, max int) error
	Unbind(s Session)
	// IsLocal reports whether domain is one of the hosts served; Serves
	// whether it is a host or a service's domain (AddService).
	IsLocal(domain string) bool
	Serves(domain string) bool
	// AddService makes s handle every stanza for domain; SetRemote sets
	// what takes stanzas for other servers.
	AddService(domain string, s Service)
	SetRemote(f Remote)
}

// Local is the Router of one process: it delivers stanzas between the
// sessions of the local hosts, and to the services and remote domains it
// knows.
type Local struct {
	hosts  map[string]bool
	exists AccountExists
	server Server
	bus    *event.Bus

	mu sync.RWMutex // guards users, services and remote
	// users maps a bare JID string to its sessions by resourcepart.
	users    map[string]map[string]Session
	services map[string]Service
	remote   Remote
}

// New returns the Local router for the given local domains; bus carries its
// events (nil: none).
func New(hosts []string, exists AccountExists, server Server, bus *event.Bus) *Local {
	h := make(map[string]bool, len(hosts))
	for _, d := range hosts {
		h[d] = true
	}
	return &Local{hosts: h, exists: exists, server: server, bus: bus,
		users: make(map[string]map[string]Session), services: make(map[string]Service)}
}

// AddService makes s handle every stanza addressed to domain (a service
// subdomain or a component).
func (r *Local) AddService(domain string, s Service) {
	r.mu.Lock()
	r.services[domain] = s
	r.mu.Unlock()
}

// SetRemote makes f take stanzas for remote domains (federation).
func (r *Local) SetRemote(f Remote) {
	r.mu.Lock()
	r.remote = f
	r.mu.Unlock()
}

// IsLocal reports whether domain is served here.
func (r *Local) IsLocal(domain string) bool { return r.hosts[domain] }

// Serves reports whether domain is a host or a service's domain.
func (r *Local) Serves(domain string) bool {
	if r.hosts[domain] {
		return true
	}
	r.mu.RLock()
	_, ok := r.services[domain]
	r.mu.RUnlock()
	return ok
}

// Services returns the domains of the services added (AddService),
// sorted: what the hosts' certificates must cover besides the hosts.
func (r *Local) Services() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.services))
}

// ErrTooManySessions is returned by Bind when the account has max sessions.
var ErrTooManySessions = &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many sessions for this account"}

// Bind registers s under its full JID. A session already bound to the same
// full JID is replaced (it receives <conflict/>). When the account already
// has max sessions (and none is replaced), ErrTooManySessions is returned.
func (r *Local) Bind(s Session, max int) error {
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
func (r *Local) Unbind(s Session) {
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
func (r *Local) Sessions(bare jid.JID) []Session {
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
func (r *Local) Session(full jid.JID) Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.users[full.Bare().String()][full.Resourcepart()]
}

// HostSessions returns the sessions of host's accounts, sorted by full
// JID.
func (r *Local) HostSessions(host string) []Session {
	r.mu.RLock()
	var out []Session
	for _, res := range r.users {
		for _, s := range res {
			if s.JID().Domainpart() == host {
				out = append(out, s)
			}
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Session) int { return strings.Compare(a.JID().String(), b.JID().String()) })
	return out
}

// Route delivers s, whose 'from' the caller has already stamped, by its
// 'to' address (RFC 6120 §10, RFC 6121 §8): no 'to' or a local domain →
// the server (the IQ dispatcher, on the account's behalf for an account's
// bare JID); a local account → its sessions by the delivery rules, or
// offline storage; a service's domain → that service; any other domain →
// the remote handler (federation). Every answer the rules call for, and
// every bounce, goes back through Route. The Routing event comes first.
func (r *Local) Route(ctx context.Context, s *stanza.Stanza) {
	ev := routingPool.Get().(*Routing)
	*ev = Routing{Stanza: s}
	stopped := event.Fire(ctx, r.bus, ev)
	s, noCopy := ev.Stanza, ev.NoCopy
	*ev = Routing{}
	routingPool.Put(ev)
	if stopped {
		return
	}
	to := s.To
	if s.Kind == stanza.Presence && to.Localpart() != "" && r.hosts[to.Domainpart()] {
		switch s.Type {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
			// RFC 6121 §3.1.3, §4.3.2: handled by the account's server
			// at its bare JID, even when sent to a full JID.
			event.Fire(ctx, r.bus, &AccountPresence{Stanza: s})
			return
		}
	}
	switch {
	case to.Domainpart() == "":
		// RFC 6120 §10.3.3: no 'to' — handled by the server on behalf of
		// the sender's account.
		r.server.HandleServer(ctx, s)
	case !r.hosts[to.Domainpart()]:
		r.routeOut(ctx, s)
	case to.Localpart() == "":
		r.server.HandleServer(ctx, s)
	case to.Resourcepart() == "":
		r.toBare(ctx, s, noCopy)
	default:
		r.toFull(ctx, s, noCopy)
	}
}

// routeOut hands s, addressed to a domain that is not a host, to the
// service of that domain or to the remote handler.
func (r *Local) routeOut(ctx context.Context, s *stanza.Stanza) {
	r.mu.RLock()
	svc, remote := r.services[s.To.Domainpart()], r.remote
	r.mu.RUnlock()
	if svc != nil {
		svc.HandleService(ctx, s)
		return
	}
	if remote != nil {
		remote.RouteRemote(ctx, s)
		return
	}
	// No server-to-server: the remote domain cannot be reached
	// (RFC 6120 §8.3.3.15). The error comes from the address the
	// stanza was sent to, 'from' and 'to' swapped (§8.3.1), so that
	// a client waiting on it (a room being joined) sees it.
	r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
}

// toFull applies RFC 6121 §8.5.3.
func (r *Local) toFull(ctx context.Context, s *stanza.Stanza, noCopy bool) {
	if sess := r.Session(s.To); sess != nil {
		if sess.Deliver(s.Raw) && s.Kind == stanza.Message {
			ev := deliveredPool.Get().(*Delivered)
			ev.one[0] = sess
			r.delivered(ctx, ev, s, ev.one[:], noCopy)
		}
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
			r.toBare(ctx, s, noCopy)
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
func (r *Local) toBare(ctx context.Context, s *stanza.Stanza, noCopy bool) {
	if s.Kind == stanza.IQ {
		// §8.5.2.1.3 / RFC 6120 §10.5.3.1: the server answers for the
		// account.
		r.server.HandleServer(ctx, s)
		return
	}
	sessions := r.Sessions(s.To.Bare())
	if s.Kind == stanza.Presence {
		// §8.5.2.1.2: presence goes to every available resource; with
		// none (§8.5.2.2.2), or no such account (§8.5.1), it is dropped,
		// so storage is not asked whether the account exists: a presence
		// broadcast reaches many contacts who are offline.
		for _, sess := range sessions {
			if ok, _ := sess.Available(); ok {
				sess.Deliver(s.Raw)
			}
		}
		return
	}
	if len(sessions) == 0 && !r.accountExists(ctx, s.To.Bare()) {
		r.noAccount(ctx, s)
		return
	}
	if s.Kind == stanza.Message {
		r.messageToBare(ctx, s, sessions, noCopy)
	}
}

// messageToBare applies RFC 6121 §8.5.2.1.1 and §8.5.2.2.1.
func (r *Local) messageToBare(ctx context.Context, s *stanza.Stanza, sessions []Session, noCopy bool) {
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
		if !r.noResource(ctx, s) {
			return
		}
		r.delivered(ctx, deliveredPool.Get().(*Delivered), s, nil, noCopy)
		return
	}
	got := targets[:0]
	for _, sess := range targets {
		if sess.Deliver(s.Raw) {
			got = append(got, sess)
		}
	}
	r.delivered(ctx, deliveredPool.Get().(*Delivered), s, got, noCopy)
}

// Undelivered implements Router. A message goes to offline storage even
// when the account has other resources online: they may have had a carbon
// of it already, and giving it to them again would duplicate it.
func (r *Local) Undelivered(ctx context.Context, s *stanza.Stanza) {
	switch {
	case s.IsError():
	case s.Kind == stanza.IQ && s.IsRequest():
		r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	case s.Kind == stanza.Message && (s.Type == "chat" || s.Type == "normal" || s.Type == ""):
		r.noResource(ctx, s)
	}
}

// noResource fires NoResource for a message no resource takes and
// bounces it with the error the handlers leave; it reports whether a
// handler (offline storage) kept it.
func (r *Local) noResource(ctx context.Context, s *stanza.Stanza) bool {
	ev := &NoResource{Stanza: s, Err: &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}}
	event.Fire(ctx, r.bus, ev)
	if ev.Err != nil {
		r.bounce(ctx, s, s.To, ev.Err)
		return false
	}
	return true
}

// noAccount applies RFC 6121 §8.5.1: IQs and messages (but not errors)
// get service-unavailable; presence is silently dropped.
func (r *Local) noAccount(ctx context.Context, s *stanza.Stanza) {
	if s.Kind == stanza.Presence || s.IsError() || (s.Kind == stanza.IQ && !s.IsRequest()) {
		return
	}
	if s.Kind == stanza.Message && s.Type == "headline" {
		return
	}
	r.bounce(ctx, s, s.To, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
}

// bounce sends an error reply for s, from the address from, back to its
// sender through Route, unless s is itself an error or an IQ result
// (RFC 6120 §8.3.1: never answer an error with an error).
func (r *Local) bounce(ctx context.Context, s *stanza.Stanza, from jid.JID, e *stanza.Error) {
	if s.IsError() || (s.Kind == stanza.IQ && !s.IsRequest()) {
		return
	}
	r.Reply(ctx, s, stanza.ErrorReply(s, from, e))
}

// Reply routes raw, an answer to s, to the sender of s.
func (r *Local) Reply(ctx context.Context, s *stanza.Stanza, raw []byte) {
	r.DeliverTo(s.From, raw)
}

// Bounce answers s with the error e from the address s was sent to,
// through Route, unless s is an error or an IQ result (RFC 6120 §8.3.1).
func (r *Local) Bounce(ctx context.Context, s *stanza.Stanza, e *stanza.Error) {
	r.bounce(ctx, s, s.To, e)
}

// delivered fires ev, a Delivered from the pool, for the message s that
// sessions got, and puts it back.
func (r *Local) delivered(ctx context.Context, ev *Delivered, s *stanza.Stanza, sessions []Session, noCopy bool) {
	ev.Stanza, ev.Sessions, ev.NoCopy = s, sessions, noCopy
	event.Fire(ctx, r.bus, ev)
	*ev = Delivered{}
	deliveredPool.Put(ev)
}

// The events fired for every stanza are reused, not allocated: their
// handlers must not keep them after they return.
var (
	routingPool   = sync.Pool{New: func() any { return new(Routing) }}
	deliveredPool = sync.Pool{New: func() any { return new(Delivered) }}
)

// DeliverAvailable hands raw to every available resource of bare (RFC 6121
// §4.2.2, §3.1.3: presence and subscription requests for an account go to
// its available resources). It reports how many got it.
func (r *Local) DeliverAvailable(bare jid.JID, raw []byte) int {
	n := 0
	for _, sess := range r.Sessions(bare) {
		if ok, _ := sess.Available(); ok && sess.Deliver(raw) {
			n++
		}
	}
	return n
}

// DeliverTo hands raw, a stanza the server sends (an IQ answer, a roster
// push), to full: the session bound to it, if any, directly; any other
// address through Route. It reports whether a local session took it.
func (r *Local) DeliverTo(full jid.JID, raw []byte) bool {
	if sess := r.Session(full); sess != nil {
		return sess.Deliver(raw)
	}
	if full.Localpart() != "" && r.hosts[full.Domainpart()] {
		return false // a local session that has gone
	}
	// Another server's or a service's: an answer the server built goes
	// out as it is, as it would to a local session, without the checks
	// of Routing (a blocked sender still gets the error, XEP-0191 §3.3).
	if st, err := stanza.ParseElement(raw); err == nil {
		if full.Domainpart() == "" || r.hosts[full.Domainpart()] {
			r.Route(context.Background(), st)
		} else {
			r.routeOut(context.Background(), st)
		}
	}
	return false
}

func (r *Local) accountExists(ctx context.Context, bare jid.JID) bool {
	return r.exists != nil && r.exists(ctx, bare)
}

var _ Router = (*Local)(nil)
