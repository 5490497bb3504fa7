package caps

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

type fakeSession struct {
	full jid.JID
	mu   sync.Mutex
	got  []string
}

func (s *fakeSession) JID() jid.JID { return s.full }
func (s *fakeSession) Deliver(raw []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, string(raw))
	return true
}
func (s *fakeSession) Available() (bool, int) { return true, 0 }
func (s *fakeSession) SetAvailable(bool, int) {}
func (s *fakeSession) Replace()               {}

// take returns what was delivered since the last call.
func (s *fakeSession) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

type env struct {
	t     *testing.T
	bus   *event.Bus
	tr    *Tracker
	known []Known
	mu    sync.Mutex
	// passed counts the client stanzas no handler stopped.
	passed int
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, bus: &event.Bus{}}
	e.tr = &Tracker{Bus: e.bus, Timeout: 10 * time.Second}
	e.tr.Register()
	// What presence does: stop every presence stanza, after the tracker.
	event.On(e.bus, event.Normal, "presence", func(_ context.Context, ev *c2s.ClientStanza) bool {
		return ev.Stanza.Kind == stanza.Presence
	})
	event.On(e.bus, event.Last, "test", func(_ context.Context, ev *c2s.ClientStanza) bool {
		e.mu.Lock()
		e.passed++
		e.mu.Unlock()
		return false
	})
	event.On(e.bus, event.Normal, "test", func(_ context.Context, k *Known) bool {
		e.mu.Lock()
		e.known = append(e.known, *k)
		e.mu.Unlock()
		return false
	})
	return e
}

func (e *env) session(full string) *fakeSession {
	return &fakeSession{full: jid.MustParse(full)}
}

// send fires a client stanza as c2s does: 'from' stamped.
func (e *env) send(s *fakeSession, raw string) {
	e.t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	st = st.WithAddresses(s.full, st.To)
	event.Fire(context.Background(), e.bus, &c2s.ClientStanza{Session: s, Stanza: st})
}

func presenceWith(hash, ver string) string {
	return "<presence><c xmlns='http://jabber.org/protocol/caps' hash='" + hash + "' node='http://code.google.com/p/exodus' ver='" + ver + "'/></presence>"
}

const simpleVer = "QgayPKawpkPSDYmwT/WM94uAlu0="

// queryID checks that got is one disco#info query for node#ver to s and
// returns its id.
func queryID(t *testing.T, s *fakeSession, got []string, ver string) string {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s got %d stanzas, want one query: %q", s.full, len(got), got)
	}
	st, err := stanza.ParseElement([]byte(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	name, raw, _ := st.Payload()
	if st.Kind != stanza.IQ || st.Type != "get" || st.To.String() != s.full.String() ||
		st.From.String() != s.full.Domainpart() || name.Space != NSInfo ||
		!strings.Contains(string(raw), "node='http://code.google.com/p/exodus#"+ver+"'") {
		t.Fatalf("not the query expected: %s", got[0])
	}
	return st.ID
}

func answerWith(id, query string) string {
	return "<iq type='result' to='localhost' id='" + id + "'>" + query + "</iq>"
}

func TestOneQueryPerVerAcrossSessions(t *testing.T) {
	e := newEnv(t)
	a := e.session("alice@localhost/a")
	b := e.session("bob@localhost/b")
	e.send(a, presenceWith("sha-1", simpleVer))
	id := queryID(t, a, a.take(), simpleVer)
	// bob announces the same ver while it is asked: not asked himself.
	e.send(b, presenceWith("sha-1", simpleVer))
	if got := b.take(); len(got) != 0 {
		t.Fatalf("bob was sent %q", got)
	}
	if _, ok := e.tr.Features(a); ok {
		t.Fatal("features known before the answer")
	}
	e.send(a, answerWith(id, simple))
	if e.passed != 0 {
		t.Errorf("the answer went on to be routed")
	}
	for _, s := range []*fakeSession{a, b} {
		f, ok := e.tr.Features(s)
		if !ok || !f.Verified || !f.Has("http://jabber.org/protocol/muc") || f.Has("urn:xmpp:nothing") {
			t.Errorf("%s: features %v, %v", s.full, f.List(), ok)
		}
		if !e.tr.Has(s, "http://jabber.org/protocol/caps") {
			t.Errorf("%s: Has says no", s.full)
		}
	}
	if len(e.known) != 2 {
		t.Errorf("Known fired %d times, want 2", len(e.known))
	}
	// A third session, later: from the cache, at once, no query.
	c := e.session("carol@example.org/c")
	e.send(c, presenceWith("sha-1", simpleVer))
	if got := c.take(); len(got) != 0 {
		t.Fatalf("carol was sent %q", got)
	}
	if !e.tr.Has(c, "http://jabber.org/protocol/muc") || len(e.known) != 3 {
		t.Errorf("carol's features not known from the cache")
	}
	// The same presence again: nothing new.
	e.send(c, presenceWith("sha-1", simpleVer))
	if len(e.known) != 3 {
		t.Errorf("Known fired again for the same ver")
	}
	// Messages and other IQ results go on untouched.
	e.send(a, "<message to='bob@localhost'><body>hi</body></message>")
	e.send(a, "<iq type='result' to='localhost' id='caps-zzz'/>")
	if e.passed != 2 {
		t.Errorf("%d stanzas went on, want 2", e.passed)
	}
}

func TestForgedVer(t *testing.T) {
	e := newEnv(t)
	a := e.session("mallory@localhost/a")
	b := e.session("bob@localhost/b")
	forged := "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	e.send(a, presenceWith("sha-1", forged))
	id := queryID(t, a, a.take(), forged)
	e.send(b, presenceWith("sha-1", forged))
	e.send(a, answerWith(id, simple))
	if _, ok := e.tr.Cached("sha-1", forged); ok {
		t.Fatal("a forged ver was cached")
	}
	// mallory keeps what she said, for herself, unverified.
	if f, ok := e.tr.Features(a); !ok || f.Verified || !f.Has("http://jabber.org/protocol/muc") {
		t.Errorf("mallory's features: %v %v", f.List(), ok)
	}
	// bob, who announced the same ver, is asked in turn (§5.4 step 3.9).
	if _, ok := e.tr.Features(b); ok {
		t.Error("bob got mallory's features")
	}
	id = queryID(t, b, b.take(), forged)
	// An answer from another session with that id is not taken.
	e.send(a, answerWith(id, simple))
	if e.passed != 1 {
		t.Errorf("an answer from the wrong session was taken")
	}
	e.send(b, "<iq type='error' to='localhost' id='"+id+"'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	if _, ok := e.tr.Features(b); ok {
		t.Error("bob's features known from an error")
	}
	if _, n := e.tr.Sessions(); n != 0 {
		t.Errorf("%d queries in flight", n)
	}
}

func TestIllFormedAnswer(t *testing.T) {
	e := newEnv(t)
	a := e.session("alice@localhost/a")
	e.send(a, presenceWith("sha-1", simpleVer))
	id := queryID(t, a, a.take(), simpleVer)
	dup := strings.Replace(simple, "</query>", "<feature var='http://jabber.org/protocol/muc'/></query>", 1)
	e.send(a, answerWith(id, dup))
	if _, ok := e.tr.Features(a); ok {
		t.Error("features of an ill-formed answer kept")
	}
	if _, ok := e.tr.Cached("sha-1", simpleVer); ok {
		t.Error("an ill-formed answer cached")
	}
}

func TestOtherHashesAndLegacy(t *testing.T) {
	e := newEnv(t)
	a := e.session("alice@localhost/a")
	info := mustParse(t, simple)
	ver256, _ := Ver(info, "sha-256")
	e.send(a, presenceWith("sha-256", ver256))
	e.send(a, answerWith(queryID(t, a, a.take(), ver256), simple))
	if f, ok := e.tr.Features(a); !ok || !f.Verified {
		t.Errorf("sha-256: %v %v", f, ok)
	}
	if _, ok := e.tr.Cached("sha-256", ver256); !ok {
		t.Error("sha-256 ver not cached")
	}
	// A hash not supported: asked, for that session only.
	b := e.session("bob@localhost/b")
	e.send(b, presenceWith("sha3-256", "whatever"))
	e.send(b, answerWith(queryID(t, b, b.take(), "whatever"), simple))
	if f, ok := e.tr.Features(b); !ok || f.Verified || !f.Has("http://jabber.org/protocol/muc") {
		t.Errorf("unsupported hash: %v %v", f, ok)
	}
	if _, ok := e.tr.Cached("sha3-256", "whatever"); ok {
		t.Error("an unverifiable ver was cached")
	}
	// Legacy caps (no hash): ignored.
	c := e.session("carol@localhost/c")
	e.send(c, "<presence><c xmlns='http://jabber.org/protocol/caps' node='http://psi-im.org/caps' ver='0.11'/></presence>")
	if got := c.take(); len(got) != 0 {
		t.Errorf("legacy caps queried: %q", got)
	}
	// Directed presence is not looked at.
	e.send(c, "<presence to='room@muc.localhost/c'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='"+simpleVer+"'/></presence>")
	if _, ok := e.tr.Features(c); ok {
		t.Error("directed presence's caps taken")
	}
}

func TestCacheBounded(t *testing.T) {
	e := newEnv(t)
	e.tr.MaxCached = 3
	var vers []string
	for i := range 5 {
		q := strings.Replace(simple, "</query>", fmt.Sprintf("<feature var='urn:x:%d'/></query>", i), 1)
		ver, err := Ver(mustParse(t, q), "sha-1")
		if err != nil {
			t.Fatal(err)
		}
		vers = append(vers, ver)
		s := e.session(fmt.Sprintf("u%d@localhost/r", i))
		e.send(s, presenceWith("sha-1", ver))
		e.send(s, answerWith(queryID(t, s, s.take(), ver), q))
		if !e.tr.Has(s, fmt.Sprintf("urn:x:%d", i)) {
			t.Fatalf("session %d: features unknown", i)
		}
		if i == 2 {
			e.tr.Cached("sha-1", vers[0]) // not a use: Cached does not refresh
			// A session announcing vers[0] again uses it: most recent.
			e.send(e.session("again@localhost/r"), presenceWith("sha-1", vers[0]))
		}
	}
	for i, want := range []bool{true, false, false, true, true} {
		if _, ok := e.tr.Cached("sha-1", vers[i]); ok != want {
			t.Errorf("ver %d cached: %v, want %v", i, ok, want)
		}
	}
}

func TestForgetsEndedSessions(t *testing.T) {
	e := newEnv(t)
	a := e.session("alice@localhost/a")
	b := e.session("bob@localhost/b")
	e.send(a, presenceWith("sha-1", simpleVer))
	queryID(t, a, a.take(), simpleVer)
	e.send(b, presenceWith("sha-1", simpleVer))
	// alice ends before answering: bob is asked instead.
	event.Fire(context.Background(), e.bus, &c2s.SessionEnded{Session: a})
	id := queryID(t, b, b.take(), simpleVer)
	e.send(b, answerWith(id, simple))
	if !e.tr.Has(b, "http://jabber.org/protocol/muc") {
		t.Error("bob's features unknown")
	}
	event.Fire(context.Background(), e.bus, &c2s.SessionEnded{Session: b})
	if n, q := e.tr.Sessions(); n != 0 || q != 0 {
		t.Errorf("%d sessions, %d queries left", n, q)
	}
	if _, ok := e.tr.Features(b); ok {
		t.Error("an ended session's features kept")
	}
	if _, ok := e.tr.Cached("sha-1", simpleVer); !ok {
		t.Error("the cache forgot the ver with the session")
	}
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		a := e.session("alice@localhost/a")
		b := e.session("bob@localhost/b")
		e.send(a, presenceWith("sha-1", simpleVer))
		queryID(t, a, a.take(), simpleVer)
		e.send(b, presenceWith("sha-1", simpleVer))
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := b.take(); len(got) != 0 {
			t.Fatalf("bob asked before the timeout: %q", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// alice never answered: given up, bob asked.
		id := queryID(t, b, b.take(), simpleVer)
		e.send(b, answerWith(id, simple))
		if !e.tr.Has(b, "http://jabber.org/protocol/muc") {
			t.Error("bob's features unknown")
		}
		// alice still announces that ver: bob's verified answer holds
		// for her too.
		if !e.tr.Has(a, "http://jabber.org/protocol/muc") {
			t.Error("alice's features unknown")
		}
		if _, n := e.tr.Sessions(); n != 0 {
			t.Errorf("%d queries in flight", n)
		}
	})
}

func TestNewVerWhileAsked(t *testing.T) {
	e := newEnv(t)
	a := e.session("alice@localhost/a")
	e.send(a, presenceWith("sha-1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	id := queryID(t, a, a.take(), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	// One query in flight per session: the new ver waits for the first.
	e.send(a, presenceWith("sha-1", simpleVer))
	if got := a.take(); len(got) != 0 {
		t.Fatalf("a second query in flight: %q", got)
	}
	e.send(a, "<iq type='error' to='localhost' id='"+id+"'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	e.send(a, answerWith(queryID(t, a, a.take(), simpleVer), simple))
	if f, ok := e.tr.Features(a); !ok || !f.Verified {
		t.Errorf("features of the new ver: %v %v", f, ok)
	}
}

var _ router.Session = (*fakeSession)(nil)

func TestScanCaps(t *testing.T) {
	for _, tc := range []struct{ raw, hash, node, ver string }{
		{`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/>`, "sha-1", "n", "v="},
		{`<c  ver = "v" xmlns="http://jabber.org/protocol/caps"
		   node="a&amp;b" hash="sha-1"></c>`, "sha-1", "a&b", "v"},
		{`<caps:c xmlns:caps='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='&#x41;'/>`, "sha-1", "n", "A"},
	} {
		st, err := stanza.ParseElement([]byte("<presence>" + tc.raw + "</presence>"))
		if err != nil {
			t.Fatal(err)
		}
		hash, node, ver, ok := capsOf(st)
		if !ok || hash != tc.hash || node != tc.node || ver != tc.ver {
			t.Errorf("%s: %q %q %q %v", tc.raw, hash, node, ver, ok)
		}
	}
}

// BenchmarkMessage is what the tracker costs a message a client sends.
func BenchmarkMessage(b *testing.B) {
	tr := &Tracker{Bus: &event.Bus{}}
	s := &fakeSession{full: jid.MustParse("alice@localhost/a")}
	st, _ := stanza.ParseElement([]byte("<message from='alice@localhost/a' to='bob@localhost'><body>hi</body></message>"))
	e := &c2s.ClientStanza{Session: s, Stanza: st}
	b.ReportAllocs()
	for b.Loop() {
		tr.clientStanza(context.Background(), e)
	}
}

// BenchmarkKnownPresence is what presence announcing a 'ver' the session
// announced before costs.
func BenchmarkKnownPresence(b *testing.B) {
	tr := &Tracker{Bus: &event.Bus{}}
	s := &fakeSession{full: jid.MustParse("alice@localhost/a")}
	st, _ := stanza.ParseElement([]byte("<presence from='alice@localhost/a'><show>away</show>" +
		"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='" + simpleVer + "'/></presence>"))
	e := &c2s.ClientStanza{Session: s, Stanza: st}
	tr.clientStanza(context.Background(), e)
	b.ReportAllocs()
	for b.Loop() {
		tr.clientStanza(context.Background(), e)
	}
}
