package websocket

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"testing"

	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stream"
)

// qualify appends el as Conn.Write sends it: with the declarations
// standalone says.
func qualify(dst, el []byte) []byte {
	at, decl := standalone(el)
	dst = append(dst, el[:at]...)
	dst = append(dst, decl...)
	return append(dst, el[at:]...)
}

// What c2s writes for a TCP stream becomes a standalone document.
func TestQualify(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<message to='a@b'><body>hi</body></message>", "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>"},
		{"<presence/>", "<presence xmlns='jabber:client'/>"},
		{"<iq\ttype='result' id='1'/>", "<iq xmlns='jabber:client'\ttype='result' id='1'/>"},
		// Already namespaced: as it is.
		{"<message xmlns='jabber:client' to='a@b'/>", "<message xmlns='jabber:client' to='a@b'/>"},
		{"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>ZGF0YQ==</success>", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>ZGF0YQ==</success>"},
		{"<c:message xmlns:c='jabber:client'><body/></c:message>", "<c:message xmlns='jabber:client' xmlns:c='jabber:client'><body/></c:message>"},
		// Attribute values that look like markup or declarations.
		{"<message id='xmlns' to=\"a>b\" type='x/y'><body>xmlns='q'</body></message>", "<message xmlns='jabber:client' id='xmlns' to=\"a>b\" type='x/y'><body>xmlns='q'</body></message>"},
		// The stream prefix.
		{"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>", "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", "<stream:error xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		{"<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/>", "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'/>"},
	} {
		if got := string(qualify(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("qualify(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// Our stream header becomes <open/> (RFC 7395 §3.4).
func TestOpenFrame(t *testing.T) {
	var h headerParser
	for range 2 { // the parser is reused
		hdr := stream.AppendHeader(nil, stream.Header{ID: "abc", From: "example.org", Version: "1.0", Lang: "en", NS: nsClient})
		got, err := h.openFrame(nil, hdr)
		if err != nil {
			t.Fatal(err)
		}
		if err := xmlcmp.Equal([]byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='abc' version='1.0' xml:lang='en'/>"), got, ""); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
}

// Each message is one standalone element; anything else is a stream error.
func TestFrameParser(t *testing.T) {
	p := newFrameParser(1000)
	for _, tc := range []struct {
		msg  string
		name string // the element's {space}local, or "" for an error
		cond string
	}{
		{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='x' version='1.0'/>", "{urn:ietf:params:xml:ns:xmpp-framing}open", ""},
		{"<?xml version='1.0'?><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "{urn:ietf:params:xml:ns:xmpp-framing}close", ""},
		{"<?xml version='1.0' encoding='UTF-8'?>\n<message xmlns='jabber:client'/>\n", "{jabber:client}message", ""},
		{"<message xmlns='jabber:client'><body>a</body></message>", "{jabber:client}message", ""},
		// Unqualified, as on a TCP stream.
		{"<iq type='get' id='1'/>", "{jabber:client}iq", ""},
		{"<iq xmlns='jabber:client'/><iq xmlns='jabber:client'/>", "", stream.BadFormat},
		{"<iq xmlns='jabber:client'/>text", "", stream.BadFormat},
		{"<iq xmlns='jabber:client'>", "", stream.NotWellFormed},
		{"<iq xmlns='jabber:client'", "", stream.NotWellFormed},
		{"</iq>", "", stream.NotWellFormed},
		{"</stream:stream>", "", stream.NotWellFormed},
		{" <iq xmlns='jabber:client'/>", "", stream.NotWellFormed},
		{"", "", stream.NotWellFormed},
		{"<?xml version='1.0' encoding='UTF-16'?><iq/>", "", stream.UnsupportedEncoding},
		{"<?php?><iq/>", "", stream.RestrictedXML},
		{"<iq><!-- c --></iq>", "", stream.RestrictedXML},
		{"<iq>&ent;</iq>", "", stream.RestrictedXML},
		{"<p:iq/>", "", stream.NotWellFormed},
	} {
		el, err := p.parse([]byte(tc.msg))
		if tc.cond == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.msg, err)
			} else if got := "{" + el.Name.Space + "}" + el.Name.Local; got != tc.name {
				t.Errorf("%q: %s, want %s", tc.msg, got, tc.name)
			}
			continue
		}
		se, ok := errors.AsType[*stream.Error](err)
		if !ok || se.Condition != tc.cond {
			t.Errorf("%q: %v, want %s", tc.msg, err, tc.cond)
		}
	}
}

// Headers of trusted proxies count, others do not.
func TestPeerOf(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name   string
		remote string
		tls    bool
		header http.Header
		want   peer
	}{
		{"direct", "192.0.2.1:4000", false, http.Header{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}},
			peer{addr: netip.MustParseAddr("192.0.2.1"), port: 4000, host: "h"}},
		{"direct TLS", "192.0.2.1:4000", true, nil, peer{addr: netip.MustParseAddr("192.0.2.1"), port: 4000, secure: true, host: "h"}},
		{"proxy without headers", "127.0.0.1:4000", false, nil, peer{addr: netip.MustParseAddr("127.0.0.1"), port: 4000, host: "h"}},
		{"proxy", "127.0.0.1:4000", false, http.Header{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"example.org"}},
			peer{addr: netip.MustParseAddr("198.51.100.1"), secure: true, host: "example.org"}},
		{"chain of proxies", "127.0.0.1:4000", false, http.Header{"X-Forwarded-For": {"203.0.113.9, 198.51.100.1", "10.1.1.1"}, "X-Forwarded-Proto": {"https"}},
			peer{addr: netip.MustParseAddr("198.51.100.1"), secure: true, host: "h"}},
		{"spoofed by the client", "127.0.0.1:4000", false, http.Header{"X-Forwarded-For": {"10.9.9.9, 198.51.100.1"}},
			peer{addr: netip.MustParseAddr("198.51.100.1"), host: "h"}},
		{"plain at the proxy", "127.0.0.1:4000", false, http.Header{"X-Forwarded-Proto": {"https, http"}},
			peer{addr: netip.MustParseAddr("127.0.0.1"), port: 4000, host: "h"}},
		{"IPv4-mapped", "[::ffff:127.0.0.1]:4000", false, http.Header{"X-Forwarded-For": {"2001:db8::1"}},
			peer{addr: netip.MustParseAddr("2001:db8::1"), host: "h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://h/", nil)
			r.RemoteAddr = tc.remote
			if tc.header != nil {
				r.Header = tc.header
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := peerOf(r, trusted); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Any message is either one element or a stream error; an element read
// from one client's stream, written to another's, stands alone with the
// same name (and its children with theirs).
func FuzzFrame(f *testing.F) {
	for _, s := range []string{
		"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
		"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
		"<stream:error><x xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<p:message xmlns:p='jabber:client'><p:body>x</p:body><stream:x/></p:message>",
		"<?xml version='1.0'?><open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a' version='1.0'/>",
		"<a><![CDATA[<b>]]></a>", "<a x='&apos;&gt;'/>", "<a/><b/>", "<a>",
	} {
		f.Add(s)
	}
	p := newFrameParser(1 << 16)
	f.Fuzz(func(t *testing.T, msg string) {
		el, err := p.parse([]byte(msg))
		if err != nil {
			if _, ok := errors.AsType[*stream.Error](err); !ok {
				t.Fatalf("%q: %v is not a stream error", msg, err)
			}
			return
		}
		in, err := names(append(append(wrapOpen[:len(wrapOpen):len(wrapOpen)], el.Raw...), wrapClose...))
		if err != nil {
			t.Fatalf("%q: the element read does not parse: %v", msg, err)
		}
		out, err := names(qualify(nil, el.Raw))
		if err != nil {
			t.Fatalf("%q: written as %q: %v", msg, qualify(nil, el.Raw), err)
		}
		if len(in) < 2 || len(out) == 0 || in[1] != out[0] || len(in) != len(out)+1 {
			t.Fatalf("%q: names %v read, %v written", msg, in, out)
		}
		for i := range out {
			if in[i+1] != out[i] {
				t.Fatalf("%q: names %v read, %v written", msg, in, out)
			}
		}
	})
}

// names lists the resolved names of the elements of doc, in order.
func names(doc []byte) ([]xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out []xml.Name
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			out = append(out, se.Name)
		}
	}
}

// Messages read one after the other as one long document give what each
// gives parsed alone: the same element, or the same stream error; a
// message that fails leaves nothing behind for the next.
func FuzzFrameSequence(f *testing.F) {
	for _, s := range [][2]string{
		{"<message xmlns='jabber:client'><body>a</body></message>", "<iq type='get' id='1'/>"},
		{"<presence/> \n", "<presence/>"},
		{"<presence/><presence", "/>"},
		{"<message><body>hi", "</body></message>"},
		{"<iq/>text", "<iq/>"},
		{"<iq/></iq>", "<iq/>"},
		{"<iq/></stream:stream>", "<iq/>"},
		{"<stream:features/>", "<a xmlns:stream='http://etherx.jabber.org/streams'/>"},
		{"<a xmlns:stream='http://etherx.jabber.org/streams'><stream:b/></a>", "<stream:error/>"},
		{"<?xml version='1.0'?><iq/>", "<iq/>"},
		{"<a>", "<b/>"},
	} {
		f.Add(s[0], s[1])
	}
	long := newFrameParser(1 << 12)
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, msg := range []string{a, b, a} {
			got, gerr := long.parse([]byte(msg))
			want, werr := newFrameParser(1 << 12).parseAlone([]byte(msg))
			if len(msg) == 0 || msg[0] != '<' {
				continue // refused before either parser
			}
			switch {
			case gerr != nil || werr != nil:
				ge, _ := errors.AsType[*stream.Error](gerr)
				we, _ := errors.AsType[*stream.Error](werr)
				if ge == nil || we == nil || ge.Condition != we.Condition {
					t.Fatalf("%q after %q: %v, alone %v", msg, a, gerr, werr)
				}
			case got.Name != want.Name || !bytes.Equal(got.Raw, want.Raw) || got.StartLen != want.StartLen:
				t.Fatalf("%q: %v %q, alone %v %q", msg, got.Name, got.Raw, want.Name, want.Raw)
			}
		}
	})
}
