package stanza

import (
	"bytes"
	"encoding/xml"
)

// rawAttr is one attribute of a start tag: its qualified name as written,
// its unescaped value, and its raw bytes (name='value').
type rawAttr struct {
	name  string
	value string
	raw   []byte
}

// scanStartTag splits a well-formed start tag ("<name a='1' b=\"2\">" or
// "<name/>") into its qualified name and attributes. It trusts that the
// stream reader already checked well-formedness.
func scanStartTag(tag []byte) (string, []rawAttr) {
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '>' && tag[i] != '/' {
		i++
	}
	name := string(tag[1:i])
	var attrs []rawAttr
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
		aname := string(tag[start:i])
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
		attrs = append(attrs, rawAttr{name: aname, value: unescape(value), raw: tag[start:i]})
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
