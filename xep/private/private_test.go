package private

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
	prefs       = `<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>`
	bookmarks   = `<storage xmlns='storage:bookmarks'><conference jid='council@conference.example.org' autojoin='true'/></storage>`
	notAccept   = `<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
	forbidden   = `<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
	unavailable = `<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
)

// TestPrivate runs one conversation step by step: each step's request and
// the reply expected.
func TestPrivate(t *testing.T) {
	big := `<big xmlns='urn:example:big'>` + strings.Repeat("x", 300) + `</big>`
	steps := []struct {
		name, in, want string
	}{
		{
			name: "nothing stored: the element as asked",
			in:   `<iq from='hamlet@example.org/r' type='get' id='1'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='1'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
		},
		{
			name: "store (§2.3 example 1)",
			in:   `<iq from='hamlet@example.org/r' type='set' id='2'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='2'/>`,
		},
		{
			name: "retrieve (§2.3 example 2)",
			in:   `<iq from='hamlet@example.org/r' type='get' id='3'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='3'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`,
		},
		{
			name: "two elements in one set, addressed to the own bare JID",
			in: `<iq from='hamlet@example.org/r' to='hamlet@example.org' type='set' id='4'><query xmlns='jabber:iq:private'>` +
				bookmarks + `<x:notes xmlns:x='storage:rosternotes'><x:note jid='a@example.org'>hi</x:note></x:notes></query></iq>`,
			want: `<iq from='hamlet@example.org' to='hamlet@example.org/r' type='result' id='4'/>`,
		},
		{
			name: "two elements in one get, one of them never stored",
			in: `<iq from='hamlet@example.org/r' type='get' id='5'><query xmlns='jabber:iq:private'>` +
				`<storage xmlns='storage:bookmarks'/><notes xmlns='storage:rosternotes'/><other xmlns='urn:example:other'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='5'><query xmlns='jabber:iq:private'>` + bookmarks +
				`<notes xmlns='storage:rosternotes'><note jid='a@example.org'>hi</note></notes><other xmlns='urn:example:other'/></query></iq>`,
		},
		{
			name: "same namespace, another element name: a separate document",
			in:   `<iq from='hamlet@example.org/r' type='get' id='6'><query xmlns='jabber:iq:private'><other xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='6'><query xmlns='jabber:iq:private'><other xmlns='exodus:prefs'/></query></iq>`,
		},
		{
			name: "an empty element clears what was stored",
			in:   `<iq from='hamlet@example.org/r' type='set' id='7'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'> </exodus></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='7'/>`,
		},
		{
			name: "cleared",
			in:   `<iq from='hamlet@example.org/r' type='get' id='8'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='8'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
		},
		{
			name: "another user's storage: forbidden (§3)",
			in:   `<iq from='macbeth@example.org/r' to='hamlet@example.org' type='get' id='9'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
			want: `<iq from='hamlet@example.org' to='macbeth@example.org/r' type='error' id='9'>` + forbidden + `</iq>`,
		},
		{
			name: "set on another user's storage: forbidden (§2.3 example 3)",
			in:   `<iq from='macbeth@example.org/r' to='hamlet@example.org' type='set' id='10'><query xmlns='jabber:iq:private'>` + prefs + `</query></iq>`,
			want: `<iq from='hamlet@example.org' to='macbeth@example.org/r' type='error' id='10'>` + forbidden + `</iq>`,
		},
		{
			name: "no such account",
			in:   `<iq from='macbeth@example.org/r' to='nobody@example.org' type='get' id='11'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
			want: `<iq from='nobody@example.org' to='macbeth@example.org/r' type='error' id='11'>` + unavailable + `</iq>`,
		},
		{
			name: "the server has no private storage",
			in:   `<iq from='hamlet@example.org/r' to='example.org' type='get' id='12'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
			want: `<iq from='example.org' to='hamlet@example.org/r' type='error' id='12'>` + unavailable + `</iq>`,
		},
		{
			name: "empty query: not-acceptable (§2.3)",
			in:   `<iq from='hamlet@example.org/r' type='get' id='13'><query xmlns='jabber:iq:private'/></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='13'>` + notAccept + `</iq>`,
		},
		{
			name: "a child without its own namespace is in jabber:iq:private: reserved",
			in:   `<iq from='hamlet@example.org/r' type='set' id='14'><query xmlns='jabber:iq:private'><prefs>x</prefs></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='14'>` + notAccept + `</iq>`,
		},
		{
			name: "jabber:client is reserved",
			in:   `<iq from='hamlet@example.org/r' type='get' id='15'><query xmlns='jabber:iq:private'><message xmlns='jabber:client'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='15'>` + notAccept + `</iq>`,
		},
		{
			name: "jabber:server is reserved, and nothing of the set is stored",
			in:   `<iq from='hamlet@example.org/r' type='set' id='16'><query xmlns='jabber:iq:private'>` + prefs + `<db xmlns='jabber:server'>x</db></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='16'>` + notAccept + `</iq>`,
		},
		{
			name: "so exodus:prefs is still clear",
			in:   `<iq from='hamlet@example.org/r' type='get' id='17'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='result' id='17'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
		},
		{
			name: "an empty namespace",
			in:   `<iq from='hamlet@example.org/r' type='set' id='18'><query xmlns='jabber:iq:private'><prefs xmlns=''>x</prefs></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='18'>` + notAccept + `</iq>`,
		},
		{
			name: "larger than MaxBytes",
			in:   `<iq from='hamlet@example.org/r' type='set' id='19'><query xmlns='jabber:iq:private'>` + big + `</query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='19'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the element is larger than 256 bytes</text></error></iq>`,
		},
		{
			name: "a prefix declared on the query: bad-request",
			in:   `<iq from='hamlet@example.org/r' type='set' id='20'><query xmlns='jabber:iq:private' xmlns:b='storage:bookmarks'><b:storage/></query></iq>`,
			want: `<iq to='hamlet@example.org/r' type='error' id='20'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "storage failure",
			in:   `<iq from='broken@example.org/r' type='get' id='21'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>`,
			want: `<iq to='broken@example.org/r' type='error' id='21'><error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
	}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(_ context.Context, bare jid.JID) bool { return bare.Localpart() != "nobody" })
	docs := &documents{docs: map[string][]byte{}}
	(&Service{Store: docs, MaxBytes: 256}).Register(m)
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
	// The elements are stored under their namespace and name, as sent.
	want := map[string]string{
		"hamlet@example.org " + Key("storage:bookmarks", "storage"): bookmarks,
		"hamlet@example.org " + Key("storage:rosternotes", "notes"): `<x:notes xmlns:x='storage:rosternotes'><x:note jid='a@example.org'>hi</x:note></x:notes>`,
	}
	if len(docs.docs) != len(want) {
		t.Errorf("stored %d documents, want %d", len(docs.docs), len(want))
	}
	for k, v := range want {
		if string(docs.docs[k]) != v {
			t.Errorf("%s = %q, want %q", k, docs.docs[k], v)
		}
	}
}
