package dispatch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
)

// sender records the replies the Mux sends.
type sender struct {
	to      []jid.JID
	replies [][]byte
}

func (s *sender) DeliverTo(full jid.JID, raw []byte) bool {
	s.to = append(s.to, full)
	s.replies = append(s.replies, raw)
	return true
}

// parse reads a stanza written in a test, as the stream reader would hand
// it over, with 'from' already stamped.
func parse(t *testing.T, raw string) *stanza.Stanza {
	t.Helper()
	s, err := stanza.Parse([]byte(raw), bytes.IndexByte([]byte(raw), '>')+1)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return s
}

// echo answers with the address the request was for, so that tests see
// that the handler ran and what it was told.
func echo(_ context.Context, req Request) ([]byte, error) {
	return []byte("<q xmlns='urn:test' to='" + req.To.String() + "' own='" +
		map[bool]string{true: "yes", false: "no"}[req.To.Equal(req.Stanza.From.Bare())] + "'/>"), nil
}

func TestAnswer(t *testing.T) {
	alice := "alice@example.org/phone"
	tests := []struct {
		name string
		in   string
		want string // "" for no reply
	}{
		{
			name: "server",
			in:   `<iq from='alice@example.org/phone' to='example.org' type='get' id='1'><q xmlns='urn:test:server'/></iq>`,
			want: `<iq from='example.org' to='alice@example.org/phone' type='result' id='1'><q xmlns='urn:test' to='example.org' own='no'/></iq>`,
		},
		{
			name: "no to: own account, reply without from",
			in:   `<iq from='alice@example.org/phone' type='get' id='2'><q xmlns='urn:test:server'/></iq>`,
			want: `<iq to='alice@example.org/phone' type='result' id='2'><q xmlns='urn:test' to='alice@example.org' own='yes'/></iq>`,
		},
		{
			name: "own bare JID",
			in:   `<iq from='alice@example.org/phone' to='alice@example.org' type='get' id='3'><q xmlns='urn:test:server'/></iq>`,
			want: `<iq from='alice@example.org' to='alice@example.org/phone' type='result' id='3'><q xmlns='urn:test' to='alice@example.org' own='yes'/></iq>`,
		},
		{
			name: "another account: plain handler does not answer for it",
			in:   `<iq from='alice@example.org/phone' to='bob@example.org' type='get' id='4'><q xmlns='urn:test:server'/></iq>`,
			want: `<iq from='bob@example.org' to='alice@example.org/phone' type='error' id='4'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "another account: account handler answers",
			in:   `<iq from='alice@example.org/phone' to='bob@example.org' type='get' id='5'><q xmlns='urn:test:accounts'/></iq>`,
			want: `<iq from='bob@example.org' to='alice@example.org/phone' type='result' id='5'><q xmlns='urn:test' to='bob@example.org' own='no'/></iq>`,
		},
		{
			name: "account handler, no such account (RFC 6121 §8.5.1)",
			in:   `<iq from='alice@example.org/phone' to='nobody@example.org' type='get' id='6'><q xmlns='urn:test:accounts'/></iq>`,
			want: `<iq from='nobody@example.org' to='alice@example.org/phone' type='error' id='6'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "account handler, own account and server still answered",
			in:   `<iq from='alice@example.org/phone' type='set' id='7'><q xmlns='urn:test:accounts'/></iq>`,
			want: `<iq to='alice@example.org/phone' type='result' id='7'><q xmlns='urn:test' to='alice@example.org' own='yes'/></iq>`,
		},
		{
			name: "nobody handles the payload",
			in:   `<iq from='alice@example.org/phone' to='example.org' type='get' id='8'><q xmlns='urn:test:unknown'/></iq>`,
			want: `<iq from='example.org' to='alice@example.org/phone' type='error' id='8'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "no payload (RFC 6120 §8.2.3)",
			in:   `<iq from='alice@example.org/phone' to='example.org' type='get' id='9'/>`,
			want: `<iq from='example.org' to='alice@example.org/phone' type='error' id='9'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "stanza error from the handler",
			in:   `<iq from='alice@example.org/phone' to='bob@example.org' type='get' id='10'><q xmlns='urn:test:forbidden'/></iq>`,
			want: `<iq from='bob@example.org' to='alice@example.org/phone' type='error' id='10'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "other error from the handler",
			in:   `<iq from='alice@example.org/phone' to='example.org' type='get' id='11'><q xmlns='urn:test:broken'/></iq>`,
			want: `<iq from='example.org' to='alice@example.org/phone' type='error' id='11'><error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "a result is not answered",
			in:   `<iq from='alice@example.org/phone' to='bob@example.org' type='result' id='12'><q xmlns='urn:test:accounts'/></iq>`,
		},
	}
	m := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(_ context.Context, bare jid.JID) bool {
		return bare.Localpart() == "alice" || bare.Localpart() == "bob"
	})
	m.Handle("urn:test:server", "q", echo)
	m.HandleForAccounts("urn:test:accounts", "q", echo)
	m.HandleForAccounts("urn:test:forbidden", "q", func(context.Context, Request) ([]byte, error) {
		return nil, &stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	})
	m.Handle("urn:test:broken", "q", func(context.Context, Request) ([]byte, error) {
		return nil, errors.New("disk on fire")
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out.to, out.replies = nil, nil
			m.HandleServer(context.Background(), parse(t, tt.in))
			if tt.want == "" {
				if len(out.replies) != 0 {
					t.Fatalf("unexpected reply %s", out.replies[0])
				}
				return
			}
			if len(out.replies) != 1 {
				t.Fatalf("got %d replies, want 1", len(out.replies))
			}
			if out.to[0].String() != alice {
				t.Errorf("reply delivered to %s, want %s", out.to[0], alice)
			}
			if err := xmlcmp.Equal([]byte(tt.want), out.replies[0], "jabber:client"); err != nil {
				t.Errorf("reply %s\nwant %s\n%v", out.replies[0], tt.want, err)
			}
		})
	}
}

// TestAccountsWithoutExistence: until the Mux knows how to tell whether an
// account exists, IQs to other accounts are refused rather than answered.
func TestAccountsWithoutExistence(t *testing.T) {
	m := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	called := false
	m.HandleForAccounts("urn:test:accounts", "q", func(ctx context.Context, req Request) ([]byte, error) {
		called = true
		return echo(ctx, req)
	})
	m.HandleServer(context.Background(), parse(t, `<iq from='alice@example.org/phone' to='bob@example.org' type='get' id='1'><q xmlns='urn:test:accounts'/></iq>`))
	if called {
		t.Error("handler ran for another account with no existence check")
	}
	want := `<iq from='bob@example.org' to='alice@example.org/phone' type='error' id='1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`
	if len(out.replies) != 1 {
		t.Fatalf("got %d replies", len(out.replies))
	}
	if err := xmlcmp.Equal([]byte(want), out.replies[0], "jabber:client"); err != nil {
		t.Error(err)
	}
}

// TestAfterReply: effects registered by a handler run after the reply is
// handed to the sender.
func TestAfterReply(t *testing.T) {
	m := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	var repliesAtEffect int
	m.Handle("urn:test", "q", func(_ context.Context, req Request) ([]byte, error) {
		req.AfterReply(func() { repliesAtEffect = len(out.replies) })
		return nil, nil
	})
	m.HandleServer(context.Background(), parse(t, `<iq from='alice@example.org/phone' type='set' id='1'><q xmlns='urn:test'/></iq>`))
	if repliesAtEffect != 1 {
		t.Errorf("effect ran with %d replies sent, want 1", repliesAtEffect)
	}
}

// TestAfterSet: observers see sets answered with a result, after the
// reply; not gets, not errors.
func TestAfterSet(t *testing.T) {
	m := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.Handle("urn:test", "q", func(_ context.Context, req Request) ([]byte, error) {
		if _, bad := req.Stanza.Child("urn:test", "q"); bad && bytes.Contains(req.Payload, []byte("bad")) {
			return nil, &stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		return nil, nil
	})
	var seen []string
	for _, name := range []string{"first", "second"} {
		m.AfterSet("urn:test", "q", func(_ context.Context, req Request) {
			seen = append(seen, name+" "+req.Stanza.ID+" after "+string(rune('0'+len(out.replies))))
		})
	}
	ctx := context.Background()
	m.HandleServer(ctx, parse(t, `<iq from='alice@example.org/phone' type='get' id='g'><q xmlns='urn:test'/></iq>`))
	m.HandleServer(ctx, parse(t, `<iq from='alice@example.org/phone' type='set' id='e'><q xmlns='urn:test'>bad</q></iq>`))
	m.HandleServer(ctx, parse(t, `<iq from='alice@example.org/phone' type='set' id='s'><q xmlns='urn:test'/></iq>`))
	want := []string{"first s after 3", "second s after 3"}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("observers saw %q, want %q", seen, want)
	}
}
