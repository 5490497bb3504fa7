// Package xmlcmp compares XML elements canonically for tests: attribute
// order, namespace prefixes, namespace declarations and whitespace between
// elements do not matter. In the expected element, an attribute value or a
// text of "*" matches anything (ids, timestamps), a lone <ANY/> child matches
// any children, an error's human-readable <text/> is ignored unless the
// pattern has one, and "{host}"-style
// placeholders are substituted by the caller beforehand.
package xmlcmp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
)

// Node is a parsed element.
type Node struct {
	Name     xml.Name
	Attr     map[xml.Name]string
	Text     string
	Children []*Node
}

// Parse reads one element. ns is the default namespace in effect around it
// (for example "jabber:client" for a stanza read off a client stream); the
// "stream" prefix is declared as on a stream header, so <stream:features/>
// parses on its own.
func Parse(raw []byte, ns string) (*Node, error) {
	var b bytes.Buffer
	b.WriteString("<wrapper xmlns='")
	xml.EscapeText(&b, []byte(ns))
	b.WriteString("' xmlns:stream='http://etherx.jabber.org/streams'>")
	b.Write(raw)
	b.WriteString("</wrapper>")
	d := xml.NewDecoder(&b)
	if _, err := d.Token(); err != nil { // the wrapper
		return nil, err
	}
	var stack []*Node
	var root *Node
	for {
		tok, err := d.Token()
		if err != nil {
			if root != nil && len(stack) == 0 {
				return root, nil
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &Node{Name: t.Name, Attr: map[xml.Name]string{}}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				n.Attr[a.Name] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			if len(n.Children) > 0 {
				n.Text = strings.TrimSpace(n.Text)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			}
		}
	}
}

// Match reports whether got matches the expected pattern; the error says
// where they differ.
func Match(want, got *Node) error {
	return match(want, got, "/")
}

func match(want, got *Node, path string) error {
	path += want.Name.Local
	if want.Name != got.Name {
		return fmt.Errorf("%s: element %s, got %s", path, fmtName(want.Name), fmtName(got.Name))
	}
	for k, v := range want.Attr {
		g, ok := got.Attr[k]
		if !ok {
			return fmt.Errorf("%s: missing attribute %s", path, k.Local)
		}
		if v != "*" && v != g {
			return fmt.Errorf("%s: attribute %s=%q, got %q", path, k.Local, v, g)
		}
	}
	for k, g := range got.Attr {
		if _, ok := want.Attr[k]; !ok {
			return fmt.Errorf("%s: unexpected attribute %s=%q", path, k.Local, g)
		}
	}
	if want.Text != "*" && strings.TrimSpace(want.Text) != strings.TrimSpace(got.Text) {
		return fmt.Errorf("%s: text %q, got %q", path, strings.TrimSpace(want.Text), strings.TrimSpace(got.Text))
	}
	// A lone <ANY/> child in the pattern matches any children.
	if len(want.Children) == 1 && want.Children[0].Name.Local == "ANY" {
		return nil
	}
	gotChildren := got.Children
	if !hasText(want.Children) {
		gotChildren = withoutText(gotChildren)
	}
	if len(want.Children) != len(gotChildren) {
		return fmt.Errorf("%s: %d children %v, got %d %v", path, len(want.Children), names(want.Children), len(gotChildren), names(gotChildren))
	}
	for i := range want.Children {
		if err := match(want.Children[i], gotChildren[i], path+"/"); err != nil {
			return err
		}
	}
	return nil
}

// errorTextSpaces are the namespaces whose <text/> carries a human-readable
// description of an error (RFC 6120 §4.9.2, §6.4.5, §8.3.2): a pattern
// that has none accepts any.
var errorTextSpaces = []string{
	"urn:ietf:params:xml:ns:xmpp-stanzas",
	"urn:ietf:params:xml:ns:xmpp-streams",
	"urn:ietf:params:xml:ns:xmpp-sasl",
}

func isErrorText(n *Node) bool {
	return n.Name.Local == "text" && slices.Contains(errorTextSpaces, n.Name.Space)
}

func hasText(ns []*Node) bool { return slices.ContainsFunc(ns, isErrorText) }

func withoutText(ns []*Node) []*Node {
	return slices.DeleteFunc(slices.Clone(ns), isErrorText)
}

func names(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmtName(n.Name))
	}
	slices.Sort(out)
	return out
}

func fmtName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

// Equal parses both and matches them, for one-line use in tests.
func Equal(want, got []byte, ns string) error {
	w, err := Parse(want, ns)
	if err != nil {
		return fmt.Errorf("expected XML: %w", err)
	}
	g, err := Parse(got, ns)
	if err != nil {
		return fmt.Errorf("received XML: %w", err)
	}
	return Match(w, g)
}
