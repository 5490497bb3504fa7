package stream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const hdr = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"

// condition names an outcome: a stream error condition, or "EOF",
// "unexpected EOF", "closed".
func condition(err error) string {
	var se *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Condition
	case err == io.EOF:
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "unexpected EOF"
	case err == ErrClosed:
		return "closed"
	}
	return "other: " + err.Error()
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name, in string
		want     Header
		cond     string
	}{
		{"client", hdr, Header{To: "example.org", Version: "1.0", NS: "jabber:client"}, ""},
		{"no declaration", "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='b.example' id='x&amp;y' version='1.0' xml:lang='en'>",
			Header{To: "b.example", From: "a.example", ID: "x&y", Version: "1.0", Lang: "en", NS: "jabber:server"}, ""},
		{"leading space and BOM", "\xEF\xBB\xBF  <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
			Header{Version: "1.0", NS: "jabber:client"}, ""},
		{"other prefix", "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' version='1.0'>", Header{Version: "1.0", NS: "jabber:client"}, ""},
		{"version 1.1", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='01.1'>", Header{Version: "01.1"}, ""},
		{"empty", "", Header{}, "EOF"},
		{"only space", " \n\t", Header{}, "EOF"},
		{"cut in declaration", "<?xml vers", Header{}, "unexpected EOF"},
		{"cut in tag", "<stream:stream xmlns='jabber:client' to='exa", Header{}, "unexpected EOF"},
		{"cut in tag after declaration", "<?xml version='1.0'?><", Header{}, "unexpected EOF"},
		{"wrong stream namespace", "<stream:stream xmlns='jabber:client' xmlns:stream='urn:example:wrong' version='1.0'>", Header{}, InvalidNamespace},
		{"unprefixed stream", "<stream xmlns='jabber:client' version='1.0'>", Header{}, InvalidNamespace},
		{"content namespace is the stream namespace", "<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>", Header{}, InvalidNamespace},
		{"undeclared prefix", "<stream:stream xmlns='jabber:client' version='1.0'>", Header{}, NotWellFormed},
		{"other root", "<message xmlns='jabber:client'/>", Header{}, BadFormat},
		{"other root in stream namespace", "<stream:features xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", Header{}, BadFormat},
		{"no version", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>", Header{}, UnsupportedVersion},
		{"version 2", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>", Header{}, UnsupportedVersion},
		{"version garbage", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='one'>", Header{}, UnsupportedVersion},
		{"HTTP request", "GET / HTTP/1.1\r\n", Header{}, NotWellFormed},
		{"garbage tag", "<stream:stream version='1.0' xmlns:stream='http://etherx.jabber.org/streams' bad>", Header{}, NotWellFormed},
		{"unquoted", "<stream:stream version=1.0>", Header{}, NotWellFormed},
		{"duplicate attribute", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0' version='1.0'>", Header{}, NotWellFormed},
		{"doctype", "<?xml version='1.0'?><!DOCTYPE stream>", Header{}, RestrictedXML},
		{"comment", "<!-- hi --><stream:stream>", Header{}, RestrictedXML},
		{"processing instruction", "<?php echo 1; ?>", Header{}, RestrictedXML},
		{"second declaration", "<?xml version='1.0'?><?xml version='1.0'?>", Header{}, RestrictedXML},
		{"UTF-16 declared", "<?xml version='1.0' encoding='UTF-16'?><stream:stream>", Header{}, UnsupportedEncoding},
		{"UTF-16 BOM", "\xFF\xFE<\x00", Header{}, UnsupportedEncoding},
		{"bad declaration", "<?xml encoding='UTF-8'?>", Header{}, NotWellFormed},
		{"entity in header", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='&ent;'>", Header{}, RestrictedXML},
		{"bad UTF-8 in header", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='\xff'>", Header{}, NotWellFormed},
		{"unbinding a prefix", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='' version='1.0'>", Header{}, NotWellFormed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1 << 20, 1, 3} {
				r := NewReader(&chunkReader{data: []byte(tt.in), sizes: []int{chunk}}, DefaultLimits())
				h, err := r.ReadHeader()
				if got := condition(err); got != tt.cond {
					t.Fatalf("chunks of %d: error %v, want %q", chunk, err, tt.cond)
				}
				if tt.cond == "" && h != tt.want {
					t.Fatalf("chunks of %d: header %+v, want %+v", chunk, h, tt.want)
				}
			}
		})
	}
}

func TestNext(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name string
		in   string   // after hdr
		want []string // Raw of each element
		cond string   // the error after them
	}{
		{"stanzas and keepalives", " <message to='a@b'><body>hi</body></message>\n\n <presence/>\t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>",
			[]string{"<message to='a@b'><body>hi</body></message>", "<presence/>", "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"}, "closed"},
		{"clean end", "<presence/> ", []string{"<presence/>"}, "EOF"},
		{"cut in element", "<message><body>cut he", nil, "unexpected EOF"},
		{"cut in tag", "<presence/><message to='", []string{"<presence/>"}, "unexpected EOF"},
		{"stream prefix added", "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
			[]string{"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
				"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"}, "EOF"},
		{"stream prefix added to empty tag", "<stream:x a='1'/>", []string{"<stream:x a='1' xmlns:stream='http://etherx.jabber.org/streams'/>"}, "EOF"},
		{"stream prefix used inside", "<message><stream:x/></message>", []string{"<message xmlns:stream='http://etherx.jabber.org/streams'><stream:x/></message>"}, "EOF"},
		{"prefix redeclared", "<message xmlns:stream='urn:other'><stream:x/></message>", []string{"<message xmlns:stream='urn:other'><stream:x/></message>"}, "EOF"},
		{"predefined entities and character references", "<message><body a='&lt;&#x41;'>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;</body></message>", []string{"<message><body a='&lt;&#x41;'>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;</body></message>"}, "EOF"},
		{"CDATA", "<message><body><![CDATA[<not> ]] a tag]]></body></message>", []string{"<message><body><![CDATA[<not> ]] a tag]]></body></message>"}, "EOF"},
		{"non-ASCII", "<message><body>héllo ☃ 😀</body></message>", []string{"<message><body>héllo ☃ 😀</body></message>"}, "EOF"},
		{"long text", "<message><body>" + long + "</body></message>", []string{"<message><body>" + long + "</body></message>"}, "EOF"},
		{"end tag with space", "<message><body >x</body ></message\n>", []string{"<message><body >x</body ></message\n>"}, "EOF"},

		{"comment", "<message><!-- hi --></message>", nil, RestrictedXML},
		{"comment at top", "<!-- hi -->", nil, RestrictedXML},
		{"processing instruction", "<?processing instruction?>", nil, RestrictedXML},
		{"processing instruction inside", "<message><?pi?></message>", nil, RestrictedXML},
		{"doctype", "<!DOCTYPE message [<!ENTITY boom \"lol\">]>", nil, RestrictedXML},
		{"entity inside", "<message><!ENTITY x 'y'></message>", nil, RestrictedXML},
		{"entity reference", "<message><body>&boom;</body></message>", nil, RestrictedXML},
		{"entity reference in attribute", "<message to='&boom;'/>", nil, RestrictedXML},

		{"unclosed", "<message><body>unclosed</message>", nil, NotWellFormed},
		{"stray end tag", "</message>", nil, NotWellFormed},
		{"wrong stream end", "</stream:other>", nil, NotWellFormed},
		{"bad name", "<1message/>", nil, NotWellFormed},
		{"two colons", "<a:b:c xmlns:a='u'/>", nil, NotWellFormed},
		{"undeclared prefix", "<foo:message/>", nil, NotWellFormed},
		{"undeclared prefix inside", "<message><foo:x/></message>", nil, NotWellFormed},
		{"undeclared attribute prefix", "<message foo:x='1'/>", nil, NotWellFormed},
		{"prefix out of scope", "<message><a xmlns:p='u'/><p:b/></message>", nil, NotWellFormed},
		{"xmlns prefix on element", "<xmlns:x/>", nil, NotWellFormed},
		{"unbinding a prefix", "<message xmlns:p=''/>", nil, NotWellFormed},
		{"rebinding xml", "<message xmlns:xml='urn:x'/>", nil, NotWellFormed},
		{"duplicate attribute", "<message to='a' to='b'/>", nil, NotWellFormed},
		{"duplicate expanded attribute", "<message xmlns:a='u' xmlns:b='u' a:x='1' b:x='2'/>", nil, NotWellFormed},
		{"unquoted attribute", "<message to=a/>", nil, NotWellFormed},
		{"attribute without value", "<message to/>", nil, NotWellFormed},
		{"no space between attributes", "<message a='1'b='2'/>", nil, NotWellFormed},
		{"lt in attribute", "<message to='<'/>", nil, NotWellFormed},
		{"lt in tag", "<message <body/>", nil, NotWellFormed},
		{"bare ampersand", "<message><body>a & b</body></message>", nil, NotWellFormed},
		{"bare ampersand in attribute", "<message to='a & b'/>", nil, NotWellFormed},
		{"bad character reference", "<message><body>&#0;</body></message>", nil, NotWellFormed},
		{"huge character reference", "<message><body>&#x110000;</body></message>", nil, NotWellFormed},
		{"uppercase X reference", "<message><body>&#X41;</body></message>", nil, NotWellFormed},
		{"control character", "<message><body>\x01</body></message>", nil, NotWellFormed},
		{"bad UTF-8", "<message><body>\xff</body></message>", nil, NotWellFormed},
		{"truncated UTF-8", "<message><body>\xc3</body></message>", nil, NotWellFormed},
		{"surrogate", "<message><body>\xed\xa0\x80</body></message>", nil, NotWellFormed},
		{"U+FFFE", "<message><body>\xef\xbf\xbe</body></message>", nil, NotWellFormed},
		{"CDATA end in text", "<message><body>]]></body></message>", nil, NotWellFormed},
		{"bad markup", "<message><!x></message>", nil, NotWellFormed},
		{"bad CDATA", "<message><![CDAT[x]]></message>", nil, NotWellFormed},
		{"slash in tag", "<message / >", nil, NotWellFormed},
		{"space before name", "< message/>", nil, NotWellFormed},

		{"text at top level", "hello", nil, BadFormat},
		{"text after element", "<presence/>x", []string{"<presence/>"}, BadFormat},
		{"reference at top level", "&amp;", nil, BadFormat},
		{"CDATA at top level", "<![CDATA[x]]>", nil, BadFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1 << 20, 1, 2, 7} {
				r := NewReader(&chunkReader{data: []byte(hdr + tt.in), sizes: []int{chunk}}, DefaultLimits())
				if _, err := r.ReadHeader(); err != nil {
					t.Fatal(err)
				}
				var got []string
				var err error
				for {
					var el *Element
					if el, err = r.Next(); err != nil {
						break
					}
					got = append(got, string(el.Raw))
				}
				if !equal(got, tt.want) || condition(err) != tt.cond {
					t.Fatalf("chunks of %d:\n got %q, %v\nwant %q, %q", chunk, got, err, tt.want, tt.cond)
				}
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("error not sticky: %v then %v", err, err2)
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestElementFields(t *testing.T) {
	in := hdr + "<message xmlns='jabber:client' to='a@b' xml:lang='de' xmlns:x='urn:x' x:y='1&amp;2'><body>hi</body></message><stream:features/><q:query xmlns:q='urn:q' id='7'/>"
	r := NewReader(strings.NewReader(in), DefaultLimits())
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if el.Name != (xml.Name{Space: "jabber:client", Local: "message"}) {
		t.Errorf("name %v", el.Name)
	}
	want := []xml.Attr{
		{Name: xml.Name{Local: "xmlns"}, Value: "jabber:client"},
		{Name: xml.Name{Local: "to"}, Value: "a@b"},
		{Name: xml.Name{Space: "http://www.w3.org/XML/1998/namespace", Local: "lang"}, Value: "de"},
		{Name: xml.Name{Space: "xmlns", Local: "x"}, Value: "urn:x"},
		{Name: xml.Name{Space: "urn:x", Local: "y"}, Value: "1&2"},
	}
	if len(el.Attr) != len(want) {
		t.Fatalf("attrs %v", el.Attr)
	}
	for i := range want {
		if el.Attr[i] != want[i] {
			t.Errorf("attr %d: %v, want %v", i, el.Attr[i], want[i])
		}
	}
	if got := string(el.Raw[:el.StartLen]); got != "<message xmlns='jabber:client' to='a@b' xml:lang='de' xmlns:x='urn:x' x:y='1&amp;2'>" {
		t.Errorf("start tag %q", got)
	}
	el, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if el.Name != (xml.Name{Space: NS, Local: "features"}) || el.StartLen != len(el.Raw) {
		t.Errorf("features: %v %q %d", el.Name, el.Raw, el.StartLen)
	}
	el, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if el.Name != (xml.Name{Space: "urn:q", Local: "query"}) || len(el.Attr) != 2 {
		t.Errorf("query: %v %v", el.Name, el.Attr)
	}
	// Raw is the caller's: reading on does not change it.
	raw := string(el.Raw)
	r.Next()
	if string(el.Raw) != raw {
		t.Error("Raw changed by the next read")
	}
}

func TestLimits(t *testing.T) {
	open := "<message><body>"
	end := "</body></message>"
	exact := open + strings.Repeat("a", 100-len(open)-len(end)) + end
	tests := []struct {
		name string
		in   string
		cond string
	}{
		{"exactly the limit", exact, "EOF"},
		{"one byte over", open + strings.Repeat("a", 101-len(open)-len(end)) + end, PolicyViolation},
		{"over without end", open + strings.Repeat("a", 500), PolicyViolation},
		{"limit reached, then end of input", open + strings.Repeat("a", 100-len(open)), "unexpected EOF"},
		{"over in a tag", "<message to='" + strings.Repeat("a", 200) + "'/>", PolicyViolation},
		{"prefix added over the limit", "<stream:x>" + strings.Repeat("a", 80) + "</stream:x>", PolicyViolation},
		{"depth 4", "<a><b><c><d/></c></b></a>", "EOF"},
		{"depth 5", "<a><b><c><d><e/></d></c></b></a>", PolicyViolation},
		{"deep and unclosed", strings.Repeat("<a>", 50), PolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1 << 20, 1, 9} {
				r := NewReader(&chunkReader{data: []byte(hdr + tt.in), sizes: []int{chunk}}, Limits{MaxElementBytes: 100, MaxDepth: 4})
				if _, err := r.ReadHeader(); err != nil {
					t.Fatal(err)
				}
				var err error
				for err == nil {
					var el *Element
					if el, err = r.Next(); err == nil && len(el.Raw) > 100 {
						t.Fatalf("Raw of %d bytes", len(el.Raw))
					}
				}
				if condition(err) != tt.cond {
					t.Fatalf("chunks of %d: %v, want %s", chunk, err, tt.cond)
				}
			}
		})
	}
}

// TestBoundedBuffer checks that a huge element is refused without
// buffering it.
func TestBoundedBuffer(t *testing.T) {
	src := &endless{prefix: []byte(hdr + "<message><body>")}
	r := NewReader(src, Limits{MaxElementBytes: 10000, MaxDepth: 8})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); condition(err) != PolicyViolation {
		t.Fatalf("got %v", err)
	}
	if src.n > 10000+2*minRead+len(hdr) || len(r.buf) > 10000+minRead {
		t.Fatalf("read %d bytes, buffer %d", src.n, len(r.buf))
	}
}

type endless struct {
	prefix []byte
	n      int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if e.n < len(e.prefix) {
			p[n] = e.prefix[e.n]
		} else {
			p[n] = 'a'
		}
		n++
		e.n++
	}
	return n, nil
}

// TestNoReadAhead: a client sends one stanza and waits for the answer; the
// reader returns it without waiting for more.
func TestNoReadAhead(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() {
		client.Write([]byte(hdr))
		client.Write([]byte("<message to='a@b'><body>one</body></message>"))
		client.Write([]byte("<presence/>"))
		client.Write([]byte("<iq type='get' id='1'/><iq type='get' id='2'/>"))
	}()
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := NewReader(server, DefaultLimits())
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<message to='a@b'><body>one</body></message>", "<presence/>", "<iq type='get' id='1'/>", "<iq type='get' id='2'/>"} {
		el, err := r.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if string(el.Raw) != want {
			t.Fatalf("got %s, want %s", el.Raw, want)
		}
	}
	// Nothing more was sent: the next read waits, and a deadline is not
	// fatal to the stream.
	server.SetReadDeadline(time.Now())
	if _, err := r.Next(); err == nil || sticky(err) {
		t.Fatalf("got %v, want a timeout", err)
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	go client.Write([]byte("<presence type='unavailable'/>"))
	if el, err := r.Next(); err != nil || string(el.Raw) != "<presence type='unavailable'/>" {
		t.Fatalf("after timeout: %v %v", el, err)
	}
}

// TestReset: after STARTTLS, bytes buffered before the restart are
// discarded and a new header is read from the new source.
func TestReset(t *testing.T) {
	r := NewReader(strings.NewReader(hdr+"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>"), DefaultLimits())
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if el, err := r.Next(); err != nil || el.Name.Local != "starttls" {
		t.Fatal(el, err)
	}
	r.Reset(strings.NewReader("<?xml version='1.0'?><x:stream xmlns='jabber:client' xmlns:x='http://etherx.jabber.org/streams' xmlns:stream='urn:other' version='1.0' to='two'><x:features/></x:stream>"))
	h, err := r.ReadHeader()
	if err != nil || h.To != "two" {
		t.Fatal(h, err)
	}
	el, err := r.Next()
	if err != nil || string(el.Raw) != "<x:features xmlns:x='http://etherx.jabber.org/streams'/>" {
		t.Fatalf("%q %v", el.Raw, err)
	}
	if _, err := r.Next(); err != ErrClosed {
		t.Fatal(err)
	}
	// A sticky error is cleared by Reset.
	r.Reset(strings.NewReader(hdr + "<presence/>"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if el, err := r.Next(); err != nil || el.Name.Local != "presence" {
		t.Fatal(el, err)
	}
}

func TestEmptyRoot(t *testing.T) {
	r := NewReader(strings.NewReader("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'/>"), DefaultLimits())
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != ErrClosed {
		t.Fatal(err)
	}
}

func TestErrorBytes(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Condition: NotWellFormed}, "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		{Error{Condition: PolicyViolation, Text: "a < b & 'c'"}, "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>a &lt; b &amp; &apos;c&apos;</text></stream:error>"},
		{Error{Condition: SeeOtherHost, Text: "[2001:db8::1]:5222"}, "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::1]:5222</see-other-host></stream:error>"},
	}
	for _, tt := range tests {
		if got := string(tt.err.Bytes()); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		// It reads back as a stream error on our own stream.
		r := NewReader(strings.NewReader(hdr+string(tt.err.Bytes())), DefaultLimits())
		r.ReadHeader()
		el, err := r.Next()
		if err != nil || el.Name != (xml.Name{Space: NS, Local: "error"}) {
			t.Errorf("%s: %v %v", tt.want, el, err)
		}
	}
	if got := (&Error{Condition: Conflict, Text: "replaced"}).Error(); got != "stream error: conflict: replaced" {
		t.Error(got)
	}
}

func TestAppendHeader(t *testing.T) {
	h := Header{ID: "abc", From: "example.org", To: "x'y", Version: "1.0", Lang: "en", NS: "jabber:client"}
	b := AppendHeader([]byte("pre"), h)
	want := "pre<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.org' to='x&apos;y' version='1.0' xml:lang='en'>"
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	got, err := NewReader(bytes.NewReader(b[3:]), DefaultLimits()).ReadHeader()
	if err != nil || got != h {
		t.Fatalf("read back %+v %v", got, err)
	}
	// A server's header declares the dialback prefix, and reads back so.
	h = Header{ID: "abc", From: "a.example", To: "b.example", Version: "1.0", NS: "jabber:server", Dialback: true}
	b = AppendHeader(nil, h)
	if !strings.Contains(string(b), " xmlns:db='jabber:server:dialback'") {
		t.Errorf("no dialback prefix: %s", b)
	}
	if got, err := NewReader(bytes.NewReader(b), DefaultLimits()).ReadHeader(); err != nil || got != h {
		t.Fatalf("read back %+v %v", got, err)
	}
	b = AppendHeader(nil, Header{Version: "1.0", NS: "jabber:client", From: "example.org"})
	if strings.Contains(string(b), "to=") || strings.Contains(string(b), "id=") || strings.Contains(string(b), "xml:lang") || strings.Contains(string(b), "xmlns:db") {
		t.Errorf("empty fields not left out: %s", b)
	}
}

// chunkReader returns data in reads of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = max(c.sizes[c.i%len(c.sizes)], 1)
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

const chat = `<message type='chat' to='juliet@example.com/balcony' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`

// repeat serves a stream header and then the same element forever.
type repeat struct {
	head, el []byte
	off      int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.head) > 0 {
			c := copy(p[n:], r.head)
			r.head = r.head[c:]
			n += c
			continue
		}
		c := copy(p[n:], r.el[r.off:])
		r.off = (r.off + c) % len(r.el)
		n += c
	}
	return n, nil
}

func BenchmarkNext(b *testing.B) {
	r := NewReader(&repeat{head: []byte(hdr), el: []byte(chat + "\n")}, DefaultLimits())
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chat) + 1))
	b.ReportAllocs()
	for b.Loop() {
		el, err := r.Next()
		if err != nil || len(el.Raw) != len(chat) {
			b.Fatal(err)
		}
	}
}
