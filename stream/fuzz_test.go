package stream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

var fuzzLimits = Limits{MaxElementBytes: 600, MaxDepth: 6}

// outcome is what a reader yields from one input: the header (or the error
// reading it), the Raw of each element, and the final error.
type outcome struct {
	header Header
	raws   []string
	cond   string
}

func readAll(t *testing.T, src io.Reader) outcome {
	r := NewReader(src, fuzzLimits)
	var o outcome
	h, err := r.ReadHeader()
	o.header = h
	if err != nil {
		checkErr(t, err)
		o.cond = condition(err)
		return o
	}
	for {
		el, err := r.Next()
		if err != nil {
			checkErr(t, err)
			o.cond = condition(err)
			return o
		}
		checkElement(t, el)
		o.raws = append(o.raws, string(el.Raw))
	}
}

func checkErr(t *testing.T, err error) {
	var se *Error
	if !errors.As(err, &se) && err != io.EOF && err != io.ErrUnexpectedEOF && err != ErrClosed {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
}

// checkElement checks that Raw is one well-formed, namespace-well-formed
// element with no prefix left undeclared, and that StartLen ends its start
// tag.
func checkElement(t *testing.T, el *Element) {
	if len(el.Raw) > fuzzLimits.MaxElementBytes {
		t.Fatalf("Raw of %d bytes", len(el.Raw))
	}
	if el.StartLen <= 0 || el.StartLen > len(el.Raw) || el.Raw[el.StartLen-1] != '>' {
		t.Fatalf("StartLen %d in %q", el.StartLen, el.Raw)
	}
	d := xml.NewDecoder(bytes.NewReader(el.Raw))
	var scopes [][]string // declared prefixes per open element
	declared := func(p string) bool {
		if p == "" || p == "xml" || p == "xmlns" {
			return true
		}
		for _, s := range scopes {
			for _, q := range s {
				if q == p {
					return true
				}
			}
		}
		return false
	}
	depth, roots := 0, 0
	for {
		off := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Raw does not re-parse: %v\n%q", err, el.Raw)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if off != 0 || d.InputOffset() != int64(el.StartLen) {
					t.Fatalf("start tag at %d-%d, StartLen %d: %q", off, d.InputOffset(), el.StartLen, el.Raw)
				}
				if tok.Name.Local != el.Name.Local {
					t.Fatalf("name %v, Raw %q", el.Name, el.Raw)
				}
			}
			var s []string
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" {
					s = append(s, a.Name.Local)
				}
			}
			scopes = append(scopes, s)
			if !declared(tok.Name.Space) {
				t.Fatalf("undeclared prefix %q in %q", tok.Name.Space, el.Raw)
			}
			for _, a := range tok.Attr {
				if !declared(a.Name.Space) {
					t.Fatalf("undeclared prefix %q in %q", a.Name.Space, el.Raw)
				}
			}
			depth++
		case xml.EndElement:
			depth--
			scopes = scopes[:len(scopes)-1]
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				t.Fatalf("text outside the element: %q", el.Raw)
			}
		default:
			t.Fatalf("unexpected %T in %q", tok, el.Raw)
		}
	}
	if roots != 1 || depth != 0 {
		t.Fatalf("%d roots, depth %d: %q", roots, depth, el.Raw)
	}
	// The strict, namespace-aware decoder agrees too.
	d = xml.NewDecoder(bytes.NewReader(el.Raw))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("Raw does not re-parse: %v\n%q", err, el.Raw)
		}
	}
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		hdr + "<message type='chat' to='juliet@example.com' id='a1'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message></stream:stream>",
		hdr + " <presence/>\n<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		hdr + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
		hdr + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>x</text></stream:error></stream:stream>",
		hdr + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>",
		hdr + "<message><body><![CDATA[<x>]]></body><x:y xmlns:x='u' x:a='1'/><stream:z/></message>",
		hdr + "<message><body>héllo ☃ 😀 &#x1F600;</body></message>",
		"<s:stream xmlns:s='http://etherx.jabber.org/streams' version='1.0'><s:features/></s:stream>",
		hdr + "<message><!-- c --></message>",
		hdr + "<?pi?>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]>",
		hdr + "<message><body>&a;</body></message>",
		hdr + "<message><body>unclosed</message>",
		hdr + "<message a='1' a='2'/>",
		hdr + "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
		hdr + "<message>\xff</message>",
		hdr + "text",
		hdr + "<a><b><c><d><e><f><g/></f></e></d></c></b></a>",
		hdr + "<message><body>" + strings.Repeat("x", 700) + "</body></message>",
		"<stream:stream xmlns:stream='urn:wrong' version='1.0'>",
		"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
		"<?xml version='1.0' encoding='ISO-8859-1'?>",
		"\xEF\xBB\xBF<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'/>",
	}
	for _, s := range seeds {
		f.Add([]byte(s), []byte{1, 5, 200, 3})
	}
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		whole := readAll(t, bytes.NewReader(data))
		sizes := make([]int, len(splits))
		for i, s := range splits {
			sizes[i] = int(s)
		}
		for _, src := range []io.Reader{
			&chunkReader{data: data, sizes: sizes},
			&chunkReader{data: data, sizes: []int{1}},
		} {
			got := readAll(t, src)
			if got.header != whole.header || got.cond != whole.cond || !equal(got.raws, whole.raws) {
				t.Fatalf("split reading differs:\n got %+v\nwant %+v", got, whole)
			}
		}
	})
}
