package muc

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Service is the MUC service of one domain. Set its fields, then add it
// to the router (router.AddService).
type Service struct {
	Domain string // conference.example.org
	Host   string // the host it belongs to: whose users are local
	Router router.Router
	// Store keeps the persistent rooms (nil: none are kept).
	Store storage.MUC
	// Options are the module's options in force.
	Options func() *Options
	Log     *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	mu    sync.Mutex // guards rooms
	rooms map[string]*room

	relayMu sync.Mutex // guards relays
	relays  map[string]relayed

	// writer writes the room archives (nil: no archives); ids numbers
	// their messages.
	writer *archive.Writer[storage.MUCArchiveEntry]
	ids    archive.IDs
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// HandleService implements router.Service: stanzas for the service, a
// room, or an occupant.
func (s *Service) HandleService(ctx context.Context, st *stanza.Stanza) {
	switch {
	case st.To.Localpart() == "":
		s.handleDomain(ctx, st)
	case st.To.Resourcepart() == "":
		s.handleRoom(ctx, st)
	default:
		s.handleOccupant(ctx, st)
	}
}

// send routes raw, a stanza the service built.
func (s *Service) send(ctx context.Context, raw []byte) {
	st, err := stanza.ParseElement(raw)
	if err != nil {
		s.Log.Error("built a stanza that does not parse", "err", err)
		return
	}
	s.Router.Route(ctx, st)
}

func (s *Service) sendAll(ctx context.Context, outs []out) {
	for _, o := range outs {
		s.send(ctx, o.raw)
	}
}

// fail answers st with e from the address it was sent to.
func (s *Service) fail(ctx context.Context, st *stanza.Stanza, e *stanza.Error) {
	if st.IsError() || st.Kind == stanza.IQ && !st.IsRequest() {
		return
	}
	s.send(ctx, stanza.ErrorReply(st, st.To, e))
}

// result answers the IQ request st.
func (s *Service) result(ctx context.Context, st *stanza.Stanza, payload []byte) {
	s.send(ctx, stanza.Result(st, st.To, payload))
}

func (s *Service) room(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[name]
}

// handleDomain answers what is addressed to the service itself (§6.1–6.3).
func (s *Service) handleDomain(ctx context.Context, st *stanza.Stanza) {
	if st.Kind != stanza.IQ {
		if st.Kind == stanza.Message && st.Type != "error" && st.Type != "headline" {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		return
	}
	if !st.IsRequest() {
		return
	}
	name, payload, _ := st.Payload()
	switch {
	case st.Type == "get" && name.Space == nsDiscoInfo && name.Local == "query" && queryNode(payload) == "":
		s.result(ctx, st, []byte("<query xmlns='"+nsDiscoInfo+"'><identity category='conference' type='text' name='Chat rooms'/>"+
			"<feature var='"+nsDiscoInfo+"'/><feature var='"+nsDiscoItems+"'/><feature var='"+NS+"'/>"+
			"<feature var='"+NSOccupantID+"'/><feature var='"+nsPing+"'/><feature var='"+nsVCard+"'/></query>"))
	case st.Type == "get" && name.Space == nsDiscoItems && name.Local == "query" && queryNode(payload) == "":
		s.result(ctx, st, s.publicRooms())
	case st.Type == "get" && name.Space == nsPing && name.Local == "ping":
		s.result(ctx, st, nil)
	default:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	}
}

// publicRooms is the service's disco#items (§6.3): its public rooms.
func (s *Service) publicRooms() []byte {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	slices.SortFunc(rooms, func(a, b *room) int { return strings.Compare(a.jid.String(), b.jid.String()) })
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + nsDiscoItems + "'>")
	for _, r := range rooms {
		r.mu.Lock()
		public, name, locked := r.cfg.Public, r.cfg.Name, r.locked
		r.mu.Unlock()
		if !public || locked {
			continue
		}
		b.WriteString("<item jid='")
		stanza.EscapeAttr(&b, r.jid.String())
		b.WriteString("'")
		if name != "" {
			b.WriteString(" name='")
			stanza.EscapeAttr(&b, name)
			b.WriteString("'")
		}
		b.WriteString("/>")
	}
	b.WriteString("</query>")
	return b.Bytes()
}

// queryNode returns the node attribute of a disco query.
func queryNode(payload []byte) string { return stanza.Attr(payload, "node") }

// handleRoom takes what is addressed to a room's bare JID.
func (s *Service) handleRoom(ctx context.Context, st *stanza.Stanza) {
	r := s.room(st.To.Localpart())
	switch st.Kind {
	case stanza.Presence:
		if st.Type == "" {
			// §7.2.1: entering needs a nickname.
			s.failEntering(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed, Text: "a nickname is needed to enter a room"})
		}
	case stanza.Message:
		if r == nil {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
			return
		}
		if st.Type == "groupchat" {
			s.groupchat(ctx, r, st)
			return
		}
		if x, ok := st.Child(NSUser, "x"); ok && st.Type != "error" {
			s.mediated(ctx, r, st, x)
			return
		}
		if st.Type != "error" {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		}
	case stanza.IQ:
		if st.IsRequest() {
			s.roomIQ(ctx, r, st)
		}
	}
}

// handleOccupant takes what is addressed to an occupant JID.
func (s *Service) handleOccupant(ctx context.Context, st *stanza.Stanza) {
	switch st.Kind {
	case stanza.Presence:
		s.presence(ctx, st)
	case stanza.Message:
		r := s.room(st.To.Localpart())
		if r == nil {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
			return
		}
		s.private(ctx, r, st)
	case stanza.IQ:
		if !st.IsRequest() {
			s.relayAnswer(ctx, st)
			return
		}
		r := s.room(st.To.Localpart())
		if r == nil {
			s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
			return
		}
		s.occupantIQ(ctx, r, st)
	}
}

// occupantIQ: XEP-0410 self-ping is answered by the service; other
// requests from an occupant to another are relayed (iqrelay.go).
func (s *Service) occupantIQ(ctx context.Context, r *room, st *stanza.Stanza) {
	name, _, _ := st.Payload()
	r.mu.Lock()
	o := r.byReal(st.From)
	target := r.occupants[st.To.Resourcepart()]
	var to jid.JID
	var fromJID jid.JID
	if o != nil && target != nil && target != o && len(target.sessions) > 0 {
		fromJID = r.occupantJID(o.nick)
		to = target.sessions[len(target.sessions)-1]
		if st.Type == "get" && name.Space == nsVCard && name.Local == "vCard" {
			// The occupant's vCard is its account's: its server answers
			// (XEP-0054 §3.3, XEP-0153 in rooms).
			to = target.bare
		}
	}
	r.mu.Unlock()
	switch {
	case o == nil:
		// XEP-0410 §3: not joined (any more); others may not reach
		// occupants either.
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable})
	case target == nil:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
	case target == o && st.Type == "get" && name.Space == nsPing && name.Local == "ping":
		s.result(ctx, st, nil)
	case target == o:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	default:
		s.relayRequest(ctx, st, fromJID, to)
	}
}

// private is §7.5: a message from an occupant to another, relayed to
// that occupant's sessions from the sender's occupant JID.
func (s *Service) private(ctx context.Context, r *room, st *stanza.Stanza) {
	if st.Type == "error" {
		return
	}
	if st.Type == "groupchat" {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a groupchat message goes to the room"})
		return
	}
	r.mu.Lock()
	from := r.byReal(st.From)
	to := r.occupants[st.To.Resourcepart()]
	var e *stanza.Error
	var sessions []jid.JID
	var fromJID jid.JID
	var oid string
	switch {
	case from == nil:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, Text: "only occupants may send private messages"}
	case to == nil:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	case !r.allowsPM(from):
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: "private messages are not allowed in this room"}
	case r.flooding(from, s.now(), s.Options()):
		e = errFlood
	default:
		sessions = slices.Clone(to.sessions)
		fromJID = r.occupantJID(from.nick)
		oid = from.id
	}
	r.mu.Unlock()
	if e != nil {
		s.fail(ctx, st, e)
		return
	}
	inner := stripped(st.Raw)
	for _, to := range sessions {
		var b bytes.Buffer
		b.WriteString("<message from='")
		stanza.EscapeAttr(&b, fromJID.String())
		b.WriteString("' to='")
		stanza.EscapeAttr(&b, to.String())
		b.WriteString("' type='")
		typ := st.Type
		if typ == "" {
			typ = "normal"
		}
		b.WriteString(typ + "'")
		if st.ID != "" {
			b.WriteString(" id='")
			stanza.EscapeAttr(&b, st.ID)
			b.WriteString("'")
		}
		b.WriteString(">")
		b.Write(inner)
		b.WriteString("<x xmlns='" + NSUser + "'/><occupant-id xmlns='" + NSOccupantID + "' id='" + oid + "'/></message>")
		s.send(ctx, b.Bytes())
	}
}

func (r *room) allowsPM(from *occupant) bool {
	switch r.cfg.AllowPM {
	case "none":
		return false
	case "moderators":
		return from.role == roleModerator
	case "participants":
		return from.role != roleVisitor
	}
	return true
}
