package vcard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// documents is an in-memory storage.Documents; the account "broken" fails.
type documents struct {
	mu   sync.Mutex
	docs map[string][]byte
}

var errBroken = errors.New("disk on fire")

func (d *documents) Document(_ context.Context, host, username, key string) ([]byte, error) {
	if username == "broken" {
		return nil, errBroken
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	doc, ok := d.docs[username+"@"+host+" "+key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return bytes.Clone(doc), nil
}

func (d *documents) PutDocument(_ context.Context, host, username, key string, doc []byte) error {
	if username == "broken" {
		return errBroken
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.docs[username+"@"+host+" "+key] = bytes.Clone(doc)
	return nil
}

func (d *documents) DeleteDocument(_ context.Context, host, username, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.docs, username+"@"+host+" "+key)
	return nil
}

// sender records replies.
type sender struct{ replies [][]byte }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, raw)
	return true
}

const (
	card      = `<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>`
	newCard   = `<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard>`
	forbidden = `<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
	notFound  = `<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
)

// TestVCard runs one conversation step by step: each step's request and
// the reply expected.
func TestVCard(t *testing.T) {
	big := `<vCard xmlns='vcard-temp'><PHOTO><BINVAL>` + strings.Repeat("A", 200) + `</BINVAL></PHOTO></vCard>`
	steps := []struct {
		name, in, want string
	}{
		{
			name: "own vCard, none stored: empty vCard (§3.1)",
			in:   `<iq from='alice@example.org/r' type='get' id='1'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq to='alice@example.org/r' type='result' id='1'><vCard xmlns='vcard-temp'/></iq>`,
		},
		{
			name: "another user's, none stored: item-not-found (§3.3)",
			in:   `<iq from='bob@example.org/r' to='alice@example.org' type='get' id='2'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq from='alice@example.org' to='bob@example.org/r' type='error' id='2'>` + notFound + `</iq>`,
		},
		{
			name: "set own (§3.2)",
			in:   `<iq from='alice@example.org/r' type='set' id='3'>` + card + `</iq>`,
			want: `<iq to='alice@example.org/r' type='result' id='3'/>`,
		},
		{
			name: "get own",
			in:   `<iq from='alice@example.org/r' type='get' id='4'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq to='alice@example.org/r' type='result' id='4'>` + card + `</iq>`,
		},
		{
			name: "another user's (§3.3), from the bare JID",
			in:   `<iq from='bob@example.org/r' to='alice@example.org' type='get' id='5'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq from='alice@example.org' to='bob@example.org/r' type='result' id='5'>` + card + `</iq>`,
		},
		{
			name: "set another user's: forbidden (§3.2)",
			in:   `<iq from='bob@example.org/r' to='alice@example.org' type='set' id='6'>` + newCard + `</iq>`,
			want: `<iq from='alice@example.org' to='bob@example.org/r' type='error' id='6'>` + forbidden + `</iq>`,
		},
		{
			name: "set own, addressed to the own bare JID, replaces",
			in:   `<iq from='alice@example.org/r' to='alice@example.org' type='set' id='7'>` + newCard + `</iq>`,
			want: `<iq from='alice@example.org' to='alice@example.org/r' type='result' id='7'/>`,
		},
		{
			name: "the replacement is what is served",
			in:   `<iq from='bob@example.org/r' to='alice@example.org' type='get' id='8'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq from='alice@example.org' to='bob@example.org/r' type='result' id='8'>` + newCard + `</iq>`,
		},
		{
			name: "no such account: service-unavailable (RFC 6121 §8.5.1)",
			in:   `<iq from='bob@example.org/r' to='nobody@example.org' type='get' id='9'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq from='nobody@example.org' to='bob@example.org/r' type='error' id='9'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "the server has no vCard",
			in:   `<iq from='bob@example.org/r' to='example.org' type='get' id='10'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq from='example.org' to='bob@example.org/r' type='error' id='10'>` + notFound + `</iq>`,
		},
		{
			name: "nor can one set it",
			in:   `<iq from='bob@example.org/r' to='example.org' type='set' id='11'>` + newCard + `</iq>`,
			want: `<iq from='example.org' to='bob@example.org/r' type='error' id='11'>` + forbidden + `</iq>`,
		},
		{
			name: "larger than MaxBytes: not-acceptable, and nothing changes",
			in:   `<iq from='alice@example.org/r' type='set' id='12'>` + big + `</iq>`,
			want: `<iq to='alice@example.org/r' type='error' id='12'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the vCard is larger than 200 bytes</text></error></iq>`,
		},
		{
			name: "a prefix declared outside the vCard: bad-request",
			in:   `<iq xmlns:v='vcard-temp' from='alice@example.org/r' type='set' id='13'><v:vCard><v:FN>x</v:FN></v:vCard></iq>`,
			want: `<iq to='alice@example.org/r' type='error' id='13'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "still the replacement",
			in:   `<iq from='alice@example.org/r' type='get' id='14'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq to='alice@example.org/r' type='result' id='14'>` + newCard + `</iq>`,
		},
		{
			name: "storage failure",
			in:   `<iq from='broken@example.org/r' type='get' id='15'><vCard xmlns='vcard-temp'/></iq>`,
			want: `<iq to='broken@example.org/r' type='error' id='15'><error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
	}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(_ context.Context, bare jid.JID) bool { return bare.Localpart() != "nobody" })
	(&Service{Store: &documents{docs: map[string][]byte{}}, MaxBytes: 200}).Register(m)
	if f := m.Features(); len(f) != 1 || f[0] != NS {
		t.Errorf("features %v, want [%s]", f, NS)
	}
	for _, st := range steps {
		s, err := stanza.Parse([]byte(st.in), strings.IndexByte(st.in, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		out.replies = nil
		m.HandleServer(context.Background(), s)
		if len(out.replies) != 1 {
			t.Fatalf("%s: %d replies", st.name, len(out.replies))
		}
		if err := xmlcmp.Equal([]byte(st.want), out.replies[0], "jabber:client"); err != nil {
			t.Errorf("%s: got %s\nwant %s\n%v", st.name, out.replies[0], st.want, err)
		}
	}
}
