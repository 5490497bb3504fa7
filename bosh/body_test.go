package bosh

import (
	"errors"
	"testing"

	"github.com/starling-xmpp/starling/stream"
)

// parseBody reads the attributes of <body/> with their namespaces as
// declared, and its children as elements of a jabber:client stream.
func TestParseBody(t *testing.T) {
	b, err := parseBody([]byte(`<?xml version='1.0'?><b:body xmlns:b='`+NSHTTPBind+`' xmlns:x='`+NSXBOSH+`' rid='7' sid='s' to='localhost' xml:lang='de' wait='30' hold='1' ack='6' pause='60' x:version='1.0' x:restart='true' type='terminate'>
		<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>
		<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/></b:body>`), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if b.rid != 7 || b.sid != "s" || b.to != "localhost" || b.lang != "de" || b.wait != 30 || b.hold != 1 || b.ack != 6 || b.pause != 60 || b.version != "1.0" || !b.restart || !b.terminate {
		t.Fatalf("attributes: %+v", b)
	}
	if len(b.payload) != 2 || b.payload[0].Name.Space != nsClient || b.payload[0].Name.Local != "message" || b.payload[1].Name.Local != "auth" {
		t.Fatalf("payload: %+v", b.payload)
	}
	for _, bad := range []string{
		``,
		`<body xmlns='` + NSHTTPBind + `'/>`, // no rid
		`<body xmlns='` + NSHTTPBind + `' rid='-1'/>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1' pause='soon'/>`,
		`<body xmlns='` + NSHTTPBind + `' rid='2' ack='-1'/>`,
		`<body xmlns='` + NSHTTPBind + `' rid='9007199254740992'/>`, // 2^53
		`<body xmlns='` + NSHTTPBind + `' rid='1'/><body xmlns='` + NSHTTPBind + `' rid='2'/>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1'></bodx>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1'>text</body>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1'><?pi x?></body>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1'><message xmlns='jabber:client'>&unknown;</message></body>`,
		`<body xmlns='` + NSHTTPBind + `' rid='1'/>trailing`,
	} {
		if _, err := parseBody([]byte(bad), 1000); !errors.Is(err, errBadRequest) {
			t.Errorf("%q: %v, want bad request", bad, err)
		}
	}
	_, err = parseBody([]byte(`<body xmlns='`+NSHTTPBind+`' rid='1'><message xmlns='jabber:client'><body>0123456789012345678901234567890123456789</body></message></body>`), 40)
	if se, ok := errors.AsType[*stream.Error](err); !ok || se.Condition != stream.PolicyViolation {
		t.Fatalf("an element too large: %v", err)
	}
}

// Whatever a client sends, parseBody returns a body or an error.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='` + NSHTTPBind + `' rid='1' sid='x'><message xmlns='jabber:client'><body>a</body></message></body>`))
	f.Add([]byte(`<body xmlns='` + NSHTTPBind + `' rid='1'/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := parseBody(b, 1000)
		if (body == nil) == (err == nil) {
			t.Fatalf("body %v, error %v", body, err)
		}
	})
}

// sidOf finds the session a refused request names, however it breaks the
// rules after its start tag.
func TestSIDOf(t *testing.T) {
	for raw, want := range map[string]string{
		`<body xmlns='` + NSHTTPBind + `' sid='s1' rid='5'><iq>`:                "s1",
		`<?xml version='1.0'?><!DOCTYPE body><body sid='s2' rid='5'/>`:          "s2",
		`<body xmlns='` + NSHTTPBind + `' sid='s3' rid='5'>` + "\x00":           "s3",
		`<body xmlns='` + NSHTTPBind + `' rid='5'/>`:                            "",
		`<body xmlns='` + NSHTTPBind + `' x:sid='s4' xmlns:x='urn:x' rid='5'/>`: "",
		`<body sid='s5`: "",
		``:              "",
	} {
		if got := sidOf([]byte(raw)); got != want {
			t.Errorf("sidOf(%q) = %q, want %q", raw, got, want)
		}
	}
}

// The creation response's 'ver' is the client's or ours, whichever is
// lower (XEP-0124 §7.2), the numbers compared as integers.
func TestVersion(t *testing.T) {
	for client, want := range map[string]string{
		"1.6":   "1.6", // Strophe.js
		"1.11":  "1.11",
		"1.10":  "1.10",
		"1.9":   "1.9",
		"1.12":  "1.11",
		"2.0":   "1.11",
		"0.9":   "0.9",
		"01.06": "1.6",
		"":      "1.11", // none given
		"1":     "1.11",
		"1.x":   "1.11",
		"-1.0":  "1.11",
	} {
		if got := version(client); got != want {
			t.Errorf("version(%q) = %q, want %q", client, got, want)
		}
	}
}

// BenchmarkParseBody parses a request carrying two stanzas.
func BenchmarkParseBody(b *testing.B) {
	body := []byte("<body rid='1' sid='abc' xmlns='http://jabber.org/protocol/httpbind'><message to='a@b' type='chat'><body>hello there</body></message><presence/></body>")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBody(body, 1<<16); err != nil {
			b.Fatal(err)
		}
	}
}
