package stanza

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// viaDecoder lists the direct children of raw with encoding/xml, as
// "{space}local raw".
func viaDecoder(raw []byte) []string {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var out []string
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				if err := d.Skip(); err != nil {
					return out
				}
				depth--
				out = append(out, "{"+t.Name.Space+"}"+t.Name.Local+" "+string(raw[off:d.InputOffset()]))
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return out
			}
		}
	}
}

func viaChildren(raw []byte) []string {
	var out []string
	for c := range Children(raw) {
		if !bytes.Equal(raw[c.Start:c.Start+len(c.Raw)], c.Raw) {
			out = append(out, "Start is wrong")
		}
		out = append(out, "{"+string(c.Space)+"}"+string(c.Local)+" "+string(c.Raw))
	}
	return out
}

var childrenCases = []string{
	`<message/>`,
	`<message to='a@b'><body>hi</body></message>`,
	`<message xmlns='jabber:client' to="a>b"><body a='>'>x &lt; y</body><active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='jabber:x:oob'><url>u</url><desc/></x></message>`,
	`<message><body><![CDATA[<not> a </tag>]]></body><p:private xmlns:p='urn:xmpp:carbons:2'/><request xmlns='urn:xmpp:receipts' /></message>`,
	`<message xmlns:c='urn:xmpp:carbons:2'><c:private/><c:sent><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>in</body></message></forwarded></c:sent></message>`,
	"<message>\n  <body>multi\nline</body>\n  <thread>t</thread>\n</message>",
	`<presence><priority>5</priority><status/><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`,
}

func TestChildren(t *testing.T) {
	for _, c := range childrenCases {
		want, got := viaDecoder([]byte(c)), viaChildren([]byte(c))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s\n got %q\nwant %q", c, got, want)
		}
	}
}

// FuzzChildren: on any well-formed element (as encoding/xml reads it, and
// free of what the stream reader refuses), Children agrees with
// encoding/xml.
func FuzzChildren(f *testing.F) {
	for _, c := range childrenCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "<!--") || strings.Contains(s, "<?") || strings.Contains(s, "<!D") {
			return
		}
		// Namespace names are compared as written: attribute values that
		// XML would normalize or unescape (never real namespaces) are out.
		if strings.ContainsAny(s, "&\r\n\t") {
			return
		}
		raw := []byte(s)
		if !wellFormed(raw) {
			return
		}
		want, got := viaDecoder(raw), viaChildren(raw)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%q\n got %q\nwant %q", s, got, want)
		}
	})
}

// qnames reports whether every element and attribute name of raw is a
// QName with non-empty parts, as the stream reader requires.
func qnames(raw []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(raw))
	ok := func(n xml.Name) bool {
		return n.Local != "" && !strings.Contains(n.Local, ":") && !strings.HasSuffix(n.Space, ":")
	}
	for {
		tok, err := d.RawToken()
		if err != nil {
			return true
		}
		if se, isStart := tok.(xml.StartElement); isStart {
			if !ok(se.Name) {
				return false
			}
			for _, a := range se.Attr {
				if !ok(a.Name) {
					return false
				}
			}
		}
	}
}

// wellFormed reports whether raw is one well-formed element, whole.
func wellFormed(raw []byte) bool {
	if !qnames(raw) {
		return false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	depth, seen := 0, false
	for {
		tok, err := d.Token() // checks that end tags match
		if err != nil {
			return seen && depth == 0 && err.Error() == "EOF"
		}
		switch tok.(type) {
		case xml.StartElement:
			if seen && depth == 0 {
				return false
			}
			seen = true
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				return false
			}
		default:
			return false
		}
	}
}

func BenchmarkChildren(b *testing.B) {
	raw := []byte(`<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='a1b2c3'><body>Hello there, how are you doing today?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='abc'/></message>`)
	b.ReportAllocs()
	for b.Loop() {
		for range Children(raw) {
		}
	}
}

func TestInClientNS(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<message to='a@b'><body>x</body></message>`, `<message xmlns='jabber:client' to='a@b'><body>x</body></message>`},
		{`<message/>`, `<message xmlns='jabber:client'/>`},
		{`<iq xmlns='jabber:server' type='get'/>`, `<iq xmlns='jabber:server' type='get'/>`},
		{`<presence xmlns:x='y' to='a'/>`, `<presence xmlns='jabber:client' xmlns:x='y' to='a'/>`},
	} {
		if got := string(InClientNS([]byte(tc.in))); got != tc.want {
			t.Errorf("InClientNS(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAttr(t *testing.T) {
	for _, tc := range []struct{ raw, name, want string }{
		{`<query xmlns='q' node='a&amp;b'/>`, "node", "a&b"},
		{`<query node="x"><item node='inner'/></query>`, "node", "x"},
		{`<stanza-id xmlns='urn:xmpp:sid:0' by='r@muc' id='1'/>`, "by", "r@muc"},
		{`<query xmlns='q'><x node='inner'/></query>`, "node", ""},
		{`<query xmlns:p='q' p:node='x'/>`, "node", ""},
	} {
		if got := Attr([]byte(tc.raw), tc.name); got != tc.want {
			t.Errorf("Attr(%s, %s) = %q, want %q", tc.raw, tc.name, got, tc.want)
		}
	}
}
