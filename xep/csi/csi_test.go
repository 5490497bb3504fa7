package csi

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/stream"
)

// fakeClient is a c2s.Client that records what it queues, as a session's
// Deliver does (the holder first).
type fakeClient struct {
	mu     sync.Mutex
	holder c2s.Holder
	out    []string
	closed bool // DeliverNow refuses, as a session that ended does
}

func (c *fakeClient) JID() jid.JID              { return jid.MustParse("alice@localhost/phone") }
func (c *fakeClient) Available() (bool, int)    { return true, 0 }
func (c *fakeClient) SetAvailable(bool, int)    {}
func (c *fakeClient) Replace()                  {}
func (c *fakeClient) Detached() bool            { return false }
func (c *fakeClient) SetHolder(h c2s.Holder)    { c.mu.Lock(); c.holder = h; c.mu.Unlock() }
func (c *fakeClient) currentHolder() c2s.Holder { c.mu.Lock(); defer c.mu.Unlock(); return c.holder }
func (c *fakeClient) Deliver(raw []byte) bool {
	if h := c.currentHolder(); h != nil && h.Hold(raw) {
		return true
	}
	return c.DeliverNow(raw)
}

func (c *fakeClient) DeliverNow(raw []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.out = append(c.out, string(raw))
	return true
}

// take returns what was queued since the last take.
func (c *fakeClient) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// setup is a service on a bus with one client.
type setup struct {
	t   *testing.T
	bus *event.Bus
	svc *service
	c   *fakeClient
}

func newSetup(t *testing.T, o Options) *setup {
	bus := &event.Bus{}
	svc := newService(func() Options { return o })
	svc.register(bus)
	return &setup{t: t, bus: bus, svc: svc, c: &fakeClient{}}
}

// nonza fires ClientNonza for <local xmlns=space/> and reports whether a
// handler took it.
func (s *setup) nonza(space, local string) bool {
	raw := fmt.Sprintf("<%s xmlns='%s'/>", local, space)
	el := &stream.Element{Name: xml.Name{Space: space, Local: local}, Raw: []byte(raw), StartLen: len(raw)}
	return event.Fire(context.Background(), s.bus, &c2s.ClientNonza{Session: s.c, Element: el})
}

func (s *setup) deliver(raws ...string) {
	for _, r := range raws {
		if !s.c.Deliver([]byte(r)) {
			s.t.Fatalf("Deliver(%s) = false", r)
		}
	}
}

func (s *setup) expect(want ...string) {
	s.t.Helper()
	got := s.c.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		s.t.Fatalf("queued:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

var defaults = Options{MaxStanzas: defaultMaxStanzas, MaxBytes: defaultMaxBytes}

const (
	presB1  = `<presence from='bob@localhost/a' to='alice@localhost/phone'><show>away</show></presence>`
	presB2  = `<presence from='bob@localhost/a' to='alice@localhost/phone'/>`
	presB3  = `<presence from='bob@localhost/a' to='alice@localhost/phone' type='unavailable'/>`
	presC1  = `<presence from='carol@localhost/x' to='alice@localhost/phone'><status>lunch</status></presence>`
	presC2  = `<presence from='carol@localhost/x' to='alice@localhost/phone'><show>dnd</show></presence>`
	presB2b = `<presence from='bob@localhost/b' to='alice@localhost/phone'/>`
	typing  = `<message from='bob@localhost/a' to='alice@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`
	paused  = `<message from='bob@localhost/a' to='alice@localhost/phone' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`
	receipt = `<message from='bob@localhost/a' to='alice@localhost/phone'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`
	marker  = `<message from='bob@localhost/a' to='alice@localhost/phone' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`
	hello   = `<message from='bob@localhost/a' to='alice@localhost/phone' type='chat'><body>hello</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	subReq  = `<presence from='dave@localhost' to='alice@localhost' type='subscribe'/>`
	iqGet   = `<iq from='bob@localhost/a' to='alice@localhost/phone' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`
)

func TestActiveSessionsHaveNoHolder(t *testing.T) {
	s := newSetup(t, defaults)
	if s.c.currentHolder() != nil {
		t.Fatal("holder before <inactive/>")
	}
	if !s.nonza(NS, "active") {
		t.Fatal("<active/> not handled")
	}
	s.deliver(presB1)
	s.expect(presB1)
	if s.nonza(NS, "bogus") {
		t.Fatal("an unknown element of urn:xmpp:csi:0 was handled")
	}
	if s.nonza("urn:example", "inactive") {
		t.Fatal("<inactive/> of another namespace was handled")
	}
	if s.c.currentHolder() != nil || s.svc.inactiveCount() != 0 {
		t.Fatal("state after elements that are not <inactive/>")
	}
}

func TestInactiveHoldsAndCollapses(t *testing.T) {
	s := newSetup(t, defaults)
	s.nonza(NS, "inactive")
	s.nonza(NS, "inactive") // no error, no new state
	s.deliver(presB1, presC1, typing, receipt, presB2, paused, marker, presC2, presB2b)
	s.expect()
	h := s.c.currentHolder().(*holder)
	if n, _ := h.count(); n != 6 {
		t.Fatalf("held %d, want 6 (receipt, marker, latest of bob/a, carol, bob/b, chat state)", n)
	}
	// A message with a body releases what was held, in the order it
	// came, replaced ones gone, and then goes itself.
	s.deliver(hello)
	s.expect(receipt, presB2, paused, marker, presC2, presB2b, hello)
	// Unavailable replaces available.
	s.deliver(presB1, presB3)
	s.expect()
	s.nonza(NS, "active")
	s.expect(presB3)
	if s.c.currentHolder() != nil || s.svc.inactiveCount() != 0 {
		t.Fatal("holder left after <active/>")
	}
	s.deliver(presB1)
	s.expect(presB1)
}

func TestUrgentReleasesFirst(t *testing.T) {
	for _, urgent := range []string{subReq, iqGet, `<message from='bob@localhost/a' type='error'><error type='cancel'/></message>`} {
		s := newSetup(t, defaults)
		s.nonza(NS, "inactive")
		s.deliver(presB1, typing)
		s.expect()
		s.deliver(urgent)
		s.expect(presB1, typing, urgent)
	}
}

func TestBounded(t *testing.T) {
	s := newSetup(t, Options{MaxStanzas: 3, MaxBytes: 1 << 20})
	s.nonza(NS, "inactive")
	s.deliver(receipt, marker, receipt)
	s.expect()
	s.deliver(marker) // the fourth: everything goes
	s.expect(receipt, marker, receipt, marker)
	// Replacing does not count twice.
	for range 10 {
		s.deliver(presB1, presB2)
	}
	s.expect()
	s.nonza(NS, "active")
	s.expect(presB2)

	s = newSetup(t, Options{MaxStanzas: 100, MaxBytes: 2 * len(receipt)})
	s.nonza(NS, "inactive")
	s.deliver(receipt, receipt)
	s.expect()
	s.deliver(receipt)
	s.expect(receipt, receipt, receipt)
}

func TestCompaction(t *testing.T) {
	s := newSetup(t, defaults)
	s.nonza(NS, "inactive")
	for i := range 1000 {
		s.deliver(fmt.Sprintf(`<presence from='bob@localhost/a'><priority>%d</priority></presence>`, i%100),
			fmt.Sprintf(`<presence from='carol@localhost/x'><priority>%d</priority></presence>`, i%100))
	}
	h := s.c.currentHolder().(*holder)
	h.mu.Lock()
	n, live := len(h.held), h.live
	h.mu.Unlock()
	if live != 2 || n > 2*live+16 {
		t.Fatalf("%d entries for %d live", n, live)
	}
	s.nonza(NS, "active")
	s.expect(`<presence from='bob@localhost/a'><priority>99</priority></presence>`,
		`<presence from='carol@localhost/x'><priority>99</priority></presence>`)
}

func TestSessionEnded(t *testing.T) {
	s := newSetup(t, defaults)
	s.nonza(NS, "inactive")
	s.deliver(presB1)
	s.c.mu.Lock()
	s.c.closed = true
	s.c.mu.Unlock()
	event.Fire(context.Background(), s.bus, &c2s.SessionEnded{Session: s.c})
	if s.c.currentHolder() != nil || s.svc.inactiveCount() != 0 {
		t.Fatal("state kept after the session ended")
	}
	// A holder still reached by a late delivery lets it through (to a
	// session that refuses it).
	h := newHolder(s.c, 10, 1<<20)
	h.ended.Store(true)
	if h.Hold([]byte(presB1)) {
		t.Fatal("an ended holder held a stanza")
	}
}

// TestConcurrentOrder delivers from several senders at once, as the
// router does: what each sender sent arrives in its order, its presence
// at most once each, and its last one last.
func TestConcurrentOrder(t *testing.T) {
	s := newSetup(t, Options{MaxStanzas: 7, MaxBytes: 1 << 20})
	s.nonza(NS, "inactive")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				var raw string
				switch i % 4 {
				case 0, 1:
					raw = fmt.Sprintf(`<presence from='u%d@localhost/r'><status>%d</status></presence>`, w, i)
				case 2:
					raw = fmt.Sprintf(`<message from='u%d@localhost/r'><received xmlns='urn:xmpp:receipts' id='%d'/></message>`, w, i)
				case 3:
					raw = fmt.Sprintf(`<message from='u%d@localhost/r' type='chat' id='%d'><body>b</body></message>`, w, i)
				}
				s.c.Deliver([]byte(raw))
			}
		})
	}
	wg.Wait()
	s.nonza(NS, "active")
	last := map[string]int{}
	for _, raw := range s.c.take() {
		from, _ := attrValue(raw, "from")
		n := seq(raw)
		if n <= last[from] && last[from] != 0 {
			t.Fatalf("from %s: %d after %d", from, n, last[from])
		}
		last[from] = n
	}
	for w := range 4 {
		if got := last[fmt.Sprintf("u%d@localhost/r", w)]; got != 199 {
			t.Fatalf("u%d: last %d, want 199", w, got)
		}
	}
}

// attrValue and seq read the test stanzas back.
func attrValue(raw, name string) (string, bool) {
	_, typ, from := startTag([]byte(raw))
	if name == "type" {
		return string(typ), typ != nil
	}
	return string(from), from != nil
}

func seq(raw string) int {
	var n int
	for _, pre := range []string{"<status>", "id='"} {
		if i := strings.Index(raw, pre); i >= 0 {
			fmt.Sscanf(raw[i+len(pre):], "%d", &n)
			return n
		}
	}
	return -1
}
