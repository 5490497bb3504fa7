package stanza

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
)

// SelfContained reports whether raw is one element (whitespace around it
// aside) that declares its own default namespace and every prefix it
// uses, so that its bytes mean the same when stored and later sent on
// their own, in another stanza (RFC 6120 §4.8: an element cut out of a
// stream inherits the stream's and its ancestors' declarations; one that
// relies on them does not travel). Private XML storage, vCards and PEP
// items keep payloads that must pass it.
func SelfContained(raw []byte) bool {
	type scope struct {
		prefixes   []string
		hasDefault bool
	}
	var stack []scope
	declared := func(prefix string) bool {
		for i := len(stack) - 1; i >= 0; i-- {
			if prefix == "" && stack[i].hasDefault {
				return true
			}
			if prefix != "" && slices.Contains(stack[i].prefixes, prefix) {
				return true
			}
		}
		return false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	roots := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return len(stack) == 0 && roots == 1
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				roots++
			}
			var sc scope
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					sc.prefixes = append(sc.prefixes, a.Name.Local)
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					sc.hasDefault = true
				}
			}
			stack = append(stack, sc)
			if !declared(t.Name.Space) {
				return false
			}
			for _, a := range t.Attr {
				if pr := a.Name.Space; pr != "" && pr != "xmlns" && pr != "xml" && !declared(pr) {
					return false
				}
			}
		case xml.EndElement:
			if len(stack) == 0 {
				return false
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
				return false
			}
		}
	}
}
