package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// adminXML is the muc#admin query (§8, §9).
type adminXML struct {
	Items []struct {
		JID         string `xml:"jid,attr"`
		Nick        string `xml:"nick,attr"`
		Role        string `xml:"role,attr"`
		Affiliation string `xml:"affiliation,attr"`
		Reason      string `xml:"reason"`
	} `xml:"item"`
}

var (
	errForbidden  = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	errNotAllowed = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
)

// rank orders affiliations.
func rank(aff string) int {
	return map[string]int{affOwner: 4, affAdmin: 3, affMember: 2, affNone: 1, affOutcast: 0}[aff]
}

// admin is §8 (roles: kick, voice, moderator) and §9 (affiliations:
// ban, members, admins, owners): lists for get, changes for set, all or
// nothing.
func (s *Service) admin(ctx context.Context, r *room, st *stanza.Stanza, payload []byte) {
	var q adminXML
	if xml.Unmarshal(payload, &q) != nil || len(q.Items) == 0 {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	r.mu.Lock()
	var res []byte
	var outs []out
	var e *stanza.Error
	var sn snapshot
	if st.Type == "get" {
		res, e = r.list(st.From, q.Items[0].Affiliation, q.Items[0].Role)
	} else if outs, e = r.change(st.From, &q); e == nil {
		sn = r.snapshot()
	}
	defer r.handOff()()
	if e != nil {
		s.fail(ctx, st, e)
		return
	}
	if sn.version != 0 {
		s.persist(ctx, r, sn)
	}
	s.result(ctx, st, res)
	s.sendAll(ctx, outs)
}

// list is §8.5, §9.5, §9.8, §10.5, §10.8: who has an affiliation, or a
// role among the occupants.
func (r *room) list(from jid.JID, aff, role string) ([]byte, *stanza.Error) {
	mine := r.affiliationOf(from.Bare())
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NSAdmin + "'>")
	switch {
	case aff != "" && rank(mine) >= rank(affAdmin) && aff != affNone:
		jids := make([]string, 0)
		for j, a := range r.affiliations {
			if a.aff == aff {
				jids = append(jids, j)
			}
		}
		slices.Sort(jids)
		for _, j := range jids {
			a := r.affiliations[j]
			b.WriteString("<item affiliation='" + aff + "' jid='")
			stanza.EscapeAttr(&b, j)
			b.WriteString("'")
			if a.nick != "" {
				b.WriteString(" nick='")
				stanza.EscapeAttr(&b, a.nick)
				b.WriteString("'")
			}
			b.WriteString(">")
			if a.reason != "" {
				b.WriteString("<reason>" + stanza.Escape(a.reason) + "</reason>")
			}
			b.WriteString("</item>")
		}
	case role != "" && (role == roleModerator || role == roleParticipant || role == roleVisitor) && r.isModerator(from):
		names := make([]string, 0)
		for n, o := range r.occupants {
			if o.role == role {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			o := r.occupants[n]
			b.WriteString("<item role='" + role + "' affiliation='" + r.affiliationOf(o.bare) + "' nick='")
			stanza.EscapeAttr(&b, n)
			b.WriteString("' jid='")
			stanza.EscapeAttr(&b, o.bare.String())
			b.WriteString("'/>")
		}
	case aff == "" && role == "":
		return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	default:
		return nil, errForbidden
	}
	b.WriteString("</query>")
	return b.Bytes(), nil
}

func (r *room) isModerator(full jid.JID) bool {
	o := r.byReal(full)
	return o != nil && o.role == roleModerator
}

// change applies role and affiliation changes (§8.2–8.4, §9.1–9.7,
// §10.3–10.7), checking them all first.
func (r *room) change(from jid.JID, q *adminXML) ([]out, *stanza.Error) {
	mine := r.affiliationOf(from.Bare())
	actor := r.byReal(from)
	type roleChange struct {
		o            *occupant
		role, reason string
	}
	type affChange struct {
		bare              jid.JID
		aff, nick, reason string
	}
	var roles []roleChange
	var affs []affChange
	owners := 0
	for _, a := range r.affiliations {
		if a.aff == affOwner {
			owners++
		}
	}
	for _, it := range q.Items {
		switch {
		case it.Role != "" && it.Affiliation == "":
			o := r.occupants[it.Nick]
			if o == nil {
				return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no occupant has that nickname"}
			}
			if actor == nil || actor.role != roleModerator {
				return nil, errForbidden
			}
			target := r.affiliationOf(o.bare)
			switch it.Role {
			case roleNone, roleVisitor, roleParticipant:
				// §8.2.4, §8.4: not on those of a higher affiliation, nor
				// on an admin or owner by an admin.
				if rank(target) >= rank(affAdmin) && rank(mine) <= rank(target) || rank(target) > rank(mine) {
					return nil, errNotAllowed
				}
			case roleModerator:
				if rank(mine) < rank(affAdmin) {
					return nil, errForbidden // §9.6
				}
			default:
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
			}
			roles = append(roles, roleChange{o, it.Role, it.Reason})
		case it.Affiliation != "":
			j, err := jid.Parse(it.JID)
			if err != nil && it.Nick != "" {
				if o := r.occupants[it.Nick]; o != nil {
					j, err = o.bare, nil
				}
			}
			if err != nil || j.Equal(jid.JID{}) {
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
			}
			j = j.Bare()
			target := r.affiliationOf(j)
			switch it.Affiliation {
			case affOwner, affAdmin:
				if mine != affOwner {
					return nil, errForbidden // §10.3, §10.6
				}
			case affMember, affNone, affOutcast:
				// §9: admins for those below admin; owners for all.
				if rank(mine) < rank(affAdmin) || rank(target) >= rank(affAdmin) && mine != affOwner {
					return nil, errForbidden
				}
			default:
				return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
			}
			if target == affOwner && it.Affiliation != affOwner {
				if owners <= 1 {
					// §10.5: a room keeps an owner.
					return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "a room needs an owner"}
				}
				owners--
			}
			affs = append(affs, affChange{j, it.Affiliation, it.Nick, it.Reason})
		default:
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
	}
	var outs []out
	actorItem := ""
	if actor != nil {
		actorItem = "<actor nick='" + stanza.Escape(actor.nick) + "'/>"
	}
	for _, c := range affs {
		if c.aff == affNone {
			delete(r.affiliations, c.bare.String())
		} else {
			r.affiliations[c.bare.String()] = affiliation{aff: c.aff, nick: c.nick, reason: c.reason}
		}
		for _, o := range r.occupants {
			if !o.bare.Equal(c.bare) {
				continue
			}
			switch {
			case c.aff == affOutcast:
				outs = r.removeOccupant(outs, o, 301, actorItem, c.reason) // §9.1
			case c.aff == affNone && r.cfg.MembersOnly:
				outs = r.removeOccupant(outs, o, 321, actorItem, c.reason) // §9.4
			default:
				o.role = r.defaultRole(c.aff)
				outs = r.broadcastPresence(outs, o, "", itemExtra{}, nil, nil)
			}
		}
	}
	for _, c := range roles {
		if r.occupants[c.o.nick] != c.o {
			continue
		}
		if c.role == roleNone {
			outs = r.removeOccupant(outs, c.o, 307, actorItem, c.reason) // §8.2
			continue
		}
		c.o.role = c.role
		outs = r.broadcastPresence(outs, c.o, "", itemExtra{}, nil, nil)
	}
	return outs, nil
}

// removeOccupant makes o leave with a status code (kicked 307, banned
// 301, no longer a member 321), the actor and reason in its item.
func (r *room) removeOccupant(outs []out, o *occupant, code int, actor, reason string) []out {
	children := actor
	if reason != "" {
		children += "<reason>" + stanza.Escape(reason) + "</reason>"
	}
	o.presence = nil
	outs = r.broadcastPresence(outs, o, "unavailable", itemExtra{children: children}, []int{code}, nil)
	r.dropOccupant(o)
	return outs
}
