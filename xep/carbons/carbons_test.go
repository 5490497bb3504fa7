package carbons

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// TestEligible: the rules of §6 and §9, sent (received false) and
// received.
func TestEligible(t *testing.T) {
	for _, c := range []struct {
		name, raw      string
		sent, received bool
	}{
		{"chat", `<message type='chat'><body>hi</body></message>`, true, true},
		{"chat without body", `<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, true, true},
		{"normal with body", `<message type='normal'><body>hi</body></message>`, true, true},
		{"no type with body", `<message><body>hi</body></message>`, true, true},
		{"unknown type with body (RFC 6121 §5.2.2)", `<message type='other'><body>hi</body></message>`, true, true},
		{"body in jabber:client", `<message xmlns='jabber:client'><body>hi</body></message>`, true, true},
		{"normal without body", `<message><subject>s</subject></message>`, false, false},
		{"body nested deeper only", `<message><x xmlns='urn:example'><body>hi</body></x></message>`, false, false},
		{"receipt request", `<message><request xmlns='urn:xmpp:receipts'/></message>`, true, true},
		{"receipt", `<message><received xmlns='urn:xmpp:receipts' id='a'/></message>`, true, true},
		{"chat marker", `<message><displayed xmlns='urn:xmpp:chat-markers:0' id='a'/></message>`, true, true},
		{"chat state", `<message><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`, true, true},
		{"groupchat", `<message type='groupchat'><body>hi</body></message>`, false, false},
		{"headline", `<message type='headline'><body>hi</body></message>`, false, false},
		{"error", `<message type='error'><body>hi</body><error type='cancel'/></message>`, false, false},
		{"private", `<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>`, false, false},
		{"no-copy", `<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>`, false, false},
		{"other hint", `<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`, true, true},
		{"a sent carbon", `<message type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></sent></message>`, false, false},
		{"a received carbon", `<message type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received></message>`, false, false},
		{"MUC private message", `<message type='chat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`, true, false},
		{"MUC invitation", `<message><body>join</body><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>`, true, true},
	} {
		st, err := stanza.ParseElement([]byte(c.raw))
		if err != nil {
			t.Fatal(err)
		}
		f := inspect(st.Raw)
		if got := f.copied(st.Type, false); got != c.sent {
			t.Errorf("%s: sent carbon %v, want %v", c.name, got, c.sent)
		}
		if got := f.copied(st.Type, true); got != c.received {
			t.Errorf("%s: received carbon %v, want %v", c.name, got, c.received)
		}
	}
}

// TestWrapper: the carbon's envelope (§7, §8): from the bare JID, to the
// resource, the message's type; the forwarded message in jabber:client
// whether or not it declared it (a WebSocket client's does, RFC 7395
// §3.3.3).
func TestWrapper(t *testing.T) {
	account, to := jid.MustParse("alice@example.org"), jid.MustParse("alice@example.org/laptop")
	for _, c := range []struct{ raw, want string }{
		{
			`<message from='alice@example.org/phone' to='bob@example.org' type='chat' id='1'><body>a &amp; b</body></message>`,
			`<message from='alice@example.org' to='alice@example.org/laptop' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org' type='chat' id='1'><body>a &amp; b</body></message></forwarded></sent></message>`,
		},
		{
			`<message xmlns="jabber:client" from='alice@example.org/phone' to='bob@example.org'><body>hi</body></message>`,
			`<message from='alice@example.org' to='alice@example.org/laptop'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org'><body>hi</body></message></forwarded></sent></message>`,
		},
		{
			`<message from='alice@example.org/phone' to='bob@example.org'/>`,
			`<message from='alice@example.org' to='alice@example.org/laptop'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org'/></forwarded></sent></message>`,
		},
	} {
		st, err := stanza.ParseElement([]byte(c.raw))
		if err != nil {
			t.Fatal(err)
		}
		got := newWrapper(account, st, "sent").to(to)
		if err := xmlcmp.Equal([]byte(c.want), got, "jabber:client"); err != nil {
			t.Errorf("carbon of %s:\n%s\n%v", c.raw, got, err)
		}
	}
}

// TestWithoutPrivate: §9, the receiving server removes <private/>, and
// nothing else.
func TestWithoutPrivate(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{`<message to='b@x'><body>1</body><private xmlns='urn:xmpp:carbons:2'/></message>`, `<message to='b@x'><body>1</body></message>`},
		{`<message to='b@x'><private xmlns="urn:xmpp:carbons:2"></private><body>1</body><no-copy xmlns='urn:xmpp:hints'/></message>`, `<message to='b@x'><body>1</body><no-copy xmlns='urn:xmpp:hints'/></message>`},
		{`<message to='b@x'><x xmlns='urn:example'><private xmlns='urn:xmpp:carbons:2'/></x></message>`, `<message to='b@x'><x xmlns='urn:example'><private xmlns='urn:xmpp:carbons:2'/></x></message>`},
		{`<message to='b@x'><private xmlns='urn:example'/></message>`, `<message to='b@x'><private xmlns='urn:example'/></message>`},
	} {
		if got := string(withoutPrivate([]byte(c.raw))); got != c.want {
			t.Errorf("withoutPrivate(%s) = %s, want %s", c.raw, got, c.want)
		}
	}
}

// session is a router.Session that records what it is given.
type session struct {
	full jid.JID
	prio int

	mu  sync.Mutex
	got []string
}

func (s *session) JID() jid.JID { return s.full }
func (s *session) Deliver(raw []byte) bool {
	s.mu.Lock()
	s.got = append(s.got, string(raw))
	s.mu.Unlock()
	return true
}
func (s *session) Available() (bool, int) { return true, s.prio }
func (s *session) SetAvailable(bool, int) {}
func (s *session) Replace()               {}

func (s *session) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// setup is a router for example.org with the module's handlers on its bus,
// and a bound session per full JID (priority 0).
func setup(t *testing.T, full ...string) (*service, *router.Local, *event.Bus, []*session) {
	t.Helper()
	bus := &event.Bus{}
	r := router.New([]string{"example.org"}, func(context.Context, jid.JID) bool { return true }, nil, bus)
	s := newService(r)
	s.register(dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil))), bus)
	var sessions []*session
	for _, f := range full {
		sess := &session{full: jid.MustParse(f)}
		if err := r.Bind(sess, 0); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	return s, r, bus, sessions
}

func message(t *testing.T, raw string) *stanza.Stanza {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestForgottenAtEnd: the state is the session's (§4): its end
// (c2s.SessionEnded) forgets it, and a new session on the same full JID
// starts without carbons.
func TestForgottenAtEnd(t *testing.T) {
	s, r, bus, sess := setup(t, "alice@example.org/phone", "alice@example.org/laptop", "bob@example.org/x")
	phone, laptop, bob := sess[0], sess[1], sess[2]
	s.set(phone, true)
	s.set(laptop, true)
	s.set(laptop, true) // twice: still one
	if n := s.n.Load(); n != 2 {
		t.Fatalf("%d sessions enabled, want 2", n)
	}
	r.Unbind(laptop)
	event.Fire(context.Background(), bus, &c2s.SessionEnded{Session: laptop})
	if n := s.n.Load(); n != 1 || len(s.on) != 1 {
		t.Fatalf("after the laptop's end: n %d, %d sessions kept; want 1", n, len(s.on))
	}
	again := &session{full: laptop.full}
	if err := r.Bind(again, 0); err != nil {
		t.Fatal(err)
	}
	r.Route(context.Background(), message(t, "<message from='bob@example.org/x' to='alice@example.org/phone' type='chat'><body>hi</body></message>"))
	if got := again.received(); len(got) != 0 {
		t.Errorf("the new laptop session got %q", got)
	}
	if got := phone.received(); len(got) != 1 {
		t.Errorf("the phone got %q, want the message", got)
	}
	_ = bob
}

// TestConcurrent: messages routed at once from many goroutines each reach
// the resource the delivery rules pick and are copied once to the other
// (the sessions a message reached are noted per message, not per
// account).
func TestConcurrent(t *testing.T) {
	s, r, _, sess := setup(t, "alice@example.org/phone", "alice@example.org/laptop", "bob@example.org/x")
	phone, laptop := sess[0], sess[1]
	phone.prio = 1
	s.set(phone, true)
	s.set(laptop, true)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				to := "alice@example.org"
				if i%2 == 1 {
					to = "alice@example.org/phone"
				}
				r.Route(context.Background(), message(t, fmt.Sprintf("<message from='bob@example.org/x' to='%s' type='chat' id='%d-%d'><body>m</body></message>", to, w, i)))
			}
		})
	}
	wg.Wait()
	direct, carbons := phone.received(), laptop.received()
	if len(direct) != workers*each || len(carbons) != workers*each {
		t.Fatalf("phone got %d messages, laptop %d; want %d each", len(direct), len(carbons), workers*each)
	}
	for _, m := range direct {
		if strings.Contains(m, "urn:xmpp:carbons:2") {
			t.Fatalf("the phone, which got the message, also got a carbon: %s", m)
		}
	}
	seen := map[string]bool{}
	for _, m := range carbons {
		id := idAttr.FindStringSubmatch(m)
		if !strings.HasPrefix(m, "<message from='alice@example.org' type='chat' to='alice@example.org/laptop'><received xmlns='urn:xmpp:carbons:2'>") || id == nil {
			t.Fatalf("the laptop got %s, want a received carbon", m)
		}
		if seen[id[1]] {
			t.Fatalf("the laptop got %s twice", id[1])
		}
		seen[id[1]] = true
	}
}

var idAttr = regexp.MustCompile(` id='([^']*)'`)

// BenchmarkInspect: the eligibility check every message of an account with
// carbons enabled goes through.
func BenchmarkInspect(b *testing.B) {
	raw := []byte(`<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='a1b2c3'><body>Hello there, how are you doing today?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='abc'/></message>`)
	b.ReportAllocs()
	for b.Loop() {
		inspect(raw)
	}
}
