package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// groupchat is §7.4 (and §8.1, a subject change): an occupant's message
// to everyone, from its occupant JID, with its occupant-id (XEP-0421).
func (s *Service) groupchat(ctx context.Context, r *room, st *stanza.Stanza) {
	subject, hasSubject := clientChild(st.Raw, "subject")
	_, hasBody := clientChild(st.Raw, "body")
	r.mu.Lock()
	o := r.byReal(st.From)
	var e *stanza.Error
	switch {
	case o == nil:
		e = &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable, Text: "only occupants may send messages to the room"}
	case o.role == roleVisitor:
		e = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "you have no voice in this room"} // §7.4, §8.6
	case hasSubject && !hasBody && !r.cfg.ChangeSubject && o.role != roleModerator:
		e = &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only moderators may change the subject"} // §8.1
	case r.flooding(o, s.now(), s.Options()):
		e = errFlood
	}
	if e != nil {
		r.mu.Unlock()
		s.fail(ctx, st, e)
		return
	}
	fromJID := r.occupantJID(o.nick)
	from := fromJID.String()
	var inner bytes.Buffer
	inner.Write(stripped(st.Raw))
	inner.WriteString("<occupant-id xmlns='" + NSOccupantID + "' id='" + o.id + "'/>")
	var entry *storage.MUCArchiveEntry
	if hasBody && s.writer != nil && r.archiving() {
		id := s.ids.Next()
		inner.WriteString(r.stanzaID(id))
		entry = &storage.MUCArchiveEntry{Service: s.Domain, Room: r.jid.Localpart(), ArchivedMessage: storage.ArchivedMessage{
			ID: id, With: r.jid.String(), WithResource: o.nick, Stanza: archived(from, st.ID, inner.Bytes())}}
	}
	var sn snapshot
	if hasSubject && !hasBody {
		var t struct {
			Text string `xml:",chardata"`
		}
		xml.Unmarshal(subject, &t)
		r.subject, r.subjectFrom = t.Text, from
		sn = r.snapshot()
	} else if hasBody {
		r.history = append(r.history, historyMessage{from: from, id: st.ID, inner: inner.Bytes(), at: s.now(), chars: utf8.RuneCount(inner.Bytes())})
		if len(r.history) > historyKept {
			r.history = r.history[len(r.history)-historyKept:]
		}
	}
	to := r.sessions()
	defer r.handOff()()
	if sn.version != 0 {
		s.persist(ctx, r, sn)
	}
	if entry != nil {
		s.writer.Add(*entry)
	}
	for _, t := range to {
		raw, n := groupchatMessage(from, t, st.ID, inner.Bytes())
		s.Router.Route(ctx, stanza.Built(raw, n, stanza.Message, "groupchat", st.ID, fromJID, t))
	}
}

// groupchatMessage is the copy of a message for one occupant session,
// and the length of its start tag.
func groupchatMessage(from string, to jid.JID, id string, inner []byte) ([]byte, int) {
	var b bytes.Buffer
	b.Grow(len(inner) + 128)
	b.WriteString("<message type='groupchat' from='")
	stanza.EscapeAttr(&b, from)
	b.WriteString("' to='")
	stanza.EscapeAttr(&b, to.String())
	b.WriteString("'")
	if id != "" {
		b.WriteString(" id='")
		stanza.EscapeAttr(&b, id)
		b.WriteString("'")
	}
	b.WriteString(">")
	n := b.Len()
	b.Write(inner)
	b.WriteString("</message>")
	return b.Bytes(), n
}
