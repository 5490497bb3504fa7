package router

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stanza"
)

// fakeSession records what it is given.
type fakeSession struct {
	full      jid.JID
	available bool
	prio      int
	got       []string
}

func (s *fakeSession) JID() jid.JID                   { return s.full }
func (s *fakeSession) Deliver(raw []byte) bool        { s.got = append(s.got, string(raw)); return true }
func (s *fakeSession) Available() (bool, int)         { return s.available, s.prio }
func (s *fakeSession) SetAvailable(ok bool, prio int) { s.available, s.prio = ok, prio }
func (s *fakeSession) Replace()                       {}

// recorder is the server, a service and the remote handler at once.
type recorder struct{ server, service, remote []string }

func (r *recorder) HandleServer(_ context.Context, s *stanza.Stanza) {
	r.server = append(r.server, s.ID)
}
func (r *recorder) HandleService(_ context.Context, s *stanza.Stanza) {
	r.service = append(r.service, s.ID)
}
func (r *recorder) RouteRemote(_ context.Context, s *stanza.Stanza) {
	r.remote = append(r.remote, s.ID)
}

func parse(t *testing.T, raw string) *stanza.Stanza {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type env struct {
	r                  *Local
	rec                *recorder
	bus                *event.Bus
	phone, laptop, bob *fakeSession
}

func newEnv(t *testing.T) *env {
	e := &env{rec: &recorder{}, bus: &event.Bus{}}
	exists := func(_ context.Context, bare jid.JID) bool {
		return bare.String() == "alice@example.org" || bare.String() == "bob@example.org" || bare.String() == "carol@example.org"
	}
	e.r = New([]string{"example.org"}, exists, e.rec, e.bus)
	e.phone = &fakeSession{full: jid.MustParse("alice@example.org/phone"), available: true, prio: 5}
	e.laptop = &fakeSession{full: jid.MustParse("alice@example.org/laptop"), available: true, prio: 1}
	e.bob = &fakeSession{full: jid.MustParse("bob@example.org/pc"), available: true}
	for _, s := range []*fakeSession{e.phone, e.laptop, e.bob} {
		if err := e.r.Bind(s, 10); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestAddressSpace: Route decides by 'to' (RFC 6120 §10).
func TestAddressSpace(t *testing.T) {
	e := newEnv(t)
	e.r.AddService("conference.example.org", e.rec)
	ctx := context.Background()
	route := func(raw string) { e.r.Route(ctx, parse(t, raw)) }

	route(`<iq from='bob@example.org/pc' type='get' id='noto'><ping xmlns='urn:xmpp:ping'/></iq>`)
	route(`<iq from='bob@example.org/pc' to='example.org' type='get' id='host'><ping xmlns='urn:xmpp:ping'/></iq>`)
	route(`<iq from='bob@example.org/pc' to='alice@example.org' type='get' id='bare'><vCard xmlns='vcard-temp'/></iq>`)
	route(`<presence from='bob@example.org/pc' to='room@conference.example.org/bob' id='join'/>`)
	route(`<message from='bob@example.org/pc' to='room@conference.example.org' type='groupchat' id='gc'/>`)
	if got := strings.Join(e.rec.server, " "); got != "noto host bare" {
		t.Errorf("server got %q", got)
	}
	if got := strings.Join(e.rec.service, " "); got != "join gc" {
		t.Errorf("service got %q", got)
	}

	// A remote domain without a Remote: remote-server-not-found, from the
	// address the stanza was sent to (RFC 6120 §8.3.1).
	route(`<message from='bob@example.org/pc' to='juliet@remote.example/balcony' type='chat' id='far'><body>x</body></message>`)
	if n := len(e.bob.got); n != 1 || !strings.Contains(e.bob.got[0], "from='juliet@remote.example/balcony'") || !strings.Contains(e.bob.got[0], "remote-server-not-found") {
		t.Fatalf("bob got %q", e.bob.got)
	}
	e.r.SetRemote(e.rec)
	route(`<message from='bob@example.org/pc' to='juliet@remote.example' type='chat' id='far2'><body>x</body></message>`)
	if got := strings.Join(e.rec.remote, " "); got != "far2" {
		t.Errorf("remote got %q", got)
	}
}

// TestDelivery: full and bare JIDs of local accounts (RFC 6121 §8.5), and
// the events on the way.
func TestDelivery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var delivered []string
	event.On(e.bus, event.Normal, "test", func(_ context.Context, d *Delivered) bool {
		var to []string
		for _, s := range d.Sessions {
			to = append(to, s.JID().String())
		}
		delivered = append(delivered, d.Stanza.ID+" to ["+strings.Join(to, " ")+"]")
		return false
	})
	var noResource []string
	event.On(e.bus, event.Normal, "test", func(_ context.Context, n *NoResource) bool {
		noResource = append(noResource, n.Stanza.ID)
		if n.Stanza.ID == "stored" {
			n.Err = nil
		}
		return true
	})
	var account []string
	event.On(e.bus, event.Normal, "test", func(_ context.Context, a *AccountPresence) bool {
		account = append(account, a.Stanza.Type)
		return true
	})
	route := func(raw string) { e.r.Route(ctx, parse(t, raw)) }

	route(`<message from='bob@example.org/pc' to='alice@example.org/laptop' type='chat' id='full'><body>x</body></message>`)
	route(`<message from='bob@example.org/pc' to='alice@example.org' type='chat' id='bare'><body>x</body></message>`)
	if len(e.laptop.got) != 1 || len(e.phone.got) != 1 {
		t.Fatalf("laptop %q, phone %q", e.laptop.got, e.phone.got)
	}
	if got := strings.Join(delivered, ", "); got != "full to [alice@example.org/laptop], bare to [alice@example.org/phone]" {
		t.Errorf("Delivered: %s", got)
	}

	// Subscription presence and probes, even to a full JID, are the
	// account's (RFC 6121 §3.1.3, §4.3.2).
	route(`<presence from='bob@example.org/pc' to='alice@example.org/phone' type='subscribe'/>`)
	route(`<presence from='bob@example.org' to='alice@example.org' type='probe'/>`)
	if got := strings.Join(account, " "); got != "subscribe probe" {
		t.Errorf("AccountPresence: %s", got)
	}

	// carol has no session: NoResource; an error bounces unless a
	// handler stored the message.
	route(`<message from='bob@example.org/pc' to='carol@example.org' type='chat' id='stored'><body>x</body></message>`)
	route(`<message from='bob@example.org/pc' to='carol@example.org' type='chat' id='bounced'><body>x</body></message>`)
	if got := strings.Join(noResource, " "); got != "stored bounced" {
		t.Errorf("NoResource: %s", got)
	}
	// Stored offline: Delivered, to no session; bounced: not Delivered.
	if got := strings.Join(delivered[2:], ", "); got != "stored to []" {
		t.Errorf("Delivered after NoResource: %s", got)
	}
	if len(e.bob.got) != 1 || !strings.Contains(e.bob.got[0], "id='bounced'") || !strings.Contains(e.bob.got[0], "service-unavailable") {
		t.Errorf("bob got %q", e.bob.got)
	}
}

// TestRoutingReplaces: a Routing handler may replace the stanza and mark
// it not to be copied; Delivered carries both.
func TestRoutingReplaces(t *testing.T) {
	e := newEnv(t)
	event.On(e.bus, event.Normal, "test", func(_ context.Context, r *Routing) bool {
		if r.Stanza.ID == "private" {
			r.Stanza = parse(t, `<message from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='stripped'/>`)
			r.NoCopy = true
		}
		return false
	})
	var got string
	event.On(e.bus, event.Normal, "test", func(_ context.Context, d *Delivered) bool {
		got = d.Stanza.ID
		if d.NoCopy {
			got += " no-copy"
		}
		return false
	})
	e.r.Route(context.Background(), parse(t, `<message from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='private'/>`))
	if got != "stripped no-copy" || len(e.phone.got) != 1 || !strings.Contains(e.phone.got[0], "stripped") {
		t.Errorf("Delivered %q; phone got %q", got, e.phone.got)
	}
}

// TestRoutingStops: a Routing handler that stops a stanza keeps it from
// every rule.
func TestRoutingStops(t *testing.T) {
	e := newEnv(t)
	event.On(e.bus, event.First, "test", func(_ context.Context, r *Routing) bool {
		return r.Stanza.ID == "stop"
	})
	e.r.Route(context.Background(), parse(t, `<message from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='stop'/>`))
	e.r.Route(context.Background(), parse(t, `<message from='bob@example.org/pc' to='alice@example.org/phone' type='chat' id='go'/>`))
	if len(e.phone.got) != 1 || !strings.Contains(e.phone.got[0], "id='go'") {
		t.Errorf("phone got %q", e.phone.got)
	}
}

func BenchmarkRouteFull(b *testing.B) {
	bus := &event.Bus{}
	r := New([]string{"example.org"}, nil, &recorder{}, bus)
	to := &discard{full: jid.MustParse("alice@example.org/phone")}
	r.Bind(to, 10)
	event.On(bus, event.First, "blocking", func(context.Context, *Routing) bool { return false })
	event.On(bus, event.Normal, "carbons", func(context.Context, *Delivered) bool { return false })
	st, _ := stanza.ParseElement([]byte(`<message from='bob@example.org/pc' to='alice@example.org/phone' type='chat'><body>hi</body></message>`))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r.Route(ctx, st)
	}
}

type discard struct{ full jid.JID }

func (s *discard) JID() jid.JID           { return s.full }
func (s *discard) Deliver([]byte) bool    { return true }
func (s *discard) Available() (bool, int) { return true, 0 }
func (s *discard) SetAvailable(bool, int) {}
func (s *discard) Replace()               {}

// TestHostSessions: the sessions of one host's accounts, by full JID.
func TestHostSessions(t *testing.T) {
	e := newEnv(t)
	other := &fakeSession{full: jid.MustParse("dave@example.net/x")}
	if err := e.r.Bind(other, 10); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range e.r.HostSessions("example.org") {
		got = append(got, s.JID().String())
	}
	if want := "alice@example.org/laptop alice@example.org/phone bob@example.org/pc"; strings.Join(got, " ") != want {
		t.Errorf("HostSessions = %v, want %s", got, want)
	}
	e.r.Unbind(e.bob)
	if n := len(e.r.HostSessions("example.org")); n != 2 {
		t.Errorf("after an unbind: %d sessions, want 2", n)
	}
	if n := len(e.r.HostSessions("example.com")); n != 0 {
		t.Errorf("a host without sessions: %d", n)
	}
}
