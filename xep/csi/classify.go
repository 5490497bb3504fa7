package csi

import (
	"bytes"

	"github.com/starling-xmpp/starling/stanza"
)

// class is what an inactive session's holder does with a stanza.
type class uint8

const (
	// urgent: released at once, after what was held before it.
	urgent class = iota
	// ordered: held, in order (receipts, chat markers, PEP events).
	ordered
	// latest: held, and replaced by the next one of the same kind from
	// the same sender (presence updates, chat states).
	latest
)

// The kinds of stanza that only the latest one of per sender is kept.
const (
	kindPresence  byte = 'p'
	kindChatState byte = 'c'
)

// Namespaces the rules look at.
const (
	nsClient     = "jabber:client"
	nsChatStates = "http://jabber.org/protocol/chatstates" // XEP-0085
	nsReceipts   = "urn:xmpp:receipts"                     // XEP-0184
	nsMarkers    = "urn:xmpp:chat-markers:0"               // XEP-0333
	nsHints      = "urn:xmpp:hints"                        // XEP-0334
	nsSID        = "urn:xmpp:sid:0"                        // XEP-0359
	nsDelay      = "urn:xmpp:delay"                        // XEP-0203
	nsLegacyDly  = "jabber:x:delay"                        // XEP-0091
	nsCarbons    = "urn:xmpp:carbons:2"                    // XEP-0280
	nsForward    = "urn:xmpp:forward:0"                    // XEP-0297
	nsPubSubEvt  = "http://jabber.org/protocol/pubsub#event"
	nsMUCUser    = "http://jabber.org/protocol/muc#user" // XEP-0045
)

// verdict is a stanza's class and, for latest, what it replaces: the
// kind and the sender ('from', as written in the stanza).
type verdict struct {
	class class
	kind  byte
	from  []byte
}

// classify decides what an inactive session does with raw, one stanza as
// the router delivers it. It reads the start tag and the direct children
// (a carbon's forwarded message, a MUC presence's status codes) without
// decoding anything, and allocates nothing.
//
// Urgent: IQs; presence other than availability (subscription requests
// and answers, errors); a MUC presence about the user itself (status 110:
// a join completed, a kick); messages of type error, with a <body/> or a
// <subject/>, carbons of such messages (XEP-0280), and messages with any
// payload not known to be unimportant (encrypted payloads such as OMEMO,
// invitations, calls (XEP-0353), MAM results, reactions, …); anything
// that is not a stanza.
//
// Held, latest only per sender: available and unavailable presence;
// messages that carry chat states (XEP-0085) and nothing else of note.
//
// Held in order: bodiless messages that carry only receipts (XEP-0184),
// chat markers (XEP-0333), PEP events (XEP-0163), chat states together
// with those, and what goes with them (hints, stanza ids, delays,
// <thread/>); carbons of such messages; headline messages without a
// body, whatever they carry (ephemeral by definition: Prosody's
// mod_csi_simple holds them all).
func classify(raw []byte) verdict {
	name, typ, from := startTag(raw)
	switch string(name) {
	case "presence":
		switch string(typ) {
		case "", "unavailable":
			if bytes.Contains(raw, []byte(nsMUCUser)) && mucSelf(raw) {
				return verdict{}
			}
			return verdict{class: latest, kind: kindPresence, from: from}
		}
		return verdict{}
	case "message":
		c := message(raw, typ, true)
		if c == latest {
			return verdict{class: latest, kind: kindChatState, from: from}
		}
		return verdict{class: c}
	}
	return verdict{} // an IQ, or not a stanza
}

// message classifies a message of type typ; top is false for one a carbon
// forwards.
func message(raw, typ []byte, top bool) class {
	if string(typ) == "error" {
		return urgent
	}
	var chatState, other, unknown bool
	for c := range stanza.Children(raw) {
		switch string(c.Space) {
		case "", nsClient:
			switch string(c.Local) {
			case "body", "subject":
				return urgent
			case "thread":
			default:
				unknown = true
			}
		case nsChatStates:
			chatState = true
		case nsReceipts, nsMarkers, nsPubSubEvt:
			other = true
		case nsHints, nsSID, nsDelay, nsLegacyDly:
		case nsCarbons:
			switch string(c.Local) {
			case "sent", "received":
				if !top || carbon(c.Raw) == urgent {
					return urgent
				}
				other = true
			case "private":
			default:
				unknown = true
			}
		default:
			unknown = true
		}
	}
	switch {
	case string(typ) == "headline":
		return ordered
	case unknown:
		return urgent
	case chatState && !other:
		return latest
	}
	return ordered
}

// carbon classifies the message a <sent/> or <received/> carbon forwards.
func carbon(raw []byte) class {
	for f := range stanza.Children(raw) {
		if !f.Is(nsForward, "forwarded") {
			continue
		}
		for m := range stanza.Children(f.Raw) {
			if string(m.Local) == "message" {
				_, typ, _ := startTag(m.Raw)
				return message(m.Raw, typ, false)
			}
		}
	}
	return urgent
}

// mucSelf reports whether a presence carries <x xmlns='…muc#user'/> with
// <status code='110'/>: it is about the user's own occupant (XEP-0045
// §7.2.2), such as the end of a join or a kick.
func mucSelf(raw []byte) bool {
	for x := range stanza.Children(raw) {
		if !x.Is(nsMUCUser, "x") {
			continue
		}
		for s := range stanza.Children(x.Raw) {
			if string(s.Local) == "status" && string(attr(s.Raw[:stanza.StartLen(s.Raw)], "code")) == "110" {
				return true
			}
		}
	}
	return false
}

// startTag returns the local name of raw's element and the raw values of
// its 'type' and 'from' attributes (as written: escaped), nil when absent.
func startTag(raw []byte) (name, typ, from []byte) {
	tag := raw[:stanza.StartLen(raw)]
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	name = tag[min(1, len(tag)):i]
	if c := bytes.IndexByte(name, ':'); c >= 0 {
		name = name[c+1:]
	}
	eachAttr(tag[i:], func(k, v []byte) {
		switch string(k) {
		case "type":
			typ = v
		case "from":
			from = v
		}
	})
	return name, typ, from
}

// attr returns the raw value of the attribute key of a start tag.
func attr(tag []byte, key string) (val []byte) {
	if i := bytes.IndexAny(tag, " \t\r\n"); i >= 0 {
		eachAttr(tag[i:], func(k, v []byte) {
			if string(k) == key {
				val = v
			}
		})
	}
	return val
}

// eachAttr calls f with each attribute's name and raw value in s, the
// rest of a well-formed start tag after its element name.
func eachAttr(s []byte, f func(k, v []byte)) {
	for {
		eq := bytes.IndexByte(s, '=')
		if eq < 0 {
			return
		}
		k := bytes.TrimSpace(s[:eq])
		s = s[eq+1:]
		q := 0
		for q < len(s) && s[q] != '\'' && s[q] != '"' {
			q++
		}
		if q == len(s) {
			return
		}
		end := bytes.IndexByte(s[q+1:], s[q])
		if end < 0 {
			return
		}
		f(k, s[q+1:q+1+end])
		s = s[q+1+end+1:]
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
