// Package blocking implements the Blocking Command (XEP-0191, version 1.3):
// the urn:xmpp:blocking disco feature (§3.1), retrieving the blocklist
// (§3.2), blocking (§3.3) and unblocking JIDs (§3.4) or everyone (§3.5)
// with pushes to the user's resources that asked for the list, and the
// question the router asks of every stanza — is it between an account and
// a JID the account blocks? — answered from memory with the JID matching
// rules of §6. What the router then does with a blocked stanza (§3.3: drop
// or bounce) is the router's.
//
// Choices where the XEP leaves room (Prosody's mod_blocklist and ejabberd's
// mod_blocking are the references):
//   - the commands are for the user's own account only; addressed to the
//     server's domain they get <forbidden/>, type auth (ejabberd's answer
//     to a query about someone else; the roster does the same); another
//     account's bare JID never reaches this module (dispatch answers
//     <service-unavailable/>);
//   - a get of <block/> or <unblock/>, or a set of <blocklist/>:
//     <service-unavailable/> (both references, which only handle the three
//     well-formed requests);
//   - an <item/> whose 'jid' is missing or not a JID: <jid-malformed/>,
//     type modify, and nothing changes (Prosody); §3.3 requires
//     <bad-request/> for a <block/> without items;
//   - pushes are IQ sets with no 'from', like roster pushes (RFC 6121
//     §2.1.6) and Prosody's, carrying the items of the command as
//     prepared JIDs; they follow the result (dispatch's AfterReply);
//   - the server never blocks one of the user's resources from another,
//     whatever the list says (XEP-0191 §5, note);
//   - a storage failure while the router asks is logged and the stanza
//     treated as not blocked: the failure is not remembered, so the next
//     stanza asks storage again, and an outage does not silence everyone.
package blocking

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the XEP-0191 namespace and disco feature.
const NS = "urn:xmpp:blocking"

// DefaultMaxCached is the number of accounts whose blocklist is kept in
// memory when Service.MaxCached is 0.
const DefaultMaxCached = 1 << 16

var (
	errForbidden   = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	errUnavailable = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	errNoItems     = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a block command needs at least one item"}
	errBadRequest  = &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
)

// Service is the blocking module. Set its fields, then Register it.
type Service struct {
	Store storage.Blocklist
	// Sessions returns the sessions of an account, for the pushes.
	Sessions func(bare jid.JID) []router.Session
	// OnBlock runs once for each JID a block command newly adds to user's
	// blocklist, after it is stored and before the block takes effect in
	// Blocked (so that what OnBlock sends to blocked is not itself
	// stopped), and before the command's result. It sends blocked the
	// unavailable presence of user's available resources where blocked
	// may see user's presence (§3.3). blocked is an item as the user
	// wrote it (prepared): a full or bare JID or a domain, which Matches
	// compares with contacts. nil: nothing.
	OnBlock func(ctx context.Context, user, blocked jid.JID)
	// OnUnblock runs once for each JID an unblock command removes from
	// user's blocklist (every JID for "unblock all"), after the result
	// and the pushes, when the block no longer applies. It sends
	// unblocked user's current presence where unblocked may see it
	// (§3.4). nil: nothing.
	OnUnblock func(ctx context.Context, user, unblocked jid.JID)
	// MaxCached bounds how many accounts' blocklists are kept in memory;
	// 0 means DefaultMaxCached. Past it, an arbitrary other account's
	// list is forgotten, to be read again from storage when needed.
	MaxCached int
	Log       *slog.Logger

	// edit serialises the commands that read or change blocklists, so
	// that storage, the cache and the interested resources stay in step.
	edit sync.Mutex

	mu sync.RWMutex // guards the fields below
	// lists caches blocklists by bare JID; a list is never modified once
	// cached, an edit replaces it.
	lists map[string]list
	// gen counts the edits: a list read from storage is cached only if
	// no edit happened while it was being read.
	gen uint64
	// pinned is the account being edited: its cached list stays until
	// the edit replaces it.
	pinned string
	// interested holds the sessions that retrieved the blocklist (§3.2)
	// and so get the pushes: by session, not full JID, so that the end
	// of a session replaced by one with the same resource does not
	// clear its successor's interest.
	interested map[router.Session]bool

	pushes atomic.Uint64 // numbers the pushes' ids
}

// list is one account's blocklist: prepared JID string → JID. A nil list
// is empty.
type list map[string]jid.JID

// Register adds the blocking commands to m.
func (s *Service) Register(m *dispatch.Mux) {
	m.AddFeatures(NS)
	for _, name := range []string{"blocklist", "block", "unblock"} {
		m.Handle(NS, name, s.handle)
	}
}

// Matches reports whether the blocklist item matches addr (§6, as in
// XEP-0016 §2.1): a full JID matches only itself; a bare JID matches
// itself and all its full JIDs; domain/resource matches only itself; a
// domain matches itself and every JID at that domain (not subdomains).
func Matches(item, addr jid.JID) bool {
	return item.Equal(addr) || item.Equal(addr.Bare()) || item.Equal(addr.Domain())
}

// matches applies Matches to each item of l.
func (l list) matches(addr jid.JID) bool {
	if len(l) == 0 {
		return false
	}
	if _, ok := l[addr.String()]; ok {
		return true
	}
	if addr.Localpart() != "" && addr.Resourcepart() != "" {
		if _, ok := l[addr.Bare().String()]; ok {
			return true
		}
	}
	_, ok := l[addr.Domainpart()]
	return ok
}

// Blocked reports whether stanzas between the local account user (a bare
// JID) and other are stopped by user's blocklist. It is asked for every
// routed stanza (router.Routing), so it reads a cached list; only the
// first question about an account reads storage.
func (s *Service) Blocked(ctx context.Context, user, other jid.JID) bool {
	if other.Bare().Equal(user) {
		return false // §5: never between the user's own resources
	}
	l, err := s.list(ctx, user)
	if err != nil {
		s.Log.Error("reading blocklist failed; stanza not blocked", "jid", user.String(), "err", err)
		return false
	}
	return l.matches(other)
}

// SessionEnded forgets that sess asked for the blocklist.
func (s *Service) SessionEnded(sess router.Session) {
	s.mu.Lock()
	delete(s.interested, sess)
	s.mu.Unlock()
}

// list returns user's blocklist, from the cache or else from storage.
func (s *Service) list(ctx context.Context, user jid.JID) (list, error) {
	key := user.String()
	s.mu.RLock()
	l, ok := s.lists[key]
	gen := s.gen
	s.mu.RUnlock()
	if ok {
		return l, nil
	}
	l, err := s.load(ctx, user)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cached, ok := s.lists[key]; ok {
		return cached, nil
	}
	if s.gen == gen {
		s.cache(key, l)
	}
	return l, nil
}

// load reads user's blocklist from storage.
func (s *Service) load(ctx context.Context, user jid.JID) (list, error) {
	items, err := s.Store.BlockedJIDs(ctx, user.Domainpart(), user.Localpart())
	if err != nil || len(items) == 0 {
		return nil, err
	}
	l := make(list, len(items))
	for _, it := range items {
		j, err := jid.Parse(it)
		if err != nil {
			s.Log.Warn("ignoring a stored blocklist item that is not a JID", "jid", user.String(), "item", it, "err", err)
			continue
		}
		l[j.String()] = j
	}
	return l, nil
}

// cache stores l for key, forgetting another account's list if the cache
// is full. s.mu must be held.
func (s *Service) cache(key string, l list) {
	if s.lists == nil {
		s.lists = make(map[string]list)
	}
	limit := s.MaxCached
	if limit <= 0 {
		limit = DefaultMaxCached
	}
	if _, ok := s.lists[key]; !ok && len(s.lists) >= limit {
		for k := range s.lists {
			if k != s.pinned {
				delete(s.lists, k)
				break
			}
		}
	}
	s.lists[key] = l
}

// --- the commands (§3.2–§3.5) ---

type itemsXML struct {
	Items []struct {
		JID string `xml:"jid,attr"`
	} `xml:"item"`
}

func (s *Service) handle(ctx context.Context, req dispatch.Request) ([]byte, error) {
	user := req.Stanza.From.Bare()
	if !req.To.Equal(user) {
		return nil, errForbidden
	}
	switch {
	case req.Name.Local == "blocklist" && !req.Set():
		return s.get(ctx, req.Stanza.From, user)
	case req.Name.Local == "block" && req.Set():
		items, err := parseItems(req.Payload)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, errNoItems
		}
		return nil, s.block(ctx, req, user, items)
	case req.Name.Local == "unblock" && req.Set():
		items, err := parseItems(req.Payload)
		if err != nil {
			return nil, err
		}
		return nil, s.unblock(ctx, req, user, items)
	}
	return nil, errUnavailable
}

// parseItems returns the items of a <block/> or <unblock/>, prepared,
// without duplicates, in their order.
func parseItems(payload []byte) ([]jid.JID, error) {
	var x itemsXML
	if err := stanza.Decode(payload, &x); err != nil {
		return nil, errBadRequest
	}
	var out []jid.JID
	for _, it := range x.Items {
		j, err := jid.Parse(it.JID)
		if err != nil {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "not a JID: " + it.JID}
		}
		if !slices.ContainsFunc(out, j.Equal) {
			out = append(out, j)
		}
	}
	return out, nil
}

// get answers a blocklist retrieval (§3.2) and marks the resource as
// interested in pushes. It holds the edit lock so that the answer and the
// pushes that follow it never miss a change.
func (s *Service) get(ctx context.Context, full, user jid.JID) ([]byte, error) {
	s.edit.Lock()
	defer s.edit.Unlock()
	l, err := s.list(ctx, user)
	if err != nil {
		return nil, err
	}
	for _, sess := range s.Sessions(user) {
		if sess.JID().Equal(full) {
			s.mu.Lock()
			if s.interested == nil {
				s.interested = make(map[router.Session]bool)
			}
			s.interested[sess] = true
			s.mu.Unlock()
		}
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	writeItems(&b, "blocklist", keys)
	return b.Bytes(), nil
}

// block adds items to user's blocklist (§3.3).
func (s *Service) block(ctx context.Context, req dispatch.Request, user jid.JID, items []jid.JID) error {
	s.edit.Lock()
	defer s.edit.Unlock()
	old, err := s.pin(ctx, user)
	defer s.unpin()
	if err != nil {
		return err
	}
	keys := make([]string, len(items))
	for i, j := range items {
		keys[i] = j.String()
	}
	if err := s.Store.Block(ctx, user.Domainpart(), user.Localpart(), keys); err != nil {
		return err
	}
	next := make(list, len(old)+len(items))
	maps.Copy(next, old)
	for _, j := range items {
		if _, ok := old[j.String()]; !ok && s.OnBlock != nil {
			s.OnBlock(ctx, user, j)
		}
		next[j.String()] = j
	}
	s.replace(user, next)
	var push bytes.Buffer
	writeItems(&push, "block", keys)
	req.AfterReply(func() { s.push(user, push.Bytes()) })
	return nil
}

// unblock removes items from user's blocklist (§3.4), or every item when
// there is none (§3.5).
func (s *Service) unblock(ctx context.Context, req dispatch.Request, user jid.JID, items []jid.JID) error {
	s.edit.Lock()
	defer s.edit.Unlock()
	old, err := s.pin(ctx, user)
	defer s.unpin()
	if err != nil {
		return err
	}
	var keys []string
	for _, j := range items {
		keys = append(keys, j.String())
	}
	if err := s.Store.Unblock(ctx, user.Domainpart(), user.Localpart(), keys); err != nil {
		return err
	}
	var next list
	var removed []jid.JID
	if len(items) == 0 {
		for _, j := range old {
			removed = append(removed, j)
		}
	} else {
		next = maps.Clone(old)
		for _, k := range keys {
			if j, ok := next[k]; ok {
				removed = append(removed, j)
				delete(next, k)
			}
		}
	}
	s.replace(user, next)
	var push bytes.Buffer
	writeItems(&push, "unblock", keys)
	req.AfterReply(func() {
		s.push(user, push.Bytes())
		if s.OnUnblock != nil {
			for _, j := range removed {
				s.OnUnblock(ctx, user, j)
			}
		}
	})
	return nil
}

// pin makes sure user's current list is cached and stays cached until
// the edit replaces it (the edit lock must be held), and returns it.
func (s *Service) pin(ctx context.Context, user jid.JID) (list, error) {
	s.mu.Lock()
	s.pinned = user.String()
	s.mu.Unlock()
	return s.list(ctx, user)
}

func (s *Service) unpin() {
	s.mu.Lock()
	s.pinned = ""
	s.mu.Unlock()
}

// replace caches user's new list after an edit.
func (s *Service) replace(user jid.JID, l list) {
	s.mu.Lock()
	s.gen++
	s.cache(user.String(), l)
	s.mu.Unlock()
}

// push sends a block or unblock push to each of user's resources that
// retrieved the blocklist (§3.3, §3.4, §3.5).
func (s *Service) push(user jid.JID, payload []byte) {
	for _, sess := range s.Sessions(user) {
		full := sess.JID()
		s.mu.RLock()
		ok := s.interested[sess]
		s.mu.RUnlock()
		if !ok {
			continue
		}
		var b bytes.Buffer
		b.WriteString("<iq type='set' id='block-push-")
		b.WriteString(strconv.FormatUint(s.pushes.Add(1), 10))
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, full.String())
		b.WriteString("'>")
		b.Write(payload)
		b.WriteString("</iq>")
		sess.Deliver(b.Bytes())
	}
}

// writeItems writes <name xmlns='urn:xmpp:blocking'> with an <item/> per
// JID.
func writeItems(b *bytes.Buffer, name string, jids []string) {
	b.WriteString("<" + name + " xmlns='" + NS + "'")
	if len(jids) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, j := range jids {
		b.WriteString("<item jid='")
		stanza.EscapeAttr(b, j)
		b.WriteString("'/>")
	}
	b.WriteString("</" + name + ">")
}

// Module is XEP-0191 as a module: the block commands, and the rules of §3
// on every routed stanza (router.Routing, before anything else) and on
// offline messages stored before a block (router.Routing, Quiet).
type Module struct{}

// Name implements module.Module.
func (Module) Name() string { return "blocking" }

// Optional implements module.Optional.
func (Module) Optional() {}

// Start implements module.Module.
func (Module) Start(_ context.Context, env *module.Env) error {
	s := &Service{Store: env.Store, Sessions: env.Router.Sessions, Log: env.Log}
	// §3.3, §3.4: a contact newly blocked stops seeing the user's
	// presence, one unblocked sees it again (the presence module sends
	// it, on the roster's events).
	s.OnBlock = func(ctx context.Context, user, blocked jid.JID) {
		for _, c := range env.Roster.Contacts(ctx, user, roster.SeesPresence) {
			if Matches(blocked, c) {
				event.Fire(ctx, env.Bus, &roster.PresenceRevoked{User: user, Contact: c})
			}
		}
	}
	s.OnUnblock = func(ctx context.Context, user, unblocked jid.JID) {
		for _, c := range env.Roster.Contacts(ctx, user, roster.SeesPresence) {
			if Matches(unblocked, c) {
				event.Fire(ctx, env.Bus, &roster.PresenceGranted{User: user, Contact: c})
			}
		}
	}
	s.Register(env.IQ)
	r := env.Router
	// The hosts, as a map: the check runs on every routed stanza, and
	// indexing it with a JID's domain does not allocate.
	hosts := make(map[string]bool)
	for _, h := range env.Config().Server.Hosts {
		hosts[h] = true
	}
	event.On(env.Bus, event.First, "blocking", func(ctx context.Context, e *router.Routing) bool {
		return s.route(ctx, r, hosts, e)
	})
	event.On(env.Bus, event.Normal, "blocking", func(_ context.Context, e *c2s.SessionEnded) bool {
		s.SessionEnded(e.Session)
		return false
	})
	return nil
}

// route applies §3.3 to a stanza about to be routed: one from a local
// account to a JID it blocks is refused with <not-acceptable/> and the
// blocking error (presence and errors are dropped); one to a local account
// from a JID it blocks is dropped, or refused with <service-unavailable/>
// if it is a chat or normal message or an IQ request, as if the account
// did not exist. It reports whether the stanza was stopped.
func (s *Service) route(ctx context.Context, r router.Router, hosts map[string]bool, e *router.Routing) bool {
	st := e.Stanza
	from, to := st.From, st.To
	if from.Localpart() != "" && hosts[from.Domainpart()] && to.Domainpart() != "" && s.Blocked(ctx, from.Bare(), to) {
		if st.Kind != stanza.Presence && !e.Quiet {
			r.Bounce(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, App: blockedError})
		}
		return true
	}
	if to.Localpart() != "" && hosts[to.Domainpart()] && from.Domainpart() != "" && s.Blocked(ctx, to.Bare(), from) {
		chat := st.Kind == stanza.Message && (st.Type == "" || st.Type == "normal" || st.Type == "chat")
		if (chat || st.IsRequest()) && !e.Quiet {
			r.Bounce(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return true
	}
	return false
}

// blockedError is §3.5's application condition.
var blockedError = []byte(`<blocked xmlns='urn:xmpp:blocking:errors'/>`)
