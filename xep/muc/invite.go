package muc

import (
	"bytes"
	"context"
	"encoding/xml"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// inviteXML is the muc#user payload of a mediated invitation (§7.8.2)
// or its decline (§7.8.3).
type inviteXML struct {
	Invites []struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"reason"`
	} `xml:"invite"`
	Decline *struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"reason"`
	} `xml:"decline"`
}

// mediated relays invitations an occupant sends through the room
// (§7.8.2) and a declined invitation back to its inviter (§7.8.3). In a
// members-only room an invitation by an admin or owner makes the
// invitee a member (§7.8.2: the room "MAY add the invitee to the member
// list"), so that it can enter.
func (s *Service) mediated(ctx context.Context, r *room, st *stanza.Stanza, x []byte) {
	var q inviteXML
	if xml.Unmarshal(x, &q) != nil || len(q.Invites) == 0 && q.Decline == nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	if q.Decline != nil {
		to, err := jid.Parse(q.Decline.To)
		if err != nil {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
			return
		}
		var b bytes.Buffer
		b.WriteString("<message from='")
		stanza.EscapeAttr(&b, r.jid.String())
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, to.String())
		b.WriteString("'><x xmlns='" + NSUser + "'><decline from='")
		stanza.EscapeAttr(&b, st.From.Bare().String())
		b.WriteString("'>")
		if q.Decline.Reason != "" {
			b.WriteString("<reason>" + stanza.Escape(q.Decline.Reason) + "</reason>")
		}
		b.WriteString("</decline></x></message>")
		s.send(ctx, b.Bytes())
		return
	}
	r.mu.Lock()
	o := r.byReal(st.From)
	aff := r.affiliationOf(st.From.Bare())
	var e *stanza.Error
	switch {
	case o == nil:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, Text: "only occupants may invite"}
	case r.cfg.MembersOnly && !r.cfg.AllowInvites && rank(aff) < rank(affAdmin):
		e = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only admins and owners invite to this room"} // §7.8.2
	case !r.cfg.AllowInvites && o.role != roleModerator:
		e = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "invitations are not allowed in this room"}
	}
	var targets []jid.JID
	if e == nil {
		for _, inv := range q.Invites {
			to, err := jid.Parse(inv.To)
			if err != nil {
				e = &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
				break
			}
			targets = append(targets, to)
		}
	}
	var sn snapshot
	if e == nil && r.cfg.MembersOnly && rank(aff) >= rank(affAdmin) {
		for _, to := range targets {
			if r.affiliationOf(to.Bare()) == affNone {
				r.affiliations[to.Bare().String()] = affiliation{aff: affMember}
			}
		}
		sn = r.snapshot()
	}
	password := r.cfg.Password
	r.mu.Unlock()
	if e != nil {
		s.fail(ctx, st, e)
		return
	}
	if sn.version != 0 {
		s.persist(ctx, r, sn)
	}
	for i, to := range targets {
		var b bytes.Buffer
		b.WriteString("<message from='")
		stanza.EscapeAttr(&b, r.jid.String())
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, to.String())
		b.WriteString("'")
		if st.ID != "" {
			b.WriteString(" id='")
			stanza.EscapeAttr(&b, st.ID)
			b.WriteString("'")
		}
		b.WriteString("><x xmlns='" + NSUser + "'><invite from='")
		stanza.EscapeAttr(&b, st.From.Bare().String())
		b.WriteString("'>")
		reason := q.Invites[i].Reason
		if reason != "" {
			b.WriteString("<reason>" + stanza.Escape(reason) + "</reason>")
		}
		b.WriteString("</invite>")
		if password != "" {
			b.WriteString("<password>" + stanza.Escape(password) + "</password>")
		}
		b.WriteString("</x><body>")
		b.WriteString(stanza.Escape(st.From.Bare().String() + " invites you to the room " + r.jid.String()))
		if reason != "" {
			b.WriteString(stanza.Escape(": " + reason))
		}
		b.WriteString("</body></message>")
		s.send(ctx, b.Bytes())
	}
}
