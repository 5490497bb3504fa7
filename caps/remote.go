package caps

import (
	"container/list"
	"context"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// DefaultMaxRemote bounds the remote entities tracked at once.
const DefaultMaxRemote = 10000

// Remote is an entity on another server (a contact reached over
// federation) whose broadcast presence reached local accounts: the
// tracker keeps its capabilities as a session's, keyed by its full JID.
// It is a router.Session whose Deliver routes the stanza (to the remote
// server, by s2s), so that the tracker's queries and personal eventing's
// notifications reach it like a local session's. It is always available:
// its unavailable presence forgets it.
type Remote struct {
	t     *Tracker
	full  jid.JID
	local string // the local domain its presence reached first: queries come from it
	// el (its element of t.remoteLRU) and locals (the local accounts,
	// bare JIDs, its presence reached) are guarded by t.mu.
	el     *list.Element
	locals map[string]jid.JID
}

// JID implements router.Session: the remote full JID.
func (r *Remote) JID() jid.JID { return r.full }

// Deliver implements router.Session: raw, whose 'from' is set, is routed.
func (r *Remote) Deliver(raw []byte) bool {
	st, err := stanza.ParseElement(raw)
	if err != nil {
		return false
	}
	r.t.Router.Route(context.Background(), st)
	return true
}

// Available implements router.Session: a tracked remote entity is.
func (r *Remote) Available() (bool, int) { return true, 0 }

// SetAvailable implements router.Session; it does nothing.
func (r *Remote) SetAvailable(bool, int) {}

// Replace implements router.Session; it does nothing.
func (r *Remote) Replace() {}

// Locals returns the local accounts (bare JIDs) its presence reached.
func (r *Remote) Locals() []jid.JID {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	out := make([]jid.JID, 0, len(r.locals))
	for _, j := range r.locals {
		out = append(out, j)
	}
	return out
}

// Remotes returns the remote entities of bare (another server's user)
// being tracked: those whose available presence reached a local account
// and has not been followed by unavailable presence.
func (t *Tracker) Remotes(bare jid.JID) []*Remote {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.remotes[bare.Bare().String()]
	out := make([]*Remote, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

// RemoteCount returns how many remote entities are tracked.
func (t *Tracker) RemoteCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remoteLRU.Len()
}

// isRemote reports whether domain is another server's: neither a host
// nor a service of this one.
func (t *Tracker) isRemote(domain string) bool {
	return domain != "" && !t.Router.IsLocal(domain) && !t.Router.Serves(domain)
}

// routing looks at stanzas from other servers: broadcast presence to a
// local account (their capabilities, or their leaving) and the answers
// to the queries sent to remote entities, which it stops.
func (t *Tracker) routing(ctx context.Context, e *router.Routing) bool {
	if e.Quiet {
		return false
	}
	st := e.Stanza
	switch st.Kind {
	case stanza.Presence:
		if st.Type != "" && st.Type != "unavailable" {
			return false
		}
		if st.From.Resourcepart() == "" || st.To.Localpart() == "" || !t.Router.IsLocal(st.To.Domainpart()) ||
			!t.isRemote(st.From.Domainpart()) {
			return false
		}
		if st.Type == "unavailable" {
			t.remoteGone(ctx, st.From)
		} else {
			t.remotePresence(ctx, st)
		}
	case stanza.IQ:
		if (st.Type == "result" || st.Type == "error") && strings.HasPrefix(st.ID, idPrefix) && t.isRemote(st.From.Domainpart()) {
			t.mu.Lock()
			var target router.Session
			if q := t.byID[st.ID]; q != nil {
				target = q.target
			}
			t.mu.Unlock()
			r, ok := target.(*Remote)
			if !ok || !r.full.Equal(st.From) {
				return false
			}
			return t.answer(ctx, r, st)
		}
	}
	return false
}

// remotePresence records the 'ver' a remote entity announced to a local
// account. An entity whose features are known already, seen by a local
// account for the first time, is announced again (Known, with that
// account in Locals).
func (t *Tracker) remotePresence(ctx context.Context, st *stanza.Stanza) {
	hash, node, ver, ok := capsOf(st)
	if !ok || hash == "" {
		// No capabilities: nothing to know of it. A 'ver' it announced
		// before stays, as for sessions.
		return
	}
	local := st.To.Bare()
	t.mu.Lock()
	var known []Known
	var send []*query
	r := t.remote(st.From, local, &known, &send)
	_, seen := r.locals[local.String()]
	if !seen {
		r.locals[local.String()] = local
	}
	s := t.sessions[r]
	if s != nil && s.ver == ver && s.hash == hash && s.node == node {
		if !seen && s.features != nil {
			known = append(known, Known{Session: r, Features: s.features, Locals: []jid.JID{local}})
		}
		t.mu.Unlock()
		t.after(ctx, known, send)
		return
	}
	if s == nil {
		s = &session{}
		t.sessions[r] = s
	}
	s.hash, s.node, s.ver, s.features = hash, node, ver, nil
	t.resolve(r, s, &known, &send)
	t.mu.Unlock()
	t.after(ctx, known, send)
}

// remote returns the Remote of full, made (and the least recently seen
// one forgotten beyond MaxRemote) if need be, and marks it seen. t.mu is
// held; what forgetting one ends is added to known and send.
func (t *Tracker) remote(full jid.JID, local jid.JID, known *[]Known, send *[]*query) *Remote {
	bare := full.Bare().String()
	if r := t.remotes[bare][full.Resourcepart()]; r != nil {
		t.remoteLRU.MoveToFront(r.el)
		return r
	}
	if t.remotes == nil {
		t.remotes = make(map[string]map[string]*Remote)
	}
	if t.sessions == nil {
		t.sessions = make(map[router.Session]*session)
	}
	r := &Remote{t: t, full: full, local: local.Domainpart(), locals: make(map[string]jid.JID)}
	if t.remotes[bare] == nil {
		t.remotes[bare] = make(map[string]*Remote)
	}
	t.remotes[bare][full.Resourcepart()] = r
	r.el = t.remoteLRU.PushFront(r)
	max := t.MaxRemote
	if max <= 0 {
		max = DefaultMaxRemote
	}
	for t.remoteLRU.Len() > max {
		t.forget(t.remoteLRU.Back().Value.(*Remote), known, send)
	}
	return r
}

// forget drops a remote entity; a query in flight to it is given up at
// once, as for a session that ended. t.mu is held.
func (t *Tracker) forget(r *Remote, known *[]Known, send *[]*query) {
	t.remoteLRU.Remove(r.el)
	bare := r.full.Bare().String()
	delete(t.remotes[bare], r.full.Resourcepart())
	if len(t.remotes[bare]) == 0 {
		delete(t.remotes, bare)
	}
	s := t.sessions[r]
	delete(t.sessions, r)
	if s != nil && s.asked != nil {
		t.finish(s.asked, nil, known, send)
	}
}

// remoteGone forgets a remote entity after its unavailable presence.
func (t *Tracker) remoteGone(ctx context.Context, full jid.JID) {
	t.mu.Lock()
	r := t.remotes[full.Bare().String()][full.Resourcepart()]
	if r == nil {
		t.mu.Unlock()
		return
	}
	var known []Known
	var send []*query
	t.forget(r, &known, &send)
	t.mu.Unlock()
	t.after(ctx, known, send)
}
