package mam

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// Namespaces that decide whether and how a message is archived.
const (
	nsSID     = "urn:xmpp:sid:0" // XEP-0359
	nsHints   = "urn:xmpp:hints" // XEP-0334
	nsCarbons = "urn:xmpp:carbons:2"
	nsClient  = "jabber:client"
)

// facts are what the archiving rules look at in a message's direct
// children.
type facts struct {
	body    bool // <body/>
	store   bool // <store xmlns='urn:xmpp:hints'/>
	noStore bool // <no-store/>, <no-storage/>, <no-permanent-store/>
	carbon  bool // a carbon itself (<sent/>, <received/>)
	sid     bool // a <stanza-id/> of XEP-0359 (which may need stripping)
}

func inspect(raw []byte) facts {
	var f facts
	for c := range stanza.Children(raw) {
		switch string(c.Space) {
		case "", nsClient:
			f.body = f.body || string(c.Local) == "body"
		case nsHints:
			switch string(c.Local) {
			case "store":
				f.store = true
			case "no-store", "no-storage", "no-permanent-store", "no-permanent-storage":
				f.noStore = true
			}
		case nsCarbons:
			f.carbon = f.carbon || string(c.Local) == "sent" || string(c.Local) == "received"
		case nsSID:
			f.sid = f.sid || string(c.Local) == "stanza-id"
		}
	}
	return f
}

// archived applies the archiving rules to a message of type typ: chat and
// normal messages (a missing or unknown type is normal, RFC 6121 §5.2.2)
// with a body or a <store/> hint, never one with a no-store hint, never
// a carbon, never groupchat (rooms keep their own archives), headline or
// error.
func (f facts) archived(typ string) bool {
	switch typ {
	case "groupchat", "headline", "error":
		return false
	}
	return (f.body || f.store) && !f.noStore && !f.carbon
}

// withoutStanzaIDs returns raw without its <stanza-id/> children whose
// 'by' is by (XEP-0359 §3.3: an entity that adds stanza-ids removes any
// that claim to be its own), or raw itself if it has none.
func withoutStanzaIDs(raw []byte, by string) []byte {
	var out []byte
	last := 0
	for c := range stanza.Children(raw) {
		if !c.Is(nsSID, "stanza-id") || stanza.Attr(c.Raw, "by") != by {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(raw))
		}
		out = append(out, raw[last:c.Start]...)
		last = c.Start + len(c.Raw)
	}
	if out == nil {
		return raw
	}
	return append(out, raw[last:]...)
}

// withStanzaID returns raw, a message with content (not <message/>), with
// <stanza-id xmlns='urn:xmpp:sid:0' by='by' id='id'/> as its last child.
// The start tag is unchanged.
func withStanzaID(raw []byte, by string, id int64) []byte {
	end := bytes.LastIndexByte(raw, '<')
	out := make([]byte, 0, len(raw)+len(by)+80)
	out = append(out, raw[:end]...)
	out = append(out, "<stanza-id xmlns='"+nsSID+"' by='"...)
	out = appendEscaped(out, by)
	out = append(out, "' id='"...)
	out = strconv.AppendInt(out, id, 10)
	out = append(out, "'/>"...)
	return append(out, raw[end:]...)
}

// appendEscaped appends s escaped for an attribute value.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// routing archives a message for a local account in that account's
// archive (router.Routing: whatever its origin, a local session, another
// server, the server itself) and stamps it with its stanza-id, so that
// the delivered message, an offline one and the carbons carry it. Any
// stanza-id claiming to be the account's is removed first, archived or
// not (XEP-0359 §3.3). A message from the account to itself is archived
// here once, as outgoing; one to another account was archived in the
// sender's archive when it was sent (sent).
func (s *service) routing(ctx context.Context, e *router.Routing) bool {
	st := e.Stanza
	if e.Quiet || st.Kind != stanza.Message || st.To.Localpart() == "" {
		return false
	}
	accountStr := bareString(st.To)
	if !s.router.IsLocal(domainOf(accountStr)) {
		return false
	}
	f := inspect(st.Raw)
	if !f.sid && !f.archived(st.Type) {
		return false
	}
	account := st.To.Bare()
	raw := st.Raw
	if f.sid {
		raw = withoutStanzaIDs(raw, accountStr)
	}
	if f.archived(st.Type) {
		dir, with := storage.Incoming, st.From
		if st.From.Bare().Equal(account) {
			dir = storage.Outgoing
		}
		if s.shallArchive(ctx, account, accountStr, with) {
			id := s.ids.Next()
			raw = withStanzaID(raw, accountStr, id)
			s.writer.Add(entry(accountStr, with, dir, id, raw))
		}
	}
	if len(raw) != len(st.Raw) {
		c := *st // the start tag, and so the addresses, are unchanged
		c.Raw = raw
		e.Stanza = &c
	}
	return false
}

// sent archives a message a local user sends to another address in the
// user's archive, as outgoing, and gives the next handlers (the sent
// carbons, XEP-0280 §8) the message stamped with its stanza-id, as
// Prosody does; c2s routes the message as the client sent it, so the
// recipient does not see the sender's archive ID. A message to the
// user's own account is left to routing.
func (s *service) sent(ctx context.Context, e *c2s.ClientStanza) bool {
	st := e.Stanza
	if st.Kind != stanza.Message {
		return false
	}
	account := st.From.Bare()
	if st.To.Bare().Equal(account) || st.To.Domainpart() == "" {
		return false
	}
	f := inspect(st.Raw)
	if !f.archived(st.Type) {
		return false
	}
	accountStr := bareString(account)
	if !s.shallArchive(ctx, account, accountStr, st.To) {
		return false
	}
	raw := st.Raw
	if f.sid {
		raw = withoutStanzaIDs(raw, accountStr)
	}
	id := s.ids.Next()
	raw = withStanzaID(raw, accountStr, id)
	s.writer.Add(entry(accountStr, st.To, storage.Outgoing, id, raw))
	c := *st
	c.Raw = raw
	e.Stanza = &c
	return false
}

// entry makes the archive entry of a message of account (whose bare JID
// is accountStr) exchanged with with.
func entry(accountStr string, with jid.JID, dir storage.Direction, id int64, raw []byte) storage.ArchiveEntry {
	at := strings.IndexByte(accountStr, '@') // a localpart has none
	user, host := accountStr[:at], accountStr[at+1:]
	bare, resource := splitJID(with)
	return storage.ArchiveEntry{Host: host, Username: user, ArchivedMessage: storage.ArchivedMessage{
		ID: id, With: bare, WithResource: resource, Direction: dir, Stanza: raw,
	}}
}

// The strings of JIDs on the message path, each made with one allocation
// (jid.JID's String takes two for a bare JID, three for a full one;
// every part accessor one).

// bareString returns j's bare JID as a string, as j.Bare().String().
func bareString(j jid.JID) string {
	if j.Localpart() == "" {
		return j.Domainpart()
	}
	return j.Localpart() + "@" + j.Domainpart()
}

// domainOf returns the domainpart of bare, a bare JID as a string.
func domainOf(bare string) string {
	return bare[strings.IndexByte(bare, '@')+1:] // a domainpart has no '@'
}

// splitJID returns j's bare JID as a string and its resourcepart, both
// slices of one string.
func splitJID(j jid.JID) (bare, resource string) {
	var full string
	if j.Localpart() == "" {
		full = j.Domainpart() + "/" + j.Resourcepart()
	} else {
		full = j.Localpart() + "@" + j.Domainpart() + "/" + j.Resourcepart()
	}
	// Neither a localpart nor a domainpart has a '/'.
	i := strings.IndexByte(full, '/')
	return full[:i], full[i+1:]
}
