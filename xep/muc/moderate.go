package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"time"

	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Message moderation (XEP-0425): a moderator retracts an archived
// message by its stanza-id. The room tells every occupant — in the
// form of 0.3 (urn:xmpp:message-moderate:1 with XEP-0424's retract) and
// of the earlier versions clients still read (:0 in XEP-0422's
// apply-to) —, archives that notice for those who sync later, and
// replaces the message in its archive and history by a tombstone (§6).

const (
	nsModerate0 = "urn:xmpp:message-moderate:0"
	nsModerate1 = "urn:xmpp:message-moderate:1"
	nsRetract0  = "urn:xmpp:message-retract:0"
	nsRetract1  = "urn:xmpp:message-retract:1"
	nsFasten    = "urn:xmpp:fasten:0"
)

// moderateXML is a request in either form.
type moderateXML struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	// 0.3: <moderate id><retract/><reason/></moderate>
	Retract *struct{} `xml:"urn:xmpp:message-retract:1 retract"`
	Reason  string    `xml:"reason"`
	// Before: <apply-to id><moderate><retract/><reason/></moderate></apply-to>
	Moderate *struct {
		Retract *struct{} `xml:"urn:xmpp:message-retract:0 retract"`
		Reason  string    `xml:"reason"`
	} `xml:"urn:xmpp:message-moderate:0 moderate"`
}

// moderate answers a moderation request to the room.
func (s *Service) moderate(ctx context.Context, r *room, st *stanza.Stanza, payload []byte) {
	var q moderateXML
	if st.Type != "set" || xml.Unmarshal(payload, &q) != nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	reason := q.Reason
	retract := q.Retract != nil
	if q.XMLName.Space == nsFasten {
		retract = q.Moderate != nil && q.Moderate.Retract != nil
		if q.Moderate != nil {
			reason = q.Moderate.Reason
		}
	}
	id, err := strconv.ParseInt(q.ID, 10, 64)
	if !retract || err != nil || id <= 0 {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: "a retraction of a message by its stanza-id is needed"})
		return
	}
	r.mu.Lock()
	mod := r.byReal(st.From)
	var modJID, modID string
	archiving := r.archiving()
	if mod != nil {
		modJID, modID = r.occupantJID(mod.nick).String(), mod.id
	}
	r.mu.Unlock()
	switch {
	case mod == nil || mod.role != roleModerator:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only moderators moderate messages"})
		return
	case !archiving || s.writer == nil:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "this room keeps no messages"})
		return
	}
	if err := s.writer.Flush(ctx); err != nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	name := r.jid.Localpart()
	page, err := s.Store.QueryMUCArchive(ctx, s.Domain, name, storage.ArchiveQuery{IDs: []int64{id}})
	if err != nil || len(page.Messages) == 0 {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "no such message in the room's archive"})
		return
	}
	old := page.Messages[0]
	tomb := tombstone(old.Stanza, modJID, modID, reason, s.now())
	if err := s.Store.ReplaceMUCArchived(ctx, s.Domain, name, id, tomb); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.Log.Error("replacing a moderated message failed", "room", r.jid.String(), "err", err)
		s.fail(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}

	// The notice, to everyone and into the archive.
	var inner bytes.Buffer
	inner.WriteString("<retract xmlns='" + nsRetract1 + "' id='" + q.ID + "'><moderated xmlns='" + nsModerate1 + "' by='")
	stanza.EscapeAttr(&inner, modJID)
	inner.WriteString("'><occupant-id xmlns='" + NSOccupantID + "' id='" + modID + "'/></moderated>")
	writeReason(&inner, reason)
	inner.WriteString("</retract><apply-to xmlns='" + nsFasten + "' id='" + q.ID + "'><moderated xmlns='" + nsModerate0 + "' by='")
	stanza.EscapeAttr(&inner, modJID)
	inner.WriteString("'><retract xmlns='" + nsRetract0 + "'/>")
	writeReason(&inner, reason)
	inner.WriteString("</moderated></apply-to>")
	sid := s.ids.Next()
	inner.WriteString(r.stanzaID(sid))
	notice := inner.Bytes()
	from := r.jid.String()
	idAttr := "moderation-" + strconv.FormatInt(sid, 10)

	r.mu.Lock()
	tombSID := r.stanzaID(id)
	for i, h := range r.history {
		if bytes.Contains(h.inner, []byte(tombSID)) {
			r.history[i].inner = tombstoneInner(h.inner, modJID, modID, reason, s.now())
		}
	}
	to := r.sessions()
	done := r.handOff()
	defer done()
	s.writer.Add(storage.MUCArchiveEntry{Service: s.Domain, Room: name, ArchivedMessage: storage.ArchivedMessage{
		ID: sid, With: from, Stanza: archived(from, idAttr, notice)}})
	s.result(ctx, st, nil)
	for _, t := range to {
		raw, n := groupchatMessage(from, t, idAttr, notice)
		s.Router.Route(ctx, stanza.Built(raw, n, stanza.Message, "groupchat", idAttr, r.jid, t))
	}
}

func writeReason(b *bytes.Buffer, reason string) {
	if reason != "" {
		b.WriteString("<reason>" + stanza.Escape(reason) + "</reason>")
	}
}

// tombstone is an archived message with what it said replaced (§6): its
// occupant-id and stanza-id kept, a <retracted/> saying who moderated
// it, when and why.
func tombstone(raw []byte, by, byID, reason string, at time.Time) []byte {
	inner := content(raw)
	if inner == nil {
		return raw
	}
	var b bytes.Buffer
	b.Write(raw[:stanza.StartLen(raw)])
	b.Write(tombstoneInner(inner, by, byID, reason, at))
	b.WriteString("</message>")
	return b.Bytes()
}

// tombstoneInner keeps, of a message's children, its occupant-id and
// stanza-id, and adds the <retracted/>.
func tombstoneInner(inner []byte, by, byID, reason string, at time.Time) []byte {
	var b bytes.Buffer
	wrapped := append(append([]byte("<message>"), inner...), "</message>"...)
	for c := range stanza.Children(wrapped) {
		if c.Is(NSOccupantID, "occupant-id") || c.Is(nsSID, "stanza-id") {
			b.Write(c.Raw)
		}
	}
	b.WriteString("<retracted xmlns='" + nsRetract1 + "' stamp='" + at.UTC().Format("2006-01-02T15:04:05Z") + "'><moderated xmlns='" + nsModerate1 + "' by='")
	stanza.EscapeAttr(&b, by)
	b.WriteString("'><occupant-id xmlns='" + NSOccupantID + "' id='" + byID + "'/></moderated>")
	writeReason(&b, reason)
	b.WriteString("</retracted>")
	return b.Bytes()
}
