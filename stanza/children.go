package stanza

import (
	"bytes"
	"iter"
)

// ChildElement is one direct child of a stanza, as Children yields it:
// its namespace (resolved as XML Namespaces say: its own default or
// prefix declaration, else its parent's; "" when none is declared, which
// on a client stream means jabber:client), its local name and its raw
// bytes, all slices of the stanza's bytes.
type ChildElement struct {
	Space, Local, Raw []byte
	// Start is where Raw begins in the stanza's bytes.
	Start int
}

// Is reports whether the child is {space}local.
func (c ChildElement) Is(space, local string) bool {
	return string(c.Space) == space && string(c.Local) == local
}

// Children yields the direct child elements of raw, a well-formed element
// as the stream reader passes it (no comments, processing instructions or
// DTD; CDATA sections allowed), in order. It scans the bytes without
// decoding them and allocates nothing: the hot path looks at children of
// most messages (message carbons, XEP-0280 §6).
func Children(raw []byte) iter.Seq[ChildElement] {
	return func(yield func(ChildElement) bool) {
		end := StartLen(raw)
		if end < 2 || raw[end-2] == '/' {
			return // <message/>
		}
		var buf [8]rawAttr
		_, pattrs := scanStartTag(raw[:end], buf[:0])
		parentNS := nsOf(pattrs, nil)
		depth := 0
		start := 0 // of the current depth-1 child
		var cur ChildElement
		i := end
		for {
			j := bytes.IndexByte(raw[i:], '<')
			if j < 0 {
				return
			}
			i += j
			switch {
			case bytes.HasPrefix(raw[i:], []byte("<![CDATA[")):
				k := bytes.Index(raw[i:], []byte("]]>"))
				if k < 0 {
					return
				}
				i += k + 3
				continue
			case i+1 < len(raw) && raw[i+1] == '/': // an end tag
				k := bytes.IndexByte(raw[i:], '>')
				if k < 0 {
					return
				}
				i += k + 1
				depth--
				if depth < 0 {
					return // the stanza's own end tag
				}
				if depth == 0 {
					cur.Raw = raw[start:i]
					if !yield(cur) {
						return
					}
				}
				continue
			}
			k := StartLen(raw[i:])
			tag := raw[i : i+k]
			self := k >= 2 && tag[k-2] == '/'
			if depth == 0 {
				var abuf [8]rawAttr
				name, attrs := scanStartTag(tag, abuf[:0])
				cur = ChildElement{Local: name, Start: i}
				prefix := []byte(nil)
				if c := bytes.IndexByte(name, ':'); c >= 0 {
					prefix, cur.Local = name[:c], name[c+1:]
				}
				if prefix == nil {
					cur.Space = nsOf(attrs, parentNS)
				} else {
					cur.Space = prefixNS(prefix, attrs, pattrs)
				}
				start = i
			}
			i += k
			if self {
				if depth == 0 {
					cur.Raw = raw[start:i]
					if !yield(cur) {
						return
					}
				}
				continue
			}
			depth++
		}
	}
}

// nsOf returns the default namespace attrs declare (xmlns), or inherited.
func nsOf(attrs []rawAttr, inherited []byte) []byte {
	for _, a := range attrs {
		if a.is("xmlns") {
			return a.value
		}
	}
	return inherited
}

// prefixNS resolves prefix against the child's declarations, then its
// parent's; when neither declares it (the stream reader refuses that),
// the prefix itself, as encoding/xml has it.
func prefixNS(prefix []byte, attrs, parent []rawAttr) []byte {
	for _, list := range [][]rawAttr{attrs, parent} {
		for _, a := range list {
			if len(a.name) == len(prefix)+6 && bytes.HasPrefix(a.name, []byte("xmlns:")) && bytes.Equal(a.name[6:], prefix) {
				return a.value
			}
		}
	}
	return prefix
}
