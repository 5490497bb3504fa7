package pep

// Explicit subscriptions (XEP-0060 §6.1, §6.2, §5.6, §8.8; XEP-0163 §4
// item 1): besides the implicit interest of contacts' clients
// (NODE+notify), an entity may subscribe to a node its access model lets
// it read — a bare or a full JID, one subscription per JID and node,
// without subids, as Prosody keeps them — and is then notified at that
// JID, as long as the access model still lets it read, checked at each
// notification.

import (
	"bytes"
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

type subscribeXML struct {
	Node  string `xml:"node,attr"`
	JID   string `xml:"jid,attr"`
	SubID string `xml:"subid,attr"`
}

type subscriptionsXML struct {
	Node          string `xml:"node,attr"`
	Subscriptions []struct {
		JID          string `xml:"jid,attr"`
		Subscription string `xml:"subscription,attr"`
	} `xml:"subscription"`
}

var (
	errInvalidJID    = pubsubErr(stanza.Modify, stanza.BadRequest, "invalid-jid", "")
	errTooManySubs   = pubsubErr(stanza.Wait, stanza.PolicyViolation, "too-many-subscriptions", "the node has too many subscriptions")
	errNotSubscribed = pubsubErr(stanza.Cancel, stanza.UnexpectedRequest, "not-subscribed", "")
)

// subscriber parses the jid attribute of a subscribe or unsubscribe,
// which must be the sender's bare or full JID (§6.1.3.1, §6.2.3.3).
func subscriber(attr string, from jid.JID) (j jid.JID, ok, valid bool) {
	j, err := jid.Parse(attr)
	if err != nil || attr == "" {
		return jid.JID{}, false, false
	}
	return j, j.Equal(from) || j.Equal(from.Bare()), true
}

// subscribe is §6.1: the node must exist, the access model decide
// (§6.1.3.2–4); the last item follows the result (subscribed, below).
func (s *Service) subscribe(ctx context.Context, owner, from jid.JID, sub *subscribeXML) ([]byte, error) {
	if sub.Node == "" {
		return nil, errNodeID
	}
	j, ok, _ := subscriber(sub.JID, from)
	if !ok {
		return nil, errInvalidJID
	}
	host, user := owner.Domainpart(), owner.Localpart()
	node, err := s.Store.PubSubNode(ctx, host, user, sub.Node)
	if err != nil {
		return nil, storeErr(err)
	}
	if err := s.mayRead(ctx, owner, j.Bare(), node.Config); err != nil {
		return nil, err
	}
	if err := s.Store.PubSubSubscribe(ctx, host, user, sub.Node, j.String(), s.Options().limits()); err != nil {
		if errors.Is(err, storage.ErrQuota) {
			return nil, errTooManySubs
		}
		return nil, storeErr(err)
	}
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NS + "'>")
	writeSubscription(&b, sub.Node, j.String(), "subscribed")
	b.WriteString("</pubsub>")
	return b.Bytes(), nil
}

// subscribed sends a new subscriber the node's last item after the
// result of its subscription (§6.1.7), when the node sends it on
// subscription; it runs after each pubsub set answered with a result
// (dispatch's AfterSet).
func (s *Service) subscribed(ctx context.Context, req dispatch.Request) {
	p, err := decode(req.Payload)
	if err != nil || p.Subscribe == nil || req.ForServer() {
		return
	}
	j, err := jid.Parse(p.Subscribe.JID)
	if err != nil {
		return
	}
	owner := req.To.Bare()
	node, err := s.Store.PubSubNode(ctx, owner.Domainpart(), owner.Localpart(), p.Subscribe.Node)
	if err != nil {
		return
	}
	switch node.Config.SendLastPublishedItem {
	case "on_sub", "on_sub_and_presence":
	default:
		return
	}
	items, err := s.Store.PubSubItems(ctx, owner.Domainpart(), owner.Localpart(), node.Name, storage.PubSubItemsQuery{Last: 1})
	if err != nil || len(items) == 0 {
		return
	}
	s.deliverJID(ctx, j, owner, eventItems(node.Name, items))
}

// unsubscribe is §6.2, with §6.2.3's errors.
func (s *Service) unsubscribe(ctx context.Context, owner, from jid.JID, sub *subscribeXML) error {
	if sub.Node == "" {
		return errNodeID
	}
	j, ok, valid := subscriber(sub.JID, from)
	if !valid {
		return errInvalidJID
	}
	if !ok {
		return errForbidden // §6.2.3.3
	}
	host, user := owner.Domainpart(), owner.Localpart()
	if _, err := s.Store.PubSubNode(ctx, host, user, sub.Node); err != nil {
		return storeErr(err) // §6.2.3.4
	}
	if sub.SubID != "" {
		// §6.2.3.5: no subscription has one here.
		return pubsubErr(stanza.Modify, stanza.NotAcceptable, "invalid-subid", "")
	}
	err := s.Store.PubSubUnsubscribe(ctx, host, user, sub.Node, j.String())
	if errors.Is(err, storage.ErrNotFound) {
		return errNotSubscribed // §6.2.3.2
	}
	return err
}

// subscriptionsOf is §5.6: the requester's subscriptions (of its bare
// JID and of its full JIDs) to the owner's nodes, or to one of them.
func (s *Service) subscriptionsOf(ctx context.Context, owner, from jid.JID, node string) ([]byte, error) {
	subs, err := s.Store.PubSubSubscriptionsOf(ctx, owner.Domainpart(), owner.Localpart(), from.Bare().String())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NS + "'><subscriptions")
	if node != "" {
		b.WriteString(" node='")
		stanza.EscapeAttr(&b, node)
		b.WriteString("'")
	}
	b.WriteString(">")
	for _, sub := range subs {
		if node == "" || sub.Node == node {
			writeSubscription(&b, sub.Node, sub.JID, "subscribed")
		}
	}
	b.WriteString("</subscriptions></pubsub>")
	return b.Bytes(), nil
}

func writeSubscription(b *bytes.Buffer, node, j, state string) {
	b.WriteString("<subscription")
	if node != "" {
		b.WriteString(" node='")
		stanza.EscapeAttr(b, node)
		b.WriteString("'")
	}
	b.WriteString(" jid='")
	stanza.EscapeAttr(b, j)
	b.WriteString("' subscription='" + state + "'/>")
}

// nodeSubscriptions is §8.8.1: the owner reads a node's subscriptions.
func (s *Service) nodeSubscriptions(ctx context.Context, owner jid.JID, name string) ([]byte, error) {
	if name == "" {
		return nil, errNodeID
	}
	subs, err := s.Store.PubSubSubscriptions(ctx, owner.Domainpart(), owner.Localpart(), name)
	if err != nil {
		return nil, storeErr(err)
	}
	var b bytes.Buffer
	b.WriteString("<pubsub xmlns='" + NSOwner + "'><subscriptions node='")
	stanza.EscapeAttr(&b, name)
	b.WriteString("'>")
	for _, sub := range subs {
		writeSubscription(&b, "", sub.JID, "subscribed")
	}
	b.WriteString("</subscriptions></pubsub>")
	return b.Bytes(), nil
}

// setSubscriptions is §8.8.2: the owner subscribes JIDs (subscribed) or
// removes their subscriptions (none). Every entry is checked before any
// is applied; the access model is not asked (the owner decides), but
// notifications still go only to those it lets read.
func (s *Service) setSubscriptions(ctx context.Context, owner jid.JID, a *subscriptionsXML) error {
	if a.Node == "" {
		return errNodeID
	}
	host, user := owner.Domainpart(), owner.Localpart()
	if _, err := s.Store.PubSubNode(ctx, host, user, a.Node); err != nil {
		return storeErr(err)
	}
	type change struct {
		jid       string
		subscribe bool
	}
	var changes []change
	for _, sub := range a.Subscriptions {
		j, err := jid.Parse(sub.JID)
		if err != nil || sub.JID == "" {
			return &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
		}
		switch sub.Subscription {
		case "subscribed", "none":
			changes = append(changes, change{j.String(), sub.Subscription == "subscribed"})
		case "pending":
			return unsupported("access-authorize")
		case "unconfigured":
			return unsupported("subscription-options")
		default:
			return errBadRequest
		}
	}
	for _, c := range changes {
		var err error
		if c.subscribe {
			err = s.Store.PubSubSubscribe(ctx, host, user, a.Node, c.jid, s.Options().limits())
		} else if err = s.Store.PubSubUnsubscribe(ctx, host, user, a.Node, c.jid); errors.Is(err, storage.ErrNotFound) {
			err = nil // none already
		}
		if errors.Is(err, storage.ErrQuota) {
			return errTooManySubs
		}
		if err != nil {
			return storeErr(err)
		}
	}
	return nil
}

// notifySubscribers sends ev about node to its explicit subscribers
// (subs) the access model lets read, at the JIDs they subscribed, but
// never to a session notified already (notified: the full JIDs the
// implicit path reached): a full JID notified is skipped, and so is a
// bare JID one of whose sessions was — a bare JID is routed to, and the
// router's rules choose its sessions. Full JIDs go first, so that a
// session subscribed by both its full and its bare JID gets one.
func (s *Service) notifySubscribers(ctx context.Context, owner jid.JID, node storage.PubSubNode, ev []byte, subs []storage.PubSubSubscription, notified map[string]bool) {
	if len(subs) == 0 {
		return
	}
	readable := make(map[string]bool) // by bare JID, asked once
	var full, bare []jid.JID
	for _, sub := range subs {
		j, err := jid.Parse(sub.JID)
		if err != nil {
			continue
		}
		b := j.Bare().String()
		ok, asked := readable[b]
		if !asked {
			ok = s.mayRead(ctx, owner, j.Bare(), node.Config) == nil
			readable[b] = ok
		}
		if !ok {
			continue
		}
		if j.Resourcepart() != "" {
			full = append(full, j)
		} else {
			bare = append(bare, j)
		}
	}
	notifiedBare := make(map[string]bool)
	for f := range notified {
		if j, err := jid.Parse(f); err == nil {
			notifiedBare[j.Bare().String()] = true
		}
	}
	for _, j := range full {
		if notified[j.String()] {
			continue
		}
		notified[j.String()] = true
		notifiedBare[j.Bare().String()] = true
		s.deliverJID(ctx, j, owner, ev)
	}
	for _, j := range bare {
		if notifiedBare[j.String()] {
			continue
		}
		s.deliverJID(ctx, j, owner, ev)
	}
}

// subscriptions reads node's subscriptions for a notification; none
// when they cannot be read (logged).
func (s *Service) subscriptions(ctx context.Context, owner jid.JID, node string) []storage.PubSubSubscription {
	subs, err := s.Store.PubSubSubscriptions(ctx, owner.Domainpart(), owner.Localpart(), node)
	if err != nil && ctx.Err() == nil && !errors.Is(err, storage.ErrNotFound) {
		s.Log.Error("reading subscriptions failed", "jid", owner.String(), "node", node, "err", err)
	}
	return subs
}

// deliverJID routes the event ev from owner to a JID (a subscriber's:
// bare or full, local or on another server, federation), unless it
// would be stopped on its way (blocking).
func (s *Service) deliverJID(ctx context.Context, to, owner jid.JID, ev []byte) {
	st, err := stanza.ParseElement(eventMessage(owner, to, ev))
	if err != nil {
		return
	}
	if s.Stopped != nil && !to.Bare().Equal(owner) && s.Stopped(ctx, st) {
		return
	}
	s.Router.Route(ctx, st)
}
