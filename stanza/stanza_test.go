package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/internal/xmlcmp"
)

// startLen returns the length of raw's start tag, or -1 if raw is not one
// well-formed element.
func startLen(raw []byte) int {
	d := xml.NewDecoder(bytes.NewReader(raw))
	tok, err := d.RawToken()
	if err != nil {
		return -1
	}
	if _, ok := tok.(xml.StartElement); !ok {
		return -1
	}
	n := int(d.InputOffset())
	depth := 1
	for depth > 0 {
		tok, err := d.RawToken()
		if err != nil {
			return -1
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if len(bytes.TrimSpace(raw[d.InputOffset():])) != 0 {
		return -1
	}
	return n
}

func TestParse(t *testing.T) {
	raw := []byte(`<message to='bob@example.org/phone' from="a@x/r&amp;d" type='chat' id='m&lt;1' xml:lang='en'><body>hi</body></message>`)
	s, err := Parse(raw, startLen(raw))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != Message || s.Type != "chat" || s.ID != "m<1" || s.Lang != "en" {
		t.Errorf("parsed %+v", s)
	}
	if s.To.String() != "bob@example.org/phone" || s.From.Resourcepart() != "r&d" {
		t.Errorf("to = %s, from = %s", s.To, s.From)
	}
	if _, err := Parse([]byte(`<message to='a@b@c'/>`), len(`<message to='a@b@c'/>`)); err == nil {
		t.Error("a malformed 'to' was accepted")
	} else {
		var se *Error
		if !errors.As(err, &se) || se.Condition != JIDMalformed {
			t.Errorf("malformed to: %v", err)
		}
	}
	if _, err := Parse([]byte(`<foo/>`), 6); !errors.Is(err, ErrNotStanza) {
		t.Errorf("non-stanza: %v", err)
	}
}

// TestWithAddresses: the server's 'from' and 'to' replace whatever the
// client wrote, and nothing else changes (RFC 6120 §8.1.2.1).
func TestWithAddresses(t *testing.T) {
	from := jid.MustParse("alice@example.org/laptop")
	to := jid.MustParse("bob@example.org")
	for _, tc := range []struct{ in, want string }{
		{`<message from='eve@evil/x' to='bob@example.org' id='1'><body>x</body></message>`,
			`<message from='alice@example.org/laptop' to='bob@example.org' id='1'><body>x</body></message>`},
		{`<presence/>`, `<presence from='alice@example.org/laptop' to='bob@example.org'/>`},
		{"<iq\n type=\"get\"\tfrom=\"x\" id='a&apos;b'><ping xmlns='urn:xmpp:ping'/></iq>",
			`<iq from='alice@example.org/laptop' to='bob@example.org' type="get" id='a&apos;b'><ping xmlns='urn:xmpp:ping'/></iq>`},
	} {
		raw := []byte(tc.in)
		s, err := Parse(raw, startLen(raw))
		if err != nil {
			t.Fatal(err)
		}
		got := s.WithAddresses(from, to)
		if string(got.Raw) != tc.want {
			t.Errorf("WithAddresses(%s)\n got %s\nwant %s", tc.in, got.Raw, tc.want)
		}
		if _, err := Parse(got.Raw, got.startLen); err != nil {
			t.Errorf("result does not parse: %v", err)
		}
	}
}

func TestErrorReply(t *testing.T) {
	raw := []byte(`<iq from='alice@example.org/laptop' to='example.org' type='get' id='q1'><query xmlns='urn:x'/></iq>`)
	s, _ := Parse(raw, startLen(raw))
	got := ErrorReply(s, s.To, &Error{Type: Cancel, Condition: ServiceUnavailable, Text: "a < b"})
	want := `<iq from='example.org' to='alice@example.org/laptop' type='error' id='q1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>a &lt; b</text></error></iq>`
	if err := xmlcmp.Equal([]byte(want), got, "jabber:client"); err != nil {
		t.Errorf("ErrorReply:\n got %s\nwant %s\n%v", got, want, err)
	}
}

// FuzzWithAddresses: for any well-formed stanza, stamping addresses yields
// a well-formed stanza that parses back with exactly those addresses.
func FuzzWithAddresses(f *testing.F) {
	for _, s := range []string{
		`<message to='bob@example.org' type='chat'><body>hi</body></message>`,
		`<presence from='x' to="y"/>`,
		`<iq type='get' id='a&amp;b'><query xmlns='jabber:iq:version'/></iq>`,
		`<message to='a@b' from='c@d/e' xml:lang='en' id="&#65;"><x xmlns='urn:x' to='ignored'/></message>`,
	} {
		f.Add([]byte(s))
	}
	from := jid.MustParse("alice@example.org/laptop")
	to := jid.MustParse("bob@example.org")
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := startLen(raw)
		if n < 0 {
			return
		}
		s, _ := Parse(raw, n) // a malformed address still yields the stanza
		if s == nil {
			return
		}
		got := s.WithAddresses(from, to)
		if startLen(got.Raw) != got.startLen {
			t.Fatalf("WithAddresses(%q) = %q: not well-formed or wrong start length", raw, got.Raw)
		}
		back, err := Parse(got.Raw, got.startLen)
		if err != nil || !back.From.Equal(from) || !back.To.Equal(to) || back.Type != s.Type || back.ID != s.ID {
			t.Fatalf("WithAddresses(%q) = %q parses as %+v, %v", raw, got.Raw, back, err)
		}
	})
}
