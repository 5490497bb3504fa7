package pie

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// xmlNS is the namespace of the xml: prefix (xml:lang).
const xmlNS = "http://www.w3.org/XML/1998/namespace"

// node is an XML element read from a file or a stored document: its
// resolved name, its attributes without namespace declarations (a prefixed
// one has its resolved namespace as Name.Space) and its children, elements
// and text in order.
type node struct {
	name  xml.Name
	attr  []xml.Attr
	kids  []*node
	text  string // a text node: name.Local == ""
	isTxt bool
}

// attrValue returns the unprefixed attribute local, "" if there is none.
func (n *node) attrValue(local string) string {
	for _, a := range n.attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// elements returns the child elements.
func (n *node) elements() []*node {
	var els []*node
	for _, k := range n.kids {
		if !k.isTxt {
			els = append(els, k)
		}
	}
	return els
}

// child returns the first child element {space}local, nil if none.
func (n *node) child(space, local string) *node {
	for _, k := range n.kids {
		if !k.isTxt && k.name.Space == space && k.name.Local == local {
			return k
		}
	}
	return nil
}

// content returns the character data directly in n, trimmed.
func (n *node) content() string {
	var b strings.Builder
	for _, k := range n.kids {
		if k.isTxt {
			b.WriteString(k.text)
		}
	}
	return strings.TrimSpace(b.String())
}

// childText is the content of the first child {space}local.
func (n *node) childText(space, local string) string {
	if c := n.child(space, local); c != nil {
		return c.content()
	}
	return ""
}

// maxDepth bounds the nesting of elements read.
const maxDepth = 100

// readTree reads the element start opened on d, up to its end, into a
// node. Elements in no namespace get ns (the namespace the context
// implies: jabber:client for a stanza stored without its declaration).
// include, if not nil, is asked for the node an XInclude element stands
// for (XEP-0227 §5).
func readTree(d *xml.Decoder, start xml.StartElement, ns string, include func(*node) (*node, error)) (*node, error) {
	root := newNode(start, ns)
	stack := []*node{root}
	for len(stack) > 0 {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
			n := newNode(t, ns)
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if include != nil && top.name == xincludeName {
				parent := root
				if len(stack) > 0 {
					parent = stack[len(stack)-1]
				}
				inc, err := include(top)
				if err != nil {
					return nil, err
				}
				if top == root {
					return inc, nil
				}
				parent.kids[len(parent.kids)-1] = inc
			}
		case xml.CharData:
			if k := len(top.kids); k > 0 && top.kids[k-1].isTxt {
				top.kids[k-1].text += string(t)
			} else {
				top.kids = append(top.kids, &node{isTxt: true, text: string(t)})
			}
		}
	}
	return root, nil
}

func newNode(start xml.StartElement, ns string) *node {
	n := &node{name: start.Name}
	if n.name.Space == "" {
		n.name.Space = ns
	}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		n.attr = append(n.attr, a)
	}
	return n
}

// parseElement parses raw, one element, with ns for elements in no
// namespace.
func parseElement(raw []byte, ns string) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return readTree(d, start, ns, nil)
		}
	}
}

// marshal writes n as a self-contained element: a default namespace
// declaration wherever the namespace changes from parentNS on, and a
// declared prefix for every namespaced attribute. The result means the
// same alone as inside its parent.
func marshal(n *node, parentNS string) []byte {
	var b bytes.Buffer
	writeNode(&b, n, parentNS)
	return b.Bytes()
}

func writeNode(b *bytes.Buffer, n *node, parentNS string) {
	if n.isTxt {
		xml.EscapeText(b, []byte(n.text))
		return
	}
	b.WriteByte('<')
	b.WriteString(n.name.Local)
	if n.name.Space != parentNS {
		b.WriteString(" xmlns='")
		escapeAttr(b, n.name.Space)
		b.WriteByte('\'')
	}
	prefixes := 0
	for _, a := range n.attr {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case xmlNS, "xml":
			b.WriteString("xml:")
		default:
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			b.WriteString("xmlns:" + p + "='")
			escapeAttr(b, a.Name.Space)
			b.WriteString("' " + p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString("='")
		escapeAttr(b, a.Value)
		b.WriteByte('\'')
	}
	if len(n.kids) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, k := range n.kids {
		writeNode(b, k, n.name.Space)
	}
	b.WriteString("</")
	b.WriteString(n.name.Local)
	b.WriteByte('>')
}

// escapeAttr writes s escaped for an attribute value in single quotes.
func escapeAttr(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteRune(r)
		}
	}
}

// escapeText writes s escaped as character data.
func escapeText(b *bytes.Buffer, s string) { xml.EscapeText(b, []byte(s)) }
