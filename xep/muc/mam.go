package muc

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Room archives: XEP-0313 on the room's JID (§5 of XEP-0313 for MUC).
// A persistent room with muc#roomconfig_enablelogging archives each
// message with a body as it was broadcast, stamped with a stanza-id by
// the room (XEP-0359), through a group-commit writer; its occupants are
// told with status 170 (XEP-0045 §7.2.12). Anyone who may enter the room
// may query it: its members (and admins and owners) for a members-only
// room, anyone not banned otherwise; a query's 'with' is an occupant
// JID. The last messages are the history of a room loaded at start.

const nsSID = "urn:xmpp:sid:0"

// archiving reports whether the room archives its messages; r.mu is
// held.
func (r *room) archiving() bool {
	return r.cfg.Archive && r.cfg.Persistent && !r.locked && !r.destroyed
}

// stanzaID is the XEP-0359 element of a message archived as id.
func (r *room) stanzaID(id int64) string {
	return "<stanza-id xmlns='" + nsSID + "' by='" + stanza.Escape(r.jid.String()) + "' id='" + strconv.FormatInt(id, 10) + "'/>"
}

// archived is the stored form of a broadcast message: as sent, without
// a 'to'.
func archived(from, id string, inner []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(inner) + 96)
	b.WriteString("<message type='groupchat' from='")
	stanza.EscapeAttr(&b, from)
	b.WriteString("'")
	if id != "" {
		b.WriteString(" id='")
		stanza.EscapeAttr(&b, id)
		b.WriteString("'")
	}
	b.WriteString(">")
	b.Write(inner)
	b.WriteString("</message>")
	return b.Bytes()
}

// mayQuery reports whether from may read the room's archive; r.mu is
// held.
func (r *room) mayQuery(aff string) bool {
	if aff == affOutcast {
		return false
	}
	return !r.cfg.MembersOnly || rank(aff) >= rank(affMember)
}

// mamQuery answers a query of the room's archive (XEP-0313 §4 on the
// room): the form for a get, the results then <fin/> for a set.
func (s *Service) mamQuery(ctx context.Context, r *room, st *stanza.Stanza, ns string, payload []byte) {
	r.mu.Lock()
	on, may := r.cfg.Persistent && r.cfg.Archive && s.writer != nil, r.mayQuery(r.affiliationOf(st.From.Bare()))
	r.mu.Unlock()
	switch {
	case !on:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable, Text: "this room keeps no archive"})
		return
	case !may:
		s.fail(ctx, st, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden, Text: "only the room's members read its archive"})
		return
	case st.Type == "get":
		s.result(ctx, st, archive.FormFields(ns))
		return
	}
	var el archive.QueryElement
	if xml.Unmarshal(payload, &el) != nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	if el.Node != "" {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: "a room's archive has no nodes"})
		return
	}
	req, err := archive.ParseQuery(ns, &el, s.Options().MaxPageSize)
	if err != nil {
		var se *stanza.Error
		if errors.As(err, &se) {
			s.fail(ctx, st, se)
		}
		return
	}
	if req.Q.With != "" && req.Q.With != r.jid.String() {
		// 'with' names an occupant JID of this room; anyone else has
		// sent nothing here.
		s.result(ctx, st, archive.Fin(ns, el.QueryID, nil, storage.ArchivePage{Complete: true, Count: 0}))
		return
	}
	if err := s.writer.Flush(ctx); err != nil {
		s.fail(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	q := req.Q
	q.Max = max(req.Max, 1)
	q.CountLimit = archive.CountLimit
	page, err := s.Store.QueryMUCArchive(ctx, s.Domain, r.jid.Localpart(), q)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.fail(ctx, st, archive.ErrItemUnknown)
		return
	case err != nil:
		s.Log.Error("room archive query failed", "room", r.jid.String(), "err", err)
		s.fail(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return
	}
	if req.Max == 0 {
		page.Messages, page.Complete = nil, false
	}
	msgs, cut := archive.Fit(page.Messages, 256<<10, q.Last)
	if cut {
		page.Complete = false
	}
	if req.Flip {
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	to, from := st.From.String(), r.jid.String()
	for _, m := range msgs {
		s.send(ctx, archive.ResultMessage(ns, to, from, el.QueryID, m))
	}
	s.result(ctx, st, archive.Fin(ns, el.QueryID, msgs, page))
}

// appendArchive writes a batch of room messages.
func (s *Service) appendArchive(ctx context.Context, batch []storage.MUCArchiveEntry) error {
	return s.Store.AppendMUCArchive(ctx, batch)
}

// loadHistory fills a loaded room's history from its archive.
func (s *Service) loadHistory(ctx context.Context, r *room) {
	page, err := s.Store.QueryMUCArchive(ctx, s.Domain, r.jid.Localpart(), storage.ArchiveQuery{Max: historyKept, Last: true})
	if err != nil {
		s.Log.Error("reading a room's history failed", "room", r.jid.String(), "err", err)
		return
	}
	for _, m := range page.Messages {
		st, err := stanza.ParseElement(m.Stanza)
		if err != nil {
			continue
		}
		inner := content(m.Stanza)
		r.history = append(r.history, historyMessage{from: st.From.String(), id: st.ID, inner: bytes.Clone(inner), at: m.Time(), chars: utf8.RuneCount(inner)})
	}
}

// purgeLoop removes, every purge interval, the messages past the
// retention.
func (s *Service) purgeLoop(stop <-chan struct{}) {
	for {
		t := time.NewTimer(s.Options().PurgeInterval.Duration)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		ret := s.Options().Retention.Duration
		if ret <= 0 {
			continue
		}
		n, err := s.Store.PurgeMUCArchive(context.Background(), s.Domain, s.now().Add(-ret))
		switch {
		case err != nil:
			s.Log.Error("purging the room archives failed", "err", err)
		case n > 0:
			s.Log.Info("room archives purged", "messages", n, "retention", ret)
		}
	}
}
