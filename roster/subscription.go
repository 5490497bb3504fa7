package roster

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// change is what one subscription stanza did to a contact's state.
type change struct {
	before, after state
	item          *storage.RosterItem // the stored item after the change; nil if none
	pushed        bool                // the item changed: push it
}

// apply reads the state of contact in user's roster, applies f and stores
// the result, in one transaction holding user (storage.Tx.LockAccount), so
// that changes of one account's subscriptions are serialised by the
// database, also between servers sharing it. It creates an item only when
// the new state needs one, stores request (an inbound subscribe) when the
// new state has one pending, and removes a pending request the change
// answered. f runs once, inside the transaction: it must only compute.
// Nothing is routed or delivered before apply returns.
func (s *Service) apply(ctx context.Context, user, contact jid.JID, request []byte, f func(state) state) (change, error) {
	host, name := user.Domainpart(), user.Localpart()
	var c change
	err := s.Store.InTx(ctx, func(tx storage.Tx) error {
		if err := tx.LockAccount(ctx, host, name); err != nil {
			return err
		}
		var item *storage.RosterItem
		it, err := tx.RosterItem(ctx, host, name, contact.String())
		switch {
		case err == nil:
			item = &it
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		before, err := s.state(ctx, tx, user, contact, item)
		if err != nil {
			return err
		}
		after := f(before)
		c = change{before: before, after: after, item: item}
		switch {
		case before.in && !after.in:
			if err := tx.DeleteSubscriptionRequest(ctx, host, name, contact.String()); err != nil {
				return err
			}
		case after.in && request != nil:
			// Kept, with its status text, until the user answers;
			// delivered again at each initial presence (§3.1.3).
			req := storage.SubscriptionRequest{Contact: contact.String(), Stanza: request}
			if err := tx.PutSubscriptionRequest(ctx, host, name, req); err != nil {
				return err
			}
		}
		if before.sub == after.sub && before.out == after.out && before.approved == after.approved {
			return nil
		}
		if item == nil {
			if after.sub == storage.SubNone && !after.out && !after.approved {
				return nil
			}
			item = &storage.RosterItem{Contact: contact.String()}
		}
		item.Subscription, item.Ask, item.Approved = after.sub, after.out, after.approved
		if item.Version, err = tx.PutRosterItem(ctx, host, name, *item); err != nil {
			return err
		}
		c.item, c.pushed = item, true
		return nil
	})
	if err != nil {
		s.forget(user) // committed or not: forgetting costs a read
		return change{}, err
	}
	if c.pushed {
		s.changed(user, *c.item, false, c.item.Version)
	}
	return c, nil
}

// Outbound handles a subscription stanza sent by one of the user's
// sessions (st.From is its full JID): the state change of RFC 6121
// Appendix A.2, the roster push, and the stanza routed on from the user's
// bare JID (§3.1.2, §3.2.2, §3.3.2; a pre-approval §3.4 is not routed).
func (s *Service) Outbound(ctx context.Context, st *stanza.Stanza) {
	user, contact := st.From.Bare(), st.To.Bare()
	if user.Equal(contact) {
		return // one's own presence needs no subscription
	}
	var route bool
	c, err := s.apply(ctx, user, contact, nil, func(before state) state {
		var after state
		switch st.Type {
		case "subscribe":
			after, route = outSubscribe(before)
		case "unsubscribe":
			after, route = outUnsubscribe(before)
		case "subscribed":
			after, route = outSubscribed(before)
		case "unsubscribed":
			after, route = outUnsubscribed(before)
		}
		return after
	})
	if err != nil {
		s.Log.Error("subscription change failed", "jid", user.String(), "contact", contact.String(), "type", st.Type, "err", err)
		return
	}
	if c.pushed {
		s.pushAll(user, *c.item)
	}
	if !route {
		return
	}
	s.Router.Route(ctx, st.WithAddresses(user, contact))
	switch {
	case !c.before.from() && c.after.from():
		event.Fire(ctx, s.Bus, &PresenceGranted{User: user, Contact: contact})
	case c.before.from() && !c.after.from():
		event.Fire(ctx, s.Bus, &PresenceRevoked{User: user, Contact: contact})
	}
}

// Inbound handles a subscription stanza addressed to a local account
// (RFC 6121 Appendix A.3): the state change, the roster push, and delivery
// to the account's available resources when the stanza is news to it.
// A request to an account that does not exist is refused (§3.1.3); the
// other types are then ignored (§8.5.1).
func (s *Service) Inbound(ctx context.Context, st *stanza.Stanza) {
	user, contact := st.To.Bare(), st.From.Bare()
	if contact.Localpart() == "" && contact.Domainpart() == "" {
		return
	}
	if !s.Exists(ctx, user) {
		if st.Type == "subscribe" {
			s.Router.Route(ctx, stanza.NewPresence(user, contact, "unsubscribed"))
		}
		return
	}
	var deliver, autoApprove bool
	var request []byte
	if st.Type == "subscribe" {
		request = st.WithAddresses(contact, user).Raw
	}
	c, err := s.apply(ctx, user, contact, request, func(before state) state {
		var after state
		switch st.Type {
		case "subscribe":
			after, deliver, autoApprove = inSubscribe(before)
		case "unsubscribe":
			after, deliver = inUnsubscribe(before)
		case "subscribed":
			after, deliver = inSubscribed(before)
		case "unsubscribed":
			after, deliver = inUnsubscribed(before)
		}
		return after
	})
	if err != nil {
		s.Log.Error("subscription change failed", "jid", user.String(), "contact", contact.String(), "type", st.Type, "err", err)
		return
	}
	if c.pushed {
		s.pushAll(user, *c.item)
	}
	if autoApprove {
		s.Router.Route(ctx, stanza.NewPresence(user, contact, "subscribed"))
		event.Fire(ctx, s.Bus, &PresenceGranted{User: user, Contact: contact})
		return
	}
	if deliver {
		s.Router.DeliverAvailable(user, st.WithAddresses(contact, user).Raw)
	}
	if c.before.from() && !c.after.from() {
		event.Fire(ctx, s.Bus, &PresenceRevoked{User: user, Contact: contact})
	}
}

// DeliverPending hands the stored subscription requests to a session that
// has just become available (RFC 6121 §3.1.3).
func (s *Service) DeliverPending(ctx context.Context, user jid.JID, deliver func([]byte) bool) {
	reqs, err := s.Store.SubscriptionRequests(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		s.Log.Error("reading subscription requests failed", "jid", user.String(), "err", err)
		return
	}
	for _, r := range reqs {
		deliver(r.Stanza)
	}
}

// Contacts returns user's contacts whose subscription state satisfies
// keep, for presence broadcast (from/both) and probes (to/both).
func (s *Service) Contacts(ctx context.Context, user jid.JID, keep func(storage.Subscription) bool) []jid.JID {
	items, _, err := s.items(ctx, user)
	if err != nil {
		s.Log.Error("reading roster failed", "jid", user.String(), "err", err)
		return nil
	}
	var out []jid.JID
	for _, it := range items {
		if !keep(it.Subscription) {
			continue
		}
		if j, err := jid.Parse(it.Contact); err == nil {
			out = append(out, j)
		}
	}
	return out
}

// Subscription returns contact's subscription state in user's roster
// (none when the contact is not in it), from the cache while user is
// online.
func (s *Service) Subscription(ctx context.Context, user, contact jid.JID) (storage.Subscription, error) {
	if it, found, known := s.cachedItem(user, contact.Bare().String()); known {
		if !found {
			return storage.SubNone, nil
		}
		return it.Subscription, nil
	}
	it, err := s.Store.RosterItem(ctx, user.Domainpart(), user.Localpart(), contact.Bare().String())
	if errors.Is(err, storage.ErrNotFound) {
		return storage.SubNone, nil
	}
	return it.Subscription, err
}

// SeesPresence reports whether a subscription lets the contact see the
// user's presence.
func SeesPresence(sub storage.Subscription) bool {
	return sub == storage.SubFrom || sub == storage.SubBoth
}

// ReceivesPresence reports whether a subscription lets the user see the
// contact's presence.
func ReceivesPresence(sub storage.Subscription) bool {
	return sub == storage.SubTo || sub == storage.SubBoth
}
