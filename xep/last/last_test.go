package last

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// activity is an in-memory storage.LastActivity; the account "broken"
// fails.
type activity struct {
	mu   sync.Mutex
	last map[string]record
}

type record struct {
	at     time.Time
	status string
}

var errBroken = errors.New("disk on fire")

func (a *activity) SetLastActivity(_ context.Context, host, username string, at time.Time, status string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[username+"@"+host] = record{at, status}
	return nil
}

func (a *activity) LastActivity(_ context.Context, host, username string) (time.Time, string, error) {
	if username == "broken" {
		return time.Time{}, "", errBroken
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.last[username+"@"+host]
	if !ok {
		return time.Time{}, "", storage.ErrNotFound
	}
	return r.at, r.status, nil
}

// sender records replies.
type sender struct{ replies [][]byte }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, raw)
	return true
}

const forbidden = `<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`

func TestLast(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := start.Add(34*time.Hour + 17*time.Minute + 36*time.Second + 900*time.Millisecond)
	store := &activity{last: map[string]record{}}
	svc := &Service{
		Store: store,
		Start: start,
		Now:   func() time.Time { return now },
		// romeo may see the presence of juliet, tybalt and broken; nobody
		// else is subscribed to anyone.
		Subscribed: func(_ context.Context, contact, requester jid.JID) bool {
			return requester.String() == "romeo@example.org" && contact.Localpart() != "mercutio"
		},
		Online: func(bare jid.JID) bool { return bare.Localpart() == "tybalt" },
	}
	ctx := context.Background()
	juliet := jid.MustParse("juliet@example.org")
	if err := svc.SessionEnded(ctx, juliet, "Heading Home", now.Add(-903*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := svc.SessionEnded(ctx, jid.MustParse("mercutio@example.org"), "", now.Add(-5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if r := store.last["juliet@example.org"]; r.status != "Heading Home" || !r.at.Equal(now.Add(-903*time.Second)) {
		t.Errorf("recorded %+v", r)
	}

	tests := []struct {
		name, in, want string
	}{
		{
			name: "server uptime (§5)",
			in:   `<iq from='romeo@example.org/orchard' to='example.org' type='get' id='1'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='example.org' to='romeo@example.org/orchard' type='result' id='1'><query xmlns='jabber:iq:last' seconds='123456'/></iq>`,
		},
		{
			name: "subscribed contact, offline (§3 example)",
			in:   `<iq from='romeo@example.org/orchard' to='juliet@example.org' type='get' id='2'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='juliet@example.org' to='romeo@example.org/orchard' type='result' id='2'><query xmlns='jabber:iq:last' seconds='903'>Heading Home</query></iq>`,
		},
		{
			name: "subscribed contact, available: seconds 0 (§3)",
			in:   `<iq from='romeo@example.org/orchard' to='tybalt@example.org' type='get' id='3'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='tybalt@example.org' to='romeo@example.org/orchard' type='result' id='3'><query xmlns='jabber:iq:last' seconds='0'/></iq>`,
		},
		{
			name: "not subscribed: forbidden (§3)",
			in:   `<iq from='nurse@example.org/r' to='juliet@example.org' type='get' id='4'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='juliet@example.org' to='nurse@example.org/r' type='error' id='4'>` + forbidden + `</iq>`,
		},
		{
			name: "not in the roster at all: forbidden",
			in:   `<iq from='paris@example.org/r' to='mercutio@example.org' type='get' id='5'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='mercutio@example.org' to='paris@example.org/r' type='error' id='5'>` + forbidden + `</iq>`,
		},
		{
			name: "the account itself, no 'to', no status",
			in:   `<iq from='mercutio@example.org/r' type='get' id='6'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq to='mercutio@example.org/r' type='result' id='6'><query xmlns='jabber:iq:last' seconds='5'/></iq>`,
		},
		{
			name: "nothing recorded: service-unavailable",
			in:   `<iq from='paris@example.org/r' to='paris@example.org' type='get' id='7'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='paris@example.org' to='paris@example.org/r' type='error' id='7'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "no such account: service-unavailable (RFC 6121 §8.5.1)",
			in:   `<iq from='romeo@example.org/orchard' to='nobody@example.org' type='get' id='8'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='nobody@example.org' to='romeo@example.org/orchard' type='error' id='8'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "set",
			in:   `<iq from='romeo@example.org/orchard' to='example.org' type='set' id='9'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='example.org' to='romeo@example.org/orchard' type='error' id='9'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "storage failure",
			in:   `<iq from='romeo@example.org/orchard' to='broken@example.org' type='get' id='10'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='broken@example.org' to='romeo@example.org/orchard' type='error' id='10'><error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
	}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(_ context.Context, bare jid.JID) bool { return bare.Localpart() != "nobody" })
	svc.Register(m)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := stanza.Parse([]byte(tt.in), strings.IndexByte(tt.in, '>')+1)
			if err != nil {
				t.Fatal(err)
			}
			out.replies = nil
			m.HandleServer(ctx, s)
			if len(out.replies) != 1 {
				t.Fatalf("%d replies", len(out.replies))
			}
			if err := xmlcmp.Equal([]byte(tt.want), out.replies[0], "jabber:client"); err != nil {
				t.Errorf("got %s\nwant %s\n%v", out.replies[0], tt.want, err)
			}
		})
	}
}

// TestDefaults: with no Subscribed and no Online, only the account itself
// is answered; the clock going back never yields negative seconds.
func TestDefaults(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	svc := &Service{Store: &activity{last: map[string]record{
		"alice@example.org": {at: now.Add(time.Minute), status: "<back> & forth"},
	}}, Start: now, Now: func() time.Time { return now }}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(context.Context, jid.JID) bool { return true })
	svc.Register(m)
	for _, tt := range []struct{ in, want string }{
		{
			in:   `<iq from='alice@example.org/r' type='get' id='1'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq to='alice@example.org/r' type='result' id='1'><query xmlns='jabber:iq:last' seconds='0'>&lt;back&gt; &amp; forth</query></iq>`,
		},
		{
			in:   `<iq from='bob@example.org/r' to='alice@example.org' type='get' id='2'><query xmlns='jabber:iq:last'/></iq>`,
			want: `<iq from='alice@example.org' to='bob@example.org/r' type='error' id='2'>` + forbidden + `</iq>`,
		},
	} {
		s, err := stanza.Parse([]byte(tt.in), strings.IndexByte(tt.in, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		out.replies = nil
		m.HandleServer(context.Background(), s)
		if len(out.replies) != 1 {
			t.Fatalf("%d replies", len(out.replies))
		}
		if err := xmlcmp.Equal([]byte(tt.want), out.replies[0], "jabber:client"); err != nil {
			t.Errorf("got %s\nwant %s\n%v", out.replies[0], tt.want, err)
		}
	}
}
