// Package stanza is the stanza envelope (RFC 6120 §8): the kind, the
// top-level attributes the server needs for routing, and the raw bytes as
// received, so that routing never re-encodes a stanza. It also builds stanza
// errors (RFC 6120 §8.3) and IQ replies.
package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
)

// Kind is one of the three stanza kinds (RFC 6120 §8.2).
type Kind uint8

// The stanza kinds.
const (
	Message Kind = iota + 1
	Presence
	IQ
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case Message:
		return "message"
	case Presence:
		return "presence"
	case IQ:
		return "iq"
	}
	return "unknown"
}

// KindOf maps a top-level element's local name to a Kind; 0 if it is not a
// stanza.
func KindOf(local string) Kind {
	switch local {
	case "message":
		return Message
	case "presence":
		return Presence
	case "iq":
		return IQ
	}
	return 0
}

// Stanza is one stanza as received: its routing attributes and its bytes.
// A Stanza is not modified after Parse; WithAddresses returns a copy.
type Stanza struct {
	Kind     Kind
	Type     string
	ID       string
	Lang     string
	From, To jid.JID
	// Raw is the whole element. The bytes are never modified.
	Raw []byte
	// startLen is the length of the start tag in Raw.
	startLen int
}

// ErrNotStanza is returned by Parse for an element that is not
// message, presence or iq.
var ErrNotStanza = errors.New("stanza: not a stanza")

// ParseElement is Parse for a whole element whose start tag's length the
// caller does not know (one the server built).
func ParseElement(raw []byte) (*Stanza, error) { return Parse(raw, StartLen(raw)) }

// Built returns the Stanza of raw, an element the server built, whose
// start tag is startLen bytes long and whose kind, type, id and
// addresses the caller knows: Parse without reading them again (a room
// sending one message to a thousand occupants parses no JID).
func Built(raw []byte, startLen int, kind Kind, typ, id string, from, to jid.JID) *Stanza {
	return &Stanza{Kind: kind, Type: typ, ID: id, From: from, To: to, Raw: raw, startLen: startLen}
}

// StartLen returns the length of the start tag of raw, a well-formed
// element: up to its first '>' outside an attribute value.
func StartLen(raw []byte) int {
	quote := byte(0)
	for i, c := range raw {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return len(raw)
}

// Parse reads the routing attributes of a stanza from its raw bytes, where
// startLen is the length of its start tag. raw must be well-formed XML (the
// stream reader guarantees it). A malformed 'to' or 'from' is returned as a
// *Error with condition jid-malformed (RFC 6120 §8.3.3.8), together with
// the Stanza so that the caller can reply to it.
func Parse(raw []byte, startLen int) (*Stanza, error) {
	var buf [8]rawAttr
	name, attrs := scanStartTag(raw[:startLen], buf[:0])
	s := &Stanza{Kind: KindOf(string(name)), Raw: raw, startLen: startLen}
	if s.Kind == 0 {
		return nil, ErrNotStanza
	}
	var badJID bool
	for _, a := range attrs {
		switch string(a.name) {
		case "type":
			s.Type = a.text()
		case "id":
			s.ID = a.text()
		case "xml:lang":
			s.Lang = a.text()
		case "to", "from":
			if len(a.value) == 0 {
				continue
			}
			j, err := jid.Parse(a.text())
			if err != nil {
				badJID = true
				continue
			}
			if a.is("to") {
				s.To = j
			} else {
				s.From = j
			}
		}
	}
	if badJID {
		return s, &Error{Type: Modify, Condition: JIDMalformed}
	}
	return s, nil
}

// IsError reports whether the stanza is itself an error (RFC 6120 §8.3.1):
// such a stanza is never answered with another error.
func (s *Stanza) IsError() bool { return s.Type == "error" }

// IsRequest reports whether s is an IQ get or set, which must get exactly
// one result or error (RFC 6120 §8.2.3).
func (s *Stanza) IsRequest() bool {
	return s.Kind == IQ && (s.Type == "get" || s.Type == "set")
}

// WithAddresses returns a copy of s whose 'from' and 'to' attributes are
// replaced (an empty JID removes the attribute). The rest of the bytes are
// kept as they are; this is how the server stamps the sender's address
// (RFC 6120 §8.1.2.1) so that a client can never spoof it.
func (s *Stanza) WithAddresses(from, to jid.JID) *Stanza {
	start := s.Raw[:s.startLen]
	var buf [8]rawAttr
	name, attrs := scanStartTag(start, buf[:0])
	var b bytes.Buffer
	b.Grow(len(s.Raw) + 64)
	b.WriteByte('<')
	b.Write(name)
	if !from.Equal(jid.JID{}) {
		writeAttr(&b, "from", from.String())
	}
	if !to.Equal(jid.JID{}) {
		writeAttr(&b, "to", to.String())
	}
	for _, a := range attrs {
		if a.is("from") || a.is("to") {
			continue
		}
		b.WriteByte(' ')
		b.Write(a.raw)
	}
	if bytes.HasSuffix(start, []byte("/>")) {
		b.WriteString("/>")
	} else {
		b.WriteByte('>')
	}
	startLen := b.Len()
	b.Write(s.Raw[s.startLen:])
	c := *s
	c.From, c.To = from, to
	c.Raw = b.Bytes()
	c.startLen = startLen
	return &c
}

// NewPresence returns an empty presence stanza of the given type ("" for
// available) from one address to another, as the server sends on a user's
// behalf (RFC 6121 §3, §4).
func NewPresence(from, to jid.JID, typ string) *Stanza {
	raw := []byte("<presence/>")
	if typ != "" {
		raw = []byte("<presence type='" + typ + "'/>")
	}
	st, _ := Parse(raw, len(raw))
	return st.WithAddresses(from, to)
}

// Payload returns the first child element of the stanza, as raw bytes, and
// its name with the namespace resolved (for an IQ, the element that
// qualifies the request, RFC 6120 §8.2.3). ok is false if there is none.
func (s *Stanza) Payload() (name xml.Name, raw []byte, ok bool) {
	// Scanned, not decoded (Children), unless its namespace is escaped.
	for c := range Children(s.Raw) {
		if bytes.IndexByte(c.Space, '&') >= 0 {
			return decodePayload(s.Raw)
		}
		return xml.Name{Space: string(c.Space), Local: string(c.Local)}, c.Raw, true
	}
	return xml.Name{}, nil, false
}

// decodePayload is Payload by encoding/xml, which unescapes.
func decodePayload(raw []byte) (xml.Name, []byte, bool) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, nil, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				if err := d.Skip(); err != nil {
					return xml.Name{}, nil, false
				}
				return t.Name, raw[off:d.InputOffset()], true
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return xml.Name{}, nil, false
			}
		}
	}
}

// Child reports whether the stanza has a direct child element with this
// namespace and local name, and returns it raw.
func (s *Stanza) Child(space, local string) ([]byte, bool) {
	for c := range Children(s.Raw) {
		if c.Is(space, local) {
			return c.Raw, true
		}
	}
	return nil, false
}

func writeAttr(b *bytes.Buffer, name, value string) {
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("='")
	EscapeAttr(b, value)
	b.WriteByte('\'')
}

// EscapeAttr writes s escaped for an attribute value or character data.
func EscapeAttr(b *bytes.Buffer, s string) {
	if !strings.ContainsAny(s, "<>&'\"") {
		b.WriteString(s)
		return
	}
	xml.EscapeText(b, []byte(s))
}

// Decode unmarshals a raw element (such as an IQ payload) into v.
func Decode(raw []byte, v any) error {
	return xml.Unmarshal(raw, v)
}

// Escape returns s escaped for an attribute value or character data.
func Escape(s string) string {
	if !strings.ContainsAny(s, "<>&'\"") {
		return s
	}
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
