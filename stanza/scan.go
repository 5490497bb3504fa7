package stanza

import (
	"bytes"
	"encoding/xml"
)

// rawAttr is one attribute of a start tag: its qualified name as written,
// its value still escaped, and its raw bytes (name='value'). All three are
// slices of the tag, so scanning allocates nothing.
type rawAttr struct {
	name  []byte
	value []byte
	raw   []byte
}

// is reports whether the attribute's qualified name is name.
func (a rawAttr) is(name string) bool { return string(a.name) == name }

// text returns the attribute's unescaped value.
func (a rawAttr) text() string { return unescape(a.value) }

// Attr returns the unescaped value of the attribute name (a qualified
// name as written, such as "node") of the start tag of raw, a
// well-formed element; "" when it has none.
func Attr(raw []byte, name string) string {
	var buf [8]rawAttr
	_, attrs := scanStartTag(raw[:StartLen(raw)], buf[:0])
	for _, a := range attrs {
		if a.is(name) {
			return a.text()
		}
	}
	return ""
}

// scanStartTag splits a well-formed start tag ("<name a='1' b=\"2\">" or
// "<name/>") into its qualified name and attributes, appended to attrs
// (pass a stack array's slice to avoid allocating). It trusts that the
// stream reader already checked well-formedness.
func scanStartTag(tag []byte, attrs []rawAttr) ([]byte, []rawAttr) {
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '>' && tag[i] != '/' {
		i++
	}
	name := tag[1:i]
	for {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || tag[i] == '>' || tag[i] == '/' {
			return name, attrs
		}
		start := i
		for i < len(tag) && tag[i] != '=' && !isSpace(tag[i]) {
			i++
		}
		aname := tag[start:i]
		for i < len(tag) && tag[i] != '\'' && tag[i] != '"' {
			i++
		}
		if i >= len(tag) {
			return name, attrs
		}
		quote := tag[i]
		i++
		vstart := i
		for i < len(tag) && tag[i] != quote {
			i++
		}
		if i >= len(tag) {
			return name, attrs
		}
		value := tag[vstart:i]
		i++
		attrs = append(attrs, rawAttr{name: aname, value: value, raw: tag[start:i]})
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unescape resolves the predefined entities and character references in an
// attribute value (the only ones the stream reader lets through).
func unescape(v []byte) string {
	if bytes.IndexByte(v, '&') < 0 {
		return string(v)
	}
	var s string
	// Decode "<a v='...'/>" with encoding/xml: correct for every reference.
	d := xml.NewDecoder(bytes.NewReader(append(append([]byte("<a v='"), bytes.ReplaceAll(v, []byte("'"), []byte("&apos;"))...), "'/>"...)))
	if tok, err := d.Token(); err == nil {
		if se, ok := tok.(xml.StartElement); ok && len(se.Attr) == 1 {
			s = se.Attr[0].Value
		}
	}
	return s
}

// InClientNS returns raw, a stanza as received on a client stream, standing
// alone in jabber:client: a stanza inherits its default namespace from the
// stream header (RFC 6120 §4.8.3), so one without its own gets
// xmlns='jabber:client' before it is nested in another namespace (a
// <forwarded/> of XEP-0297, for carbons and archive results). raw itself
// is returned when it declares one.
func InClientNS(raw []byte) []byte {
	end := StartLen(raw)
	var buf [8]rawAttr
	name, attrs := scanStartTag(raw[:end], buf[:0])
	for _, a := range attrs {
		if a.is("xmlns") {
			return raw
		}
	}
	at := 1 + len(name)
	out := make([]byte, 0, len(raw)+len(" xmlns='jabber:client'"))
	out = append(out, raw[:at]...)
	out = append(out, " xmlns='jabber:client'"...)
	return append(out, raw[at:]...)
}
