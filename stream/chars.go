package stream

import (
	"bytes"
	"encoding/xml"
	"strings"
	"unicode/utf8"
)

// This file checks the lexical rules of XML 1.0 (Fifth Edition) and
// Namespaces in XML 1.0 for what the scanner in reader.go delimits.

// parseTag checks a complete start tag "<name attr='v' ...>" or "<.../>"
// (XML 1.0 §3.1): a qualified name, attributes separated by whitespace,
// quoted values with valid characters and references, no attribute twice.
// It leaves the end of the name in r.nameEnd and the attributes in r.attrs,
// and reports an empty-element tag.
func (r *Reader) parseTag(tag []byte) (empty bool, err error) {
	r.attrs = r.attrs[:0]
	end := len(tag) - 1 // the '>'
	i := 1
	for i < end && !isSpace(tag[i]) && tag[i] != '/' {
		i++
	}
	r.nameEnd = i
	if !isQName(tag[1:i]) {
		return false, wf("bad element name")
	}
	for {
		j := i
		for j < end && isSpace(tag[j]) {
			j++
		}
		if j == end {
			return false, nil
		}
		if tag[j] == '/' {
			if j+1 == end {
				return true, nil
			}
			return false, wf("bad tag")
		}
		if j == i {
			return false, wf("no whitespace before an attribute")
		}
		a := attrSpan{n0: j, colon: -1}
		for j < end && tag[j] != '=' && !isSpace(tag[j]) {
			if tag[j] == ':' && a.colon < 0 {
				a.colon = j
			}
			j++
		}
		a.n1 = j
		if !isQName(tag[a.n0:a.n1]) {
			return false, wf("bad attribute name")
		}
		for j < end && isSpace(tag[j]) {
			j++
		}
		if j == end || tag[j] != '=' {
			return false, wf("attribute without a value")
		}
		j++
		for j < end && isSpace(tag[j]) {
			j++
		}
		if j == end || tag[j] != '\'' && tag[j] != '"' {
			return false, wf("unquoted attribute value")
		}
		a.v0 = j + 1
		k := bytes.IndexByte(tag[a.v0:end], tag[j])
		if k < 0 {
			return false, wf("unterminated attribute value")
		}
		a.v1 = a.v0 + k
		if a.amp, err = checkValue(tag[a.v0:a.v1]); err != nil {
			return false, err
		}
		if r.dupAttr(tag, a) {
			return false, wf("duplicate attribute")
		}
		r.attrs = append(r.attrs, a)
		i = a.v1 + 1
	}
}

// dupAttr reports whether a's qualified name is already in r.attrs.
func (r *Reader) dupAttr(tag []byte, a attrSpan) bool {
	name := tag[a.n0:a.n1]
	if len(r.attrs) > 16 {
		// Many attributes: a set keeps a crafted tag linear.
		if len(r.attrs) == 17 {
			r.attrSet = make(map[string]struct{}, 32)
			for _, b := range r.attrs {
				r.attrSet[string(tag[b.n0:b.n1])] = struct{}{}
			}
		}
		if _, ok := r.attrSet[string(name)]; ok {
			return true
		}
		r.attrSet[string(name)] = struct{}{}
		return false
	}
	for _, b := range r.attrs {
		if bytes.Equal(tag[b.n0:b.n1], name) {
			return true
		}
	}
	return false
}

// checkValue checks an attribute value (XML 1.0 §2.3 AttValue) and reports
// whether it holds references.
func checkValue(v []byte) (amp bool, err error) {
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '&':
			k := bytes.IndexByte(v[i:], ';')
			if k < 0 {
				return false, wf("bad reference")
			}
			if err := checkRef(v[i+1 : i+k]); err != nil {
				return false, err
			}
			amp = true
			i += k + 1
		case c == '<':
			return false, wf("'<' in an attribute value")
		case c >= 0x80:
			size := runeAt(v[i:])
			if size <= 0 {
				return false, wf("invalid character")
			}
			i += size
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			return false, wf("invalid character")
		default:
			i++
		}
	}
	return amp, nil
}

// checkRef checks the reference "&name;": the five predefined entities and
// character references are allowed (XML 1.0 §4.1, §4.6), any other entity
// is restricted (RFC 6120 §11.1).
func checkRef(name []byte) error {
	switch string(name) {
	case "lt", "gt", "amp", "quot", "apos":
		return nil
	}
	if len(name) == 0 {
		return wf("bad reference")
	}
	if name[0] != '#' {
		if isName(name) {
			return restricted("entity reference")
		}
		return wf("bad reference")
	}
	if _, ok := charRef(name); !ok {
		return wf("bad character reference")
	}
	return nil
}

// charRef decodes "#65" or "#x41" into a valid character.
func charRef(name []byte) (rune, bool) {
	digits, base := name[1:], rune(10)
	if len(digits) > 0 && digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 {
		return 0, false
	}
	var v rune
	for _, c := range digits {
		var d rune
		switch {
		case '0' <= c && c <= '9':
			d = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		v = v*base + d
		if v > utf8.MaxRune {
			return 0, false
		}
	}
	return v, isChar(v)
}

// runeAt checks the multi-byte character at the start of b: its size, 0 if
// b holds only part of it, -1 if it is invalid UTF-8 or not an XML Char.
func runeAt(b []byte) int {
	if !utf8.FullRune(b) {
		return 0
	}
	c, size := utf8.DecodeRune(b)
	if c == utf8.RuneError && size == 1 || !isChar(c) {
		return -1
	}
	return size
}

// isChar reports an XML Char (XML 1.0 §2.2).
func isChar(c rune) bool {
	return c == 0x09 || c == 0x0A || c == 0x0D ||
		0x20 <= c && c <= 0xD7FF || 0xE000 <= c && c <= 0xFFFD || 0x10000 <= c && c <= utf8.MaxRune
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// isQName reports a qualified name (Namespaces in XML §4): an NCName,
// or two joined by a colon.
func isQName(b []byte) bool {
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		return isNCName(b[:i]) && isNCName(b[i+1:])
	}
	return isNCName(b)
}

func isNCName(b []byte) bool {
	return bytes.IndexByte(b, ':') < 0 && isName(b)
}

// isName reports an XML Name (XML 1.0 §2.3). Names are ASCII in every XMPP
// protocol; others are checked against encoding/xml's tables, which are
// those of XML 1.0 Appendix B.
func isName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':':
		case '0' <= c && c <= '9' || c == '-' || c == '.':
			if i == 0 {
				return false
			}
		case c >= 0x80:
			return nonASCIIName(b)
		default:
			return false
		}
	}
	return true
}

func nonASCIIName(b []byte) bool {
	if !utf8.Valid(b) || bytes.ContainsAny(b, "/>'\"=") {
		return false
	}
	for _, c := range string(b) {
		if !isChar(c) || c == 0xFFFD {
			return false
		}
	}
	d := xml.NewDecoder(strings.NewReader("<" + string(b) + "/>"))
	tok, err := d.RawToken()
	if err != nil {
		return false
	}
	se, ok := tok.(xml.StartElement)
	if !ok || len(se.Attr) != 0 {
		return false
	}
	_, err = d.RawToken()
	return err == nil
}

// unescape resolves the references in a value checked by checkValue or in
// character data.
func unescape(v []byte) string {
	i := bytes.IndexByte(v, '&')
	if i < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for i >= 0 {
		out = append(out, v[:i]...)
		v = v[i+1:]
		k := bytes.IndexByte(v, ';')
		if k < 0 {
			return string(append(out, v...))
		}
		name := v[:k]
		v = v[k+1:]
		switch string(name) {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			if len(name) > 0 && name[0] == '#' {
				if c, ok := charRef(name); ok {
					out = utf8.AppendRune(out, c)
				}
			}
		}
		i = bytes.IndexByte(v, '&')
	}
	return string(append(out, v...))
}

// attrValue returns the unescaped value of a, an attribute of tag.
func attrValue(tag []byte, a attrSpan) string {
	if a.amp {
		return unescape(tag[a.v0:a.v1])
	}
	return string(tag[a.v0:a.v1])
}

// checkBinding checks the declaration xmlns:prefix='v' (Namespaces in XML
// §3): xmlns cannot be declared, xml only as itself, no prefix can be
// undeclared, and neither reserved namespace bound to another prefix.
func checkBinding(prefix, v []byte) error {
	switch {
	case string(prefix) == "xmlns":
		return wf("the xmlns prefix cannot be declared")
	case string(prefix) == "xml":
		if string(v) != xmlURI {
			return wf("the xml prefix cannot be rebound")
		}
	case len(v) == 0:
		return wf("empty namespace name for prefix " + string(prefix))
	case string(v) == xmlURI || string(v) == xmlnsURI:
		return wf("reserved namespace name")
	}
	return nil
}
