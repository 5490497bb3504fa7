package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// reservedNick is §7.12: the nickname reserved for bare in the room, as
// the name of an identity of the node x-roomuser-item.
func (r *room) reservedNick(bare jid.JID) ([]byte, *stanza.Error) {
	r.mu.Lock()
	a, ok := r.affiliations[bare.String()]
	r.mu.Unlock()
	if !ok || a.nick == "" {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + nsDiscoInfo + "' node='x-roomuser-item'><identity category='conference' type='text' name='")
	stanza.EscapeAttr(&b, a.nick)
	b.WriteString("'/></query>")
	return b.Bytes(), nil
}

// register is §7.10: the registration form, and a submitted nickname
// reserved for the user, who becomes a member. A members-only room
// takes registrations of its members only (others are let in by its
// admins, §9.3); an outcast may not register.
func (s *Service) register(ctx context.Context, r *room, st *stanza.Stanza, payload []byte) {
	bare := st.From.Bare()
	r.mu.Lock()
	a, registered := r.affiliations[bare.String()]
	membersOnly := r.cfg.MembersOnly
	r.mu.Unlock()
	if a.aff == affOutcast {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden})
		return
	}
	if st.Type == "get" {
		var b bytes.Buffer
		b.WriteString("<query xmlns='" + nsRegister + "'>")
		if registered && a.nick != "" {
			b.WriteString("<registered/><username>" + stanza.Escape(a.nick) + "</username>")
		}
		b.WriteString("<x xmlns='" + nsData + "' type='form'><title>Register with " + stanza.Escape(r.jid.String()) + "</title>")
		field(&b, "FORM_TYPE", "hidden", NS+"#register")
		b.WriteString("<field var='muc#register_roomnick' type='text-single' label='Nickname'><required/></field></x></query>")
		s.result(ctx, st, b.Bytes())
		return
	}
	var q struct {
		Remove *struct{} `xml:"remove"`
		Form   *struct {
			Fields []struct {
				Var    string   `xml:"var,attr"`
				Values []string `xml:"value"`
			} `xml:"field"`
		} `xml:"jabber:x:data x"`
	}
	if xml.Unmarshal(payload, &q) != nil || q.Form == nil && q.Remove == nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	nick := ""
	if q.Form != nil {
		for _, f := range q.Form.Fields {
			if f.Var == "muc#register_roomnick" && len(f.Values) == 1 {
				nick = strings.TrimSpace(f.Values[0])
			}
		}
		if _, err := r.jid.WithResource(nick); err != nil || nick == "" {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: "a valid nickname is needed"})
			return
		}
	}
	r.mu.Lock()
	var e *stanza.Error
	a, registered = r.affiliations[bare.String()]
	switch {
	case q.Remove != nil && a.aff == affMember:
		delete(r.affiliations, bare.String())
	case q.Remove != nil:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "only members cancel a registration"}
	case membersOnly && !registered:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "this room's admins choose its members"}
	case r.reservedByOther(nick, bare):
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is reserved"} // §7.10.2
	case occupantNamed(r, nick, bare):
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is in use"}
	default:
		if !registered {
			a = affiliation{aff: affMember}
		}
		a.nick = nick
		r.affiliations[bare.String()] = a
	}
	var sn snapshot
	var outs []out
	if e == nil {
		sn = r.snapshot()
		// An occupant now a member (or no longer one) is seen so.
		for _, o := range r.occupants {
			if o.bare.Equal(bare) {
				o.role = r.defaultRole(r.affiliationOf(bare))
				outs = r.broadcastPresence(outs, o, "", itemExtra{}, nil, nil)
			}
		}
	}
	defer r.handOff()()
	if e != nil {
		s.fail(ctx, st, e)
		return
	}
	s.persist(ctx, r, sn)
	s.result(ctx, st, nil)
	s.sendAll(ctx, outs)
}

// occupantNamed reports whether nick is an occupant's other than bare's.
func occupantNamed(r *room, nick string, bare jid.JID) bool {
	o := r.occupants[nick]
	return o != nil && !o.bare.Equal(bare)
}
