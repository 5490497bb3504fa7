// Package roster owns each account's contact list and the presence
// subscription state machine (RFC 6121 §2, §3): roster get, set and remove
// with pushes to every interested resource, roster versioning (RFC 6121
// §2.6, XEP-0237), outbound and inbound subscription stanzas with
// pre-approval (§3.4), and the pending inbound requests that are delivered
// again at each login until answered.
package roster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// NS is the roster namespace (RFC 6121 §2.1).
const NS = "jabber:iq:roster"

// Limits on what a client may store (RFC 6121 §2.3.3 lets the server
// refuse names and groups that are too long).
const (
	maxNameBytes = 1023
	maxGroups    = 64
)

// StreamFeatures are the roster's stream features, offered with bind:
// roster versioning (RFC 6121 §2.6.1) and subscription pre-approval
// (§3.4).
const StreamFeatures = "<ver xmlns='urn:xmpp:features:rosterver'/><sub xmlns='urn:xmpp:features:pre-approval'/>"

// PresenceGranted is fired (on Service.Bus) when a subscription change
// lets Contact see User's presence (RFC 6121 §3.1.5): the presence module
// sends User's current presence to Contact.
type PresenceGranted struct {
	User, Contact jid.JID
}

// PresenceRevoked is fired when Contact may no longer see User's presence
// (§3.2.2, §3.3.3): the presence module sends unavailable presence.
// XEP-0191 blocking fires it too, for a contact just blocked.
type PresenceRevoked struct {
	User, Contact jid.JID
}

// Store is what the roster needs of storage: the roster aggregate, and
// transactions (storage.Store.InTx) in which a read-modify-write of an
// account's roster holds the account (storage.Tx.LockAccount), so that the
// database serialises it, also between servers sharing one database.
type Store interface {
	storage.Roster
	InTx(ctx context.Context, f func(tx storage.Tx) error) error
}

// Service is the roster module. Set its fields, then Register it.
type Service struct {
	Store  Store
	Router router.Router
	// Exists reports whether a local account exists.
	Exists func(ctx context.Context, bare jid.JID) bool
	// Bus carries the events the roster fires and handles.
	Bus *event.Bus
	// MaxItems bounds a roster's size (0: no limit); read at each use, so
	// that a reload applies.
	MaxItems func() int
	Log      *slog.Logger

	mu sync.Mutex // guards interested and online
	// interested holds, by full JID, the sessions that requested the
	// roster (§2.2); keeping the session tells a session that replaced
	// another on the same full JID from the one it replaced.
	interested map[string]router.Session
	// online caches, by bare JID, the roster of accounts with a session
	// (as Prosody and ejabberd keep an online user's roster in memory),
	// with its version (XEP-0237): one storage read per login serves
	// presence's broadcast and probes (RFC 6121 §4.2.2) and the roster
	// get (§2.2). Every roster write goes through the service, which
	// keeps the entry in step once the write is committed (changed), or
	// drops it when it cannot (a version it does not follow from, a
	// write that failed); the entry goes with the account's last session
	// and at auth.AccountDeleted. An entry is put before storage is read
	// and filled after: a change committed meanwhile drops it, so that
	// what was read before the change is not cached (items).
	//
	// Rows written behind the service's back cannot make it stale: pie's
	// import writes only accounts that did not exist (so had no
	// session), and storage.DeleteAccount is followed by
	// auth.AccountDeleted. Another server sharing the database writes a
	// version this one does not follow from, seen at the next change
	// here; until then its changes are not seen (a cluster needs the
	// router's help to tell the nodes, as for sessions).
	online map[string]*cached
}

// cached is an account's roster in Service.online; items (sorted by
// contact, as storage returns them, and never changed in place: readers
// hold them without the lock) and ver are unset until the reader that
// put the entry has filled it (ready).
type cached struct {
	items []storage.RosterItem
	ver   int64
	ready bool
}

// Register adds the roster IQ handler to m, and hooks the service to the
// events it handles: subscription stanzas addressed to local accounts
// (router.AccountPresence), the end of sessions (c2s.SessionEnded) and
// the removal of accounts (auth.AccountDeleted).
func (s *Service) Register(m *dispatch.Mux) {
	s.interested = make(map[string]router.Session)
	s.online = make(map[string]*cached)
	m.Handle(NS, "query", s.handleIQ)
	event.On(s.Bus, event.Normal, "roster", func(ctx context.Context, e *router.AccountPresence) bool {
		if e.Stanza.Type == "probe" {
			return false
		}
		s.Inbound(ctx, e.Stanza)
		return true
	})
	event.On(s.Bus, event.Normal, "roster", func(_ context.Context, e *c2s.SessionEnded) bool {
		s.SessionEnded(e.Session)
		return false
	})
	event.On(s.Bus, event.Normal, "roster", func(_ context.Context, e *auth.AccountDeleted) bool {
		s.forget(e.JID.Bare())
		return false
	})
}

// SessionEnded forgets that a session was interested in pushes, and the
// account's cached roster with its last session.
func (s *Service) SessionEnded(sess router.Session) {
	key := sess.JID().String()
	s.mu.Lock()
	if s.interested[key] == sess {
		delete(s.interested, key)
	}
	s.mu.Unlock()
	if user := sess.JID().Bare(); len(s.Router.Sessions(user)) == 0 {
		s.forget(user)
	}
}

// items returns user's roster and its version, from the cache when the
// account is online. What it reads from storage is cached only if no
// change was committed (changed, forget) since it put its entry, so that
// a change cannot be overwritten by what was read before it; while one
// reader fills the entry, others read storage themselves. The items
// returned must not be modified.
func (s *Service) items(ctx context.Context, user jid.JID) ([]storage.RosterItem, int64, error) {
	key := user.String()
	s.mu.Lock()
	c, ok := s.online[key]
	if ok && c.ready {
		s.mu.Unlock()
		return c.items, c.ver, nil
	}
	var mine *cached
	if !ok {
		mine = &cached{}
		s.online[key] = mine
	}
	s.mu.Unlock()
	items, ver, err := s.Store.RosterItems(ctx, user.Domainpart(), user.Localpart())
	if mine == nil {
		return items, ver, err
	}
	online := err == nil && len(s.Router.Sessions(user)) > 0
	s.mu.Lock()
	if s.online[key] == mine {
		if online {
			mine.items, mine.ver, mine.ready = items, ver, true
		} else {
			delete(s.online, key)
		}
	}
	s.mu.Unlock()
	return items, ver, err
}

// cachedItem returns contact's item in user's cached roster; known is
// false when the roster is not cached (then storage must be asked).
func (s *Service) cachedItem(user jid.JID, contact string) (it storage.RosterItem, found, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.online[user.String()]
	if !ok || !c.ready {
		return it, false, false
	}
	i, found := slices.BinarySearchFunc(c.items, contact, func(it storage.RosterItem, contact string) int {
		return strings.Compare(it.Contact, contact)
	})
	if found {
		it = c.items[i]
	}
	return it, found, true
}

// changed keeps user's cached roster in step with a change committed at
// version ver: it, replacing the item of its contact or added, or, when
// removed, the removal of contact it.Contact. A version the cache
// already holds changes nothing; one that does not follow the cached one
// (changes committed in one order and reported in another, or by another
// server) drops the entry, as does a change while the entry is being
// filled, so that the next read goes to storage.
func (s *Service) changed(user jid.JID, it storage.RosterItem, removed bool, ver int64) {
	key := user.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.online[key]
	switch {
	case !ok:
		return
	case !c.ready || ver > c.ver+1:
		delete(s.online, key)
		return
	case ver <= c.ver:
		// Read after the change was committed: already in the items.
		return
	}
	i, found := slices.BinarySearchFunc(c.items, it.Contact, func(it storage.RosterItem, contact string) int {
		return strings.Compare(it.Contact, contact)
	})
	// A new slice, never the old one changed: readers may hold it.
	var items []storage.RosterItem
	switch {
	case removed && found:
		items = slices.Concat(c.items[:i], c.items[i+1:])
	case removed:
		items = c.items
	case found:
		items = slices.Clone(c.items)
		items[i] = it
	default:
		items = slices.Insert(slices.Clone(c.items), i, it)
	}
	c.items, c.ver = items, ver
}

// forget drops user's cached roster, and any being filled: after a change
// whose outcome is unknown, a session's end, an account's removal.
func (s *Service) forget(user jid.JID) {
	s.mu.Lock()
	delete(s.online, user.String())
	s.mu.Unlock()
}

// --- roster IQs (§2) ---

type itemXML struct {
	JID          string   `xml:"jid,attr"`
	Name         *string  `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Groups       []string `xml:"group"`
}

type queryXML struct {
	Ver   *string   `xml:"ver,attr"`
	Items []itemXML `xml:"item"`
}

func (s *Service) handleIQ(ctx context.Context, req dispatch.Request) ([]byte, error) {
	user := req.Stanza.From.Bare()
	if !req.To.Equal(user) {
		// §2.1.5/§2.3.3: only the account itself reads or changes its roster.
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	}
	var q queryXML
	if err := stanza.Decode(req.Payload, &q); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	if req.Set() {
		return nil, s.set(ctx, req, user, q)
	}
	return s.get(ctx, req, user, q)
}

// get answers a roster get (§2.2), incrementally when the client's version
// allows it (§2.6.3): an empty result, then one push per changed item.
func (s *Service) get(ctx context.Context, req dispatch.Request, user jid.JID, q queryXML) ([]byte, error) {
	if len(q.Items) > 0 {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a roster get has no items"}
	}
	full := req.Stanza.From
	if sess := s.Router.Session(full); sess != nil {
		s.mu.Lock()
		s.interested[full.String()] = sess
		s.mu.Unlock()
	}
	items, ver, err := s.items(ctx, user)
	if err != nil {
		return nil, err
	}
	if q.Ver != nil && *q.Ver != "" {
		if since, err := strconv.ParseInt(*q.Ver, 10, 64); err == nil && since == ver {
			// RFC 6121 §2.6.3 (XEP-0237): the client's version is
			// current: an empty result, no pushes, no storage read when
			// the roster is cached.
			return nil, nil
		} else if err == nil {
			changed, removed, _, ok, err := s.Store.RosterChanges(ctx, user.Domainpart(), user.Localpart(), since)
			if err != nil {
				return nil, err
			}
			// Removals carry no version of their own, so a client that
			// missed one gets the whole roster instead.
			if ok && len(removed) == 0 {
				req.AfterReply(func() {
					for _, it := range changed {
						s.Router.DeliverTo(full, push(full, it, it.Version))
					}
				})
				return nil, nil
			}
		}
	}
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NS + "'")
	if q.Ver != nil {
		b.WriteString(" ver='" + strconv.FormatInt(ver, 10) + "'")
	}
	b.WriteByte('>')
	for _, it := range items {
		writeItem(&b, it)
	}
	b.WriteString("</query>")
	return b.Bytes(), nil
}

// set applies a roster set (§2.3 add or update, §2.5 remove).
func (s *Service) set(ctx context.Context, req dispatch.Request, user jid.JID, q queryXML) error {
	if len(q.Items) != 1 {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a roster set has exactly one item"}
	}
	x := q.Items[0]
	contact, err := jid.Parse(x.JID)
	if err != nil || x.JID == "" {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
	}
	if contact.Resourcepart() != "" {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "roster items are bare JIDs"}
	}
	if x.Subscription == "remove" {
		return s.remove(ctx, req, user, contact)
	}
	// §2.3.3: a too long name, an empty or too long group, duplicate groups.
	if x.Name != nil && len(*x.Name) > maxNameBytes {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "name too long"}
	}
	if len(x.Groups) > maxGroups {
		return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "too many groups"}
	}
	for i, g := range x.Groups {
		switch {
		case g == "":
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "empty group name"}
		case len(g) > maxNameBytes:
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "group name too long"}
		case slices.Contains(x.Groups[:i], g):
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "duplicate group"}
		}
	}
	host, name := user.Domainpart(), user.Localpart()
	var it storage.RosterItem
	err = s.Store.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, name); err != nil {
			return err
		}
		var err error
		it, err = tx.RosterItem(ctx, host, name, contact.String())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if limit := s.MaxItems(); limit > 0 {
				n, err := tx.RosterCount(ctx, host, name)
				if err != nil {
					return err
				}
				if n >= limit {
					return &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: fmt.Sprintf("the roster is full (%d items)", limit)}
				}
			}
			it = storage.RosterItem{Contact: contact.String(), Subscription: storage.SubNone}
		case err != nil:
			return err
		}
		// §2.1.2.5: subscription and ask in a roster set are ignored.
		it.Name = ""
		if x.Name != nil {
			it.Name = *x.Name
		}
		it.Groups = x.Groups
		it.Version, err = tx.PutRosterItem(ctx, host, name, it)
		return err
	})
	if err != nil {
		s.forget(user) // committed or not: forgetting costs a read
		return err
	}
	s.changed(user, it, false, it.Version)
	req.AfterReply(func() { s.pushAll(user, it) })
	return nil
}

// remove deletes an item (§2.5.2), cancelling the subscriptions both ways
// and refusing a pending request first.
func (s *Service) remove(ctx context.Context, req dispatch.Request, user, contact jid.JID) error {
	host, name := user.Domainpart(), user.Localpart()
	var st state
	var ver int64
	err := s.Store.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, name); err != nil {
			return err
		}
		it, err := tx.RosterItem(ctx, host, name, contact.String())
		if errors.Is(err, storage.ErrNotFound) {
			return &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
		}
		if err != nil {
			return err
		}
		if st, err = s.state(ctx, tx, user, contact, &it); err != nil {
			return err
		}
		if ver, err = tx.DeleteRosterItem(ctx, host, name, contact.String()); err != nil {
			return err
		}
		if st.in {
			return tx.DeleteSubscriptionRequest(ctx, host, name, contact.String())
		}
		return nil
	})
	if err != nil {
		s.forget(user)
		return err
	}
	s.changed(user, storage.RosterItem{Contact: contact.String()}, true, ver)
	req.AfterReply(func() {
		if st.to() || st.out {
			s.Router.Route(ctx, stanza.NewPresence(user, contact, "unsubscribe"))
		}
		if st.from() || st.in {
			if st.from() {
				event.Fire(ctx, s.Bus, &PresenceRevoked{User: user, Contact: contact})
			}
			s.Router.Route(ctx, stanza.NewPresence(user, contact, "unsubscribed"))
		}
		s.pushAll(user, storage.RosterItem{Contact: contact.String(), Subscription: "remove", Version: ver})
	})
	return nil
}

// state reads a contact's subscription state from r (the transaction
// holding user); item is the stored item or nil when there is none (then
// the state is None, possibly Pending In).
func (s *Service) state(ctx context.Context, r storage.Roster, user, contact jid.JID, item *storage.RosterItem) (state, error) {
	st := state{sub: storage.SubNone}
	if item != nil {
		st = state{sub: item.Subscription, out: item.Ask, approved: item.Approved}
	}
	reqs, err := r.SubscriptionRequests(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		return st, err
	}
	st.in = slices.ContainsFunc(reqs, func(r storage.SubscriptionRequest) bool { return r.Contact == contact.String() })
	return st, nil
}

// --- pushes ---

// pushAll sends a roster push for it to every interested resource of user
// (§2.1.6): those interested now, chosen before any push goes out, so
// that a resource asking for the roster meanwhile, which gets this
// version in its answer, gets no push of it too.
func (s *Service) pushAll(user jid.JID, it storage.RosterItem) {
	sessions := s.Router.Sessions(user)
	to := sessions[:0]
	s.mu.Lock()
	for _, sess := range sessions {
		if s.interested[sess.JID().String()] == sess {
			to = append(to, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range to {
		sess.Deliver(push(sess.JID(), it, it.Version))
	}
}

// push is a roster push: an IQ set with no 'from', which clients must
// accept only from their own server (§2.1.6).
func push(to jid.JID, it storage.RosterItem, ver int64) []byte {
	var b bytes.Buffer
	b.WriteString("<iq type='set' id='push")
	b.WriteString(strconv.FormatInt(ver, 10))
	b.WriteString("' to='")
	stanza.EscapeAttr(&b, to.String())
	b.WriteString("'><query xmlns='" + NS + "' ver='")
	b.WriteString(strconv.FormatInt(ver, 10))
	b.WriteString("'>")
	writeItem(&b, it)
	b.WriteString("</query></iq>")
	return b.Bytes()
}

// writeItem writes an <item/> (§2.1.2); a removed item has subscription
// "remove" and nothing else.
func writeItem(b *bytes.Buffer, it storage.RosterItem) {
	b.WriteString("<item jid='")
	stanza.EscapeAttr(b, it.Contact)
	b.WriteString("' subscription='")
	b.WriteString(string(it.Subscription))
	b.WriteByte('\'')
	if it.Name != "" {
		b.WriteString(" name='")
		stanza.EscapeAttr(b, it.Name)
		b.WriteByte('\'')
	}
	if it.Ask {
		b.WriteString(" ask='subscribe'")
	}
	if it.Approved {
		b.WriteString(" approved='true'")
	}
	if len(it.Groups) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, g := range it.Groups {
		b.WriteString("<group>")
		stanza.EscapeAttr(b, g)
		b.WriteString("</group>")
	}
	b.WriteString("</item>")
}
