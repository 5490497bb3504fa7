package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
)

// historyKept is how many groupchat messages a room keeps for the
// <history/> of new occupants (§7.2.14).
const historyKept = 20

// joinXML is the <x xmlns='…muc'/> of an entering presence (§7.2.1).
type joinXML struct {
	Password string `xml:"password"`
	History  *struct {
		MaxStanzas string `xml:"maxstanzas,attr"`
		MaxChars   string `xml:"maxchars,attr"`
		Seconds    string `xml:"seconds,attr"`
		Since      string `xml:"since,attr"`
	} `xml:"history"`
}

// presence takes presence to an occupant JID (§7.2, §7.6, §7.14).
func (s *Service) presence(ctx context.Context, st *stanza.Stanza) {
	switch st.Type {
	case "":
		s.available(ctx, st)
	case "unavailable":
		s.leave(ctx, st, nil)
	case "error":
		// The user's server could not deliver to the occupant: it is
		// gone (Prosody: status 333).
		s.leave(ctx, st, []int{333})
	}
}

// mayCreate reports whether from may create a room.
func (s *Service) mayCreate(from jid.JID) bool {
	return s.Options().Create == "anyone" || from.Domainpart() == s.Host
}

// available is an entering presence, a presence change, or a nickname
// change.
func (s *Service) available(ctx context.Context, st *stanza.Stanza) {
	nick := st.To.Resourcepart()
	created := false
	r := s.room(st.To.Localpart())
	if r == nil {
		if !s.mayCreate(st.From) {
			s.failEntering(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "rooms are created by this server's users only"})
			return
		}
		s.mu.Lock()
		if r = s.rooms[st.To.Localpart()]; r == nil {
			if len(s.rooms) >= s.Options().MaxRooms {
				s.mu.Unlock()
				s.failEntering(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "this service has too many rooms"})
				return
			}
			opts := s.Options()
			r = newRoom(st.To.Bare(), roomConfig{Persistent: opts.Persistent, Public: opts.Public,
				MaxUsers: opts.MaxOccupants, AllowInvites: true, AllowPM: "anyone", WhoisAnyone: false,
				Archive: opts.Archive})
			r.locked = true
			r.affiliations[st.From.Bare().String()] = affiliation{aff: affOwner}
			if s.rooms == nil {
				s.rooms = make(map[string]*room)
			}
			s.rooms[st.To.Localpart()] = r
			created = true
		}
		s.mu.Unlock()
	}
	var join joinXML
	if x, ok := st.Child(NS, "x"); ok {
		xml.Unmarshal(x, &join)
	}
	r.mu.Lock()
	if r.destroyed {
		r.mu.Unlock()
		s.failEntering(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
		return
	}
	var outs []out
	var e *stanza.Error
	if o := r.byReal(st.From); o != nil {
		if r.flooding(o, s.now(), s.Options()) {
			// Dropped, not refused: an error presence from its own
			// occupant JID tells a client it is out of the room.
			r.mu.Unlock()
			return
		}
		if o.nick == nick {
			// A presence change (§7.7 of RFC 6121 in a room): to all.
			o.presence = stripped(st.Raw)
			outs = r.broadcastPresence(outs, o, "", itemExtra{}, nil, nil)
		} else {
			outs, e = r.changeNick(o, nick, st)
		}
	} else {
		outs, e = r.enter(st, nick, &join, created, s.now())
	}
	defer r.handOff()()
	if e != nil {
		s.failEntering(ctx, st, e)
		return
	}
	s.sendAll(ctx, outs)
}

// failEntering answers a presence to an occupant JID with an error
// that carries <x xmlns='…muc'/>, as every example of §7.2 does:
// clients (slixmpp) take it for the refusal of their entering only so.
func (s *Service) failEntering(ctx context.Context, st *stanza.Stanza, e *stanza.Error) {
	raw := stanza.ErrorReply(st, st.To, e)
	n := stanza.StartLen(raw)
	var b bytes.Buffer
	b.Write(raw[:n])
	b.WriteString("<x xmlns='" + NS + "'/>")
	b.Write(raw[n:])
	s.send(ctx, b.Bytes())
}

// enter is §7.2: checks, then the occupants to the new one, the new one
// to all, its own presence with its status codes, history and subject.
func (r *room) enter(st *stanza.Stanza, nick string, join *joinXML, created bool, now time.Time) ([]out, *stanza.Error) {
	from, bare := st.From, st.From.Bare()
	aff := r.affiliationOf(bare)
	existing := r.occupants[nick]
	switch {
	case r.locked && aff != affOwner:
		// §10.1.1: nobody enters before the owner configures the room.
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "this room is being created"}
	case aff == affOutcast:
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "you are banned from this room"} // §7.2.7
	case existing != nil && !existing.bare.Equal(bare), r.reservedByOther(nick, bare):
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is in use"} // §7.2.9
	case r.cfg.MembersOnly && aff == affNone:
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.RegistrationRequired, Text: "this room is for members only"} // §7.2.6
	case r.cfg.Password != "" && join.Password != r.cfg.Password && aff != affOwner && aff != affAdmin:
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized, Text: "this room needs a password"} // §7.2.5
	case existing == nil && r.cfg.MaxUsers > 0 && len(r.occupants) >= r.cfg.MaxUsers && aff != affOwner && aff != affAdmin:
		return nil, &stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable, Text: "this room is full"} // §7.2.10
	}
	var outs []out
	o := existing
	if o == nil {
		o = &occupant{nick: nick, bare: bare, role: r.defaultRole(aff), id: r.occupantID(bare)}
	}
	r.addSession(o, from)
	o.presence = stripped(st.Raw)
	// The occupants, to the new session (§7.2.3).
	names := make([]string, 0, len(r.occupants))
	for n := range r.occupants {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		other := r.occupants[n]
		if other == o {
			continue
		}
		var b bytes.Buffer
		r.presenceOf(&b, other, from, "", r.seesJIDs(o), itemExtra{})
		outs = append(outs, out{from, b.Bytes()})
	}
	// The new occupant to the others; a user's further session enters
	// an occupant the others know already.
	if existing == nil {
		r.occupants[nick] = o
		for _, v := range r.occupants {
			if v == o {
				continue
			}
			for _, s := range v.sessions {
				var b bytes.Buffer
				r.presenceOf(&b, o, s, "", r.seesJIDs(v), itemExtra{})
				outs = append(outs, out{s, b.Bytes()})
			}
		}
	}
	codes := []int{110}
	if r.cfg.WhoisAnyone {
		codes = append(codes, 100)
	}
	if r.archiving() {
		codes = append(codes, 170) // §7.2.12
	}
	if created {
		codes = append(codes, 201)
	}
	var b bytes.Buffer
	r.presenceOf(&b, o, from, "", true, itemExtra{}, codes...)
	outs = append(outs, out{from, b.Bytes()})
	outs = r.historyFor(outs, from, join, now)
	// The subject, last (§7.2.15): clients take it as the end of the
	// entering.
	var m bytes.Buffer
	subjectFrom := r.jid.String()
	if r.subjectFrom != "" {
		subjectFrom = r.subjectFrom
	}
	m.WriteString("<message type='groupchat' from='")
	stanza.EscapeAttr(&m, subjectFrom)
	m.WriteString("' to='")
	stanza.EscapeAttr(&m, from.String())
	m.WriteString("'><subject>" + stanza.Escape(r.subject) + "</subject></message>")
	outs = append(outs, out{from, m.Bytes()})
	return outs, nil
}

// reservedByOther reports whether nick is reserved for another user
// (§7.12).
func (r *room) reservedByOther(nick string, bare jid.JID) bool {
	for j, a := range r.affiliations {
		if a.nick == nick && j != bare.String() {
			return true
		}
	}
	return false
}

// historyFor queues the history a new session asked for (§7.2.14), each
// message with its delay (XEP-0203) from the room.
func (r *room) historyFor(outs []out, to jid.JID, join *joinXML, now time.Time) []out {
	msgs := r.history
	if h := join.History; h != nil {
		if n, err := strconv.Atoi(h.MaxStanzas); err == nil && n >= 0 && n < len(msgs) {
			msgs = msgs[len(msgs)-n:]
		}
		if n, err := strconv.Atoi(h.Seconds); err == nil && n >= 0 {
			cut := now.Add(-time.Duration(n) * time.Second)
			for len(msgs) > 0 && msgs[0].at.Before(cut) {
				msgs = msgs[1:]
			}
		}
		if t, err := time.Parse(time.RFC3339, h.Since); err == nil {
			for len(msgs) > 0 && !msgs[0].at.After(t) {
				msgs = msgs[1:]
			}
		}
		if n, err := strconv.Atoi(h.MaxChars); err == nil && n >= 0 {
			total, i := 0, len(msgs)
			for i > 0 && total+msgs[i-1].chars <= n {
				total += msgs[i-1].chars
				i--
			}
			msgs = msgs[i:]
		}
	}
	for _, h := range msgs {
		var b bytes.Buffer
		b.WriteString("<message type='groupchat' from='")
		stanza.EscapeAttr(&b, h.from)
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, to.String())
		b.WriteString("'")
		if h.id != "" {
			// §7.2.14: as sent, so that clients recognise it.
			b.WriteString(" id='")
			stanza.EscapeAttr(&b, h.id)
			b.WriteString("'")
		}
		b.WriteString(">")
		b.Write(h.inner)
		b.WriteString("<delay xmlns='urn:xmpp:delay' from='")
		stanza.EscapeAttr(&b, r.jid.String())
		b.WriteString("' stamp='" + h.at.UTC().Format("2006-01-02T15:04:05.000Z") + "'/></message>")
		outs = append(outs, out{to, b.Bytes()})
	}
	return outs
}

// changeNick is §7.6: unavailable from the old nickname with 303 and the
// new one, then available from the new one.
func (r *room) changeNick(o *occupant, nick string, st *stanza.Stanza) ([]out, *stanza.Error) {
	if other := r.occupants[nick]; other != nil && other != o || r.reservedByOther(nick, o.bare) {
		return nil, &stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict, Text: "this nickname is in use"} // §7.6.3
	}
	var outs []out
	o.presence = nil
	outs = r.broadcastPresence(outs, o, "unavailable", itemExtra{attrs: " nick='" + stanza.Escape(nick) + "'", keepRole: true}, []int{303}, nil)
	delete(r.occupants, o.nick)
	o.nick = nick
	o.presence = stripped(st.Raw)
	r.occupants[nick] = o
	return r.broadcastPresence(outs, o, "", itemExtra{}, nil, nil), nil
}

// leave is §7.14 (and an error bouncing from the occupant's server):
// the occupant leaves, or one of its sessions.
func (s *Service) leave(ctx context.Context, st *stanza.Stanza, codes []int) {
	r := s.room(st.To.Localpart())
	if r == nil {
		return
	}
	r.mu.Lock()
	o := r.byReal(st.From)
	if o == nil || o.nick != st.To.Resourcepart() {
		r.mu.Unlock()
		return
	}
	var outs []out
	o.presence = nil
	if st.Type == "unavailable" {
		if status, ok := clientChild(st.Raw, "status"); ok {
			o.presence = bytes.Clone(status)
		}
	}
	if len(o.sessions) > 1 {
		// Another session stays: only this one is told.
		var b bytes.Buffer
		r.presenceOf(&b, o, st.From, "unavailable", true, itemExtra{}, append([]int{110}, codes...)...)
		outs = append(outs, out{st.From, b.Bytes()})
		r.dropSession(o, st.From)
	} else {
		outs = r.broadcastPresence(outs, o, "unavailable", itemExtra{}, codes, nil)
		r.dropOccupant(o)
	}
	empty := len(r.occupants) == 0 && (!r.cfg.Persistent || r.locked)
	if empty {
		r.destroyed = true
	}
	defer r.handOff()()
	if empty {
		s.forget(r)
	}
	s.sendAll(ctx, outs)
}

// forget removes a room from the service.
func (s *Service) forget(r *room) {
	s.mu.Lock()
	if s.rooms[r.jid.Localpart()] == r {
		delete(s.rooms, r.jid.Localpart())
	}
	s.mu.Unlock()
}

// clientChild returns the child of a stanza in the stanza's own
// namespace (jabber:client, or none declared) with that local name.
func clientChild(raw []byte, local string) ([]byte, bool) {
	for c := range stanza.Children(raw) {
		if string(c.Local) == local && (len(c.Space) == 0 || string(c.Space) == "jabber:client" || string(c.Space) == "jabber:server") {
			return c.Raw, true
		}
	}
	return nil, false
}
