// Package presence owns what a session has told the world about its
// availability (RFC 6121 §4): initial presence with its probes and
// broadcast, later broadcasts, unavailable presence (also when a session
// ends without saying so), directed presence and its cleanup, and the
// answers to presence probes (a local account's directly). It parses a
// session's availability and priority and records them on the session,
// where the router reads them for delivery. Subscription stanzas go to
// the roster, which it depends on; the roster tells it about subscription
// changes only through its events (roster.PresenceGranted, Revoked).
package presence

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Available is fired (on Service.Bus) after a session's initial presence,
// once probes and broadcast are out, with its priority, and again when an
// available session's priority goes from negative to zero or more:
// offline messages are delivered then (XEP-0160 §2).
type Available struct {
	Session  router.Session
	Priority int
}

// Unavailable is fired when an available session becomes unavailable:
// it sent unavailable presence, or it ended while available.
type Unavailable struct {
	Session router.Session
}

// AccountUnavailable is fired when an account's last available resource
// becomes unavailable, with the status text of its unavailable presence
// (last activity records it, XEP-0012 §4).
type AccountUnavailable struct {
	User   jid.JID
	Status string
}

// Service is the presence module. Set its fields, then Register it.
type Service struct {
	Router router.Router
	Roster *roster.Service
	Bus    *event.Bus
	// Exists reports whether a local account exists.
	Exists func(ctx context.Context, bare jid.JID) bool
	Log    *slog.Logger

	mu       sync.Mutex                     // guards sessions
	sessions map[string]map[string]*session // bare JID → resource → state
}

// Register hooks the service to the events it handles: presence sent by
// clients (c2s.ClientStanza), the end of sessions (c2s.SessionEnded),
// probes addressed to local accounts (router.AccountPresence), and the
// roster's subscription changes (roster.PresenceGranted and
// PresenceRevoked).
func (p *Service) Register() {
	event.On(p.Bus, event.Normal, "presence", func(ctx context.Context, e *c2s.ClientStanza) bool {
		if e.Stanza.Kind != stanza.Presence {
			return false
		}
		p.FromClient(ctx, e.Session, e.Stanza)
		return true
	})
	// Before the modules forget the session, so that its unavailable
	// presence still reaches whom it should.
	event.On(p.Bus, event.First, "presence", func(ctx context.Context, e *c2s.SessionEnded) bool {
		p.SessionEnded(ctx, e.Session)
		return false
	})
	event.On(p.Bus, event.Normal, "presence", func(ctx context.Context, e *router.AccountPresence) bool {
		if e.Stanza.Type != "probe" {
			return false
		}
		p.probe(ctx, e.Stanza)
		return true
	})
	event.On(p.Bus, event.Normal, "presence", func(ctx context.Context, e *roster.PresenceGranted) bool {
		p.SendCurrent(ctx, e.User, e.Contact)
		return false
	})
	event.On(p.Bus, event.Normal, "presence", func(ctx context.Context, e *roster.PresenceRevoked) bool {
		p.SendUnavailable(ctx, e.User, e.Contact)
		return false
	})
}

// session is what presence keeps about one session.
type session struct {
	sess     router.Session
	last     *stanza.Stanza     // last available broadcast presence (from the full JID, no 'to'); nil when unavailable
	priority int                // of last
	directed map[string]jid.JID // where directed presence went and must be cleaned up (§4.6.3)
}

func (p *Service) state(sess router.Session) *session {
	full := sess.JID()
	bare, res := full.Bare().String(), full.Resourcepart()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions == nil {
		p.sessions = make(map[string]map[string]*session)
	}
	m := p.sessions[bare]
	if m == nil {
		m = make(map[string]*session)
		p.sessions[bare] = m
	}
	st := m[res]
	if st == nil || st.sess != sess {
		st = &session{sess: sess}
		m[res] = st
	}
	return st
}

// available returns the last presence of each available resource of user.
func (p *Service) available(user jid.JID) []*stanza.Stanza {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*stanza.Stanza
	for _, st := range p.sessions[user.String()] {
		if st.last != nil {
			out = append(out, st.last)
		}
	}
	return out
}

// FromClient handles a presence stanza a session sent, its 'from' already
// stamped with the session's full JID. The session has already recorded
// its own availability and priority.
func (p *Service) FromClient(ctx context.Context, sess router.Session, st *stanza.Stanza) {
	switch {
	case st.To.Domainpart() == "" && (st.Type == "" || st.Type == "unavailable"):
		// §4.2, §4.5: what the router reads for delivery.
		if st.Type == "" {
			sess.SetAvailable(true, priority(st))
		} else {
			_, prio := sess.Available()
			sess.SetAvailable(false, prio)
		}
		p.broadcast(ctx, sess, st)
	case st.To.Domainpart() == "":
		// Subscription types and probes need a 'to' (RFC 6121 §3, §4.3).
		if st.Type != "error" {
			sess.Deliver(stanza.ErrorReply(st, jid.JID{}, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}))
		}
	case st.Type == "subscribe" || st.Type == "subscribed" || st.Type == "unsubscribe" || st.Type == "unsubscribed":
		p.Roster.Outbound(ctx, st)
	case st.Type == "probe":
		// Clients should not probe (§4.3), but the answer is the same as
		// for a server's probe: from the user's bare JID.
		p.sendProbe(ctx, st.WithAddresses(st.From.Bare(), st.To.Bare()))
	case st.Type == "" || st.Type == "unavailable":
		p.directed(ctx, sess, st)
	case st.Type == "error":
		p.Router.Route(ctx, st)
	default:
		sess.Deliver(stanza.ErrorReply(st, st.To, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "unknown presence type"}))
	}
}

// broadcast handles presence with no 'to' (§4.2 initial, §4.4 update,
// §4.5 unavailable).
func (p *Service) broadcast(ctx context.Context, sess router.Session, st *stanza.Stanza) {
	full := sess.JID()
	user := full.Bare()
	s := p.state(sess)
	p.mu.Lock()
	initial := s.last == nil && st.Type == ""
	wasAvailable := s.last != nil
	var directed []jid.JID
	var siblings []*stanza.Stanza
	// The user's own resources that get this presence: the available
	// ones as recorded here, under the same lock as the sibling presences
	// a new resource is shown, so that each resource sees another's
	// presence once, not also from a broadcast that reaches it late.
	own := []router.Session{sess}
	for _, o := range p.sessions[user.String()] {
		if o.sess != sess && o.last != nil {
			own = append(own, o.sess)
		}
	}
	_, prio := sess.Available()
	nowNonNegative := wasAvailable && s.priority < 0 && prio >= 0 && st.Type == ""
	s.priority = prio
	if st.Type == "" {
		s.last = st
		if initial {
			// Taken with the new presence recorded, so that a sibling
			// becoming available meanwhile is seen once: here or from its
			// own broadcast.
			siblings = p.siblings(user, full)
		}
	} else {
		s.last = nil
		for _, j := range s.directed {
			directed = append(directed, j)
		}
		s.directed = nil
	}
	p.mu.Unlock()

	subscribers := p.Roster.Contacts(ctx, user, roster.SeesPresence)
	for _, c := range subscribers {
		p.Router.Route(ctx, st.WithAddresses(full, c))
	}
	// §4.6.3: unavailable also goes where directed presence went.
	for _, j := range directed {
		if !containsBare(subscribers, j) {
			p.Router.Route(ctx, st.WithAddresses(full, j))
		}
	}
	// §4.2.2, §4.4.2, §4.5.2: and to each of the user's own available
	// resources, the sender included.
	for _, other := range own {
		other.Deliver(st.WithAddresses(full, other.JID()).Raw)
	}
	if initial {
		p.initial(ctx, sess, user, siblings)
		return
	}
	if nowNonNegative {
		event.Fire(ctx, p.Bus, &Available{Session: sess, Priority: prio})
	}
	if st.Type == "unavailable" && wasAvailable {
		event.Fire(ctx, p.Bus, &Unavailable{Session: sess})
		if len(p.available(user)) == 0 {
			event.Fire(ctx, p.Bus, &AccountUnavailable{User: user, Status: statusText(st)})
		}
	}
}

// initial does what only initial presence does (§4.2.2): probe the
// contacts the user is subscribed to, show the new resource its siblings'
// presence, and hand it the pending subscription requests and offline
// messages.
func (p *Service) initial(ctx context.Context, sess router.Session, user jid.JID, siblings []*stanza.Stanza) {
	for _, c := range p.Roster.Contacts(ctx, user, roster.ReceivesPresence) {
		p.sendProbe(ctx, stanza.NewPresence(user, c, "probe"))
	}
	full := sess.JID()
	for _, s := range siblings {
		sess.Deliver(s.WithAddresses(s.From, full).Raw)
	}
	p.Roster.DeliverPending(ctx, user, sess.Deliver)
	_, prio := sess.Available()
	event.Fire(ctx, p.Bus, &Available{Session: sess, Priority: prio})
}

// sendProbe sends a probe (§4.3): answered here when it is for a local
// account, routed otherwise.
func (p *Service) sendProbe(ctx context.Context, probe *stanza.Stanza) {
	if p.Router.IsLocal(probe.To.Domainpart()) {
		// As the router would (XEP-0191 blocking included).
		if !event.Fire(ctx, p.Bus, &router.Routing{Stanza: probe}) {
			p.probe(ctx, probe)
		}
		return
	}
	p.Router.Route(ctx, probe)
}

// siblings returns the last presence of user's other available
// resources, in resource order so that what a client sees does not vary.
// p.mu is held.
func (p *Service) siblings(user, full jid.JID) []*stanza.Stanza {
	var out []*stanza.Stanza
	for res, st := range p.sessions[user.String()] {
		if res != full.Resourcepart() && st.last != nil {
			out = append(out, st.last)
		}
	}
	slices.SortFunc(out, func(a, b *stanza.Stanza) int {
		return strings.Compare(a.From.Resourcepart(), b.From.Resourcepart())
	})
	return out
}

// directed handles presence to a specific JID (§4.6): routed as is, and
// remembered, when it is available presence to someone who would not
// otherwise see it, so that it can be withdrawn when the session goes
// unavailable.
func (p *Service) directed(ctx context.Context, sess router.Session, st *stanza.Stanza) {
	user := st.From.Bare()
	to := st.To
	if !to.Bare().Equal(user) {
		s := p.state(sess)
		key := to.String()
		if st.Type == "unavailable" {
			p.mu.Lock()
			delete(s.directed, key)
			p.mu.Unlock()
		} else if sub, err := p.Roster.Subscription(ctx, user, to); err == nil && !roster.SeesPresence(sub) {
			p.mu.Lock()
			if s.directed == nil {
				s.directed = make(map[string]jid.JID)
			}
			s.directed[key] = to
			p.mu.Unlock()
		}
	}
	p.Router.Route(ctx, st)
}

// SessionEnded broadcasts unavailable presence for a session that ended
// while available, or that had sent directed presence (§4.5.2: the server
// acts as if the client had sent it), then forgets the session.
func (p *Service) SessionEnded(ctx context.Context, sess router.Session) {
	full := sess.JID()
	p.mu.Lock()
	m := p.sessions[full.Bare().String()]
	s := m[full.Resourcepart()]
	p.mu.Unlock()
	if s != nil && s.sess == sess && (s.last != nil || len(s.directed) > 0) {
		p.broadcast(ctx, sess, stanza.NewPresence(full, jid.JID{}, "unavailable"))
	}
	p.mu.Lock()
	if m := p.sessions[full.Bare().String()]; m != nil && m[full.Resourcepart()] == s {
		delete(m, full.Resourcepart())
		if len(m) == 0 {
			delete(p.sessions, full.Bare().String())
		}
	}
	p.mu.Unlock()
}

// probe answers a presence probe to a local account (§4.3.2): with the
// last presence of each available resource if the prober may see it,
// unavailable presence if none is available, and "unsubscribed" if the
// prober has no subscription (also for an account that does not exist,
// which RFC 6121 §8.5.1 allows).
func (p *Service) probe(ctx context.Context, st *stanza.Stanza) {
	user, prober := st.To.Bare(), st.From
	if prober.Domainpart() == "" || prober.Bare().Equal(user) {
		return
	}
	sub := p.subscriptionOf(ctx, user, prober)
	if !roster.SeesPresence(sub) {
		p.Router.Route(ctx, stanza.NewPresence(user, prober.Bare(), "unsubscribed"))
		return
	}
	last := p.available(user)
	if len(last) == 0 {
		p.Router.Route(ctx, stanza.NewPresence(user, prober, "unavailable"))
		return
	}
	for _, s := range last {
		p.Router.Route(ctx, s.WithAddresses(s.From, prober))
	}
}

func (p *Service) subscriptionOf(ctx context.Context, user, contact jid.JID) storage.Subscription {
	if !p.Exists(ctx, user) {
		return storage.SubNone
	}
	sub, err := p.Roster.Subscription(ctx, user, contact)
	if err != nil {
		p.Log.Error("reading roster failed", "jid", user.String(), "err", err)
		return storage.SubNone
	}
	return sub
}

// SendCurrent sends the last presence of each of user's available
// resources to contact (RFC 6121 §3.1.5: contact may now see it).
func (p *Service) SendCurrent(ctx context.Context, user, contact jid.JID) {
	for _, s := range p.available(user) {
		p.Router.Route(ctx, s.WithAddresses(s.From, contact))
	}
}

// SendUnavailable sends unavailable presence from each of user's
// available resources to contact (§3.2.2, §3.3.3: contact may no longer
// see it).
func (p *Service) SendUnavailable(ctx context.Context, user, contact jid.JID) {
	for _, s := range p.available(user) {
		p.Router.Route(ctx, stanza.NewPresence(s.From, contact, "unavailable"))
	}
}

// priority reads <priority/> (§4.7.2.3): an integer from -128 to 127;
// anything else, or none, counts as 0.
func priority(st *stanza.Stanza) int {
	v, ok := childText(st, "priority")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < -128 || n > 127 {
		return 0
	}
	return n
}

// statusText is the text of a presence's <status/>, if any.
func statusText(st *stanza.Stanza) string {
	v, _ := childText(st, "status")
	return v
}

// childText returns the text of the first child of st named local in
// jabber:client, declared or the stream's default namespace; ok is false
// without one, or when its text cannot be read.
func childText(st *stanza.Stanza, local string) (text string, ok bool) {
	for c := range stanza.Children(st.Raw) {
		if string(c.Local) == local && (len(c.Space) == 0 || string(c.Space) == "jabber:client") {
			return text, stanza.Decode(c.Raw, &text) == nil
		}
	}
	return "", false
}

func containsBare(list []jid.JID, j jid.JID) bool {
	for _, c := range list {
		if c.Equal(j.Bare()) {
			return true
		}
	}
	return false
}
