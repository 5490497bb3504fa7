package caps

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// fakeRouter serves localhost (and the service muc.localhost) and keeps
// what is routed.
type fakeRouter struct {
	router.Router
	mu     sync.Mutex
	routed []*stanza.Stanza
}

func (r *fakeRouter) IsLocal(d string) bool { return d == "localhost" || d == "muc.localhost" }
func (r *fakeRouter) Serves(d string) bool  { return d == "muc.localhost" }
func (r *fakeRouter) Route(_ context.Context, s *stanza.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routed = append(r.routed, s)
}

func (r *fakeRouter) take() []*stanza.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.routed
	r.routed = nil
	return got
}

type remoteEnv struct {
	*env
	r *fakeRouter
	// stopped counts the Routing events the tracker stopped.
	stopped int
}

func newRemoteEnv(t *testing.T, max int) *remoteEnv {
	e := &remoteEnv{env: &env{t: t, bus: &event.Bus{}}, r: &fakeRouter{}}
	e.tr = &Tracker{Bus: e.bus, Timeout: 10 * time.Second, Router: e.r, MaxRemote: max}
	e.tr.Register()
	event.On(e.bus, event.Normal, "test", func(_ context.Context, k *Known) bool {
		e.mu.Lock()
		e.known = append(e.known, *k)
		e.mu.Unlock()
		return false
	})
	return e
}

// arrive fires the Routing of a stanza from another server.
func (e *remoteEnv) arrive(raw string) {
	e.t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	if event.Fire(context.Background(), e.bus, &router.Routing{Stanza: st}) {
		e.stopped++
	}
}

func remotePresence(from, to, ver string) string {
	return "<presence from='" + from + "' to='" + to + "'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://code.google.com/p/exodus' ver='" + ver + "'/></presence>"
}

// remoteQuery checks that one disco#info query to full, from localhost,
// was routed, and returns its id.
func (e *remoteEnv) remoteQuery(full string) string {
	e.t.Helper()
	got := e.r.take()
	if len(got) != 1 {
		e.t.Fatalf("%d stanzas routed, want one query", len(got))
	}
	st := got[0]
	name, raw, _ := st.Payload()
	if st.Kind != stanza.IQ || st.Type != "get" || st.To.String() != full || st.From.String() != "localhost" ||
		name.Space != NSInfo || !strings.Contains(string(raw), "#"+simpleVer+"'") {
		e.t.Fatalf("not the query expected: %s", st.Raw)
	}
	return st.ID
}

func TestRemoteEntity(t *testing.T) {
	e := newRemoteEnv(t, 0)
	const juliet = "juliet@remote.test/balcony"
	e.arrive(remotePresence(juliet, "romeo@localhost", simpleVer))
	id := e.remoteQuery(juliet)
	if e.stopped != 0 {
		t.Fatal("presence stopped")
	}
	// An answer from another entity is not taken.
	e.arrive("<iq type='result' from='nurse@remote.test/x' to='localhost' id='" + id + "'>" + simple + "</iq>")
	if e.stopped != 0 || len(e.known) != 0 {
		t.Fatal("an answer from the wrong entity was taken")
	}
	e.arrive("<iq type='result' from='" + juliet + "' to='localhost' id='" + id + "'>" + simple + "</iq>")
	if e.stopped != 1 {
		t.Fatal("the answer was not stopped")
	}
	rs := e.tr.Remotes(jid.MustParse("juliet@remote.test"))
	if len(rs) != 1 || rs[0].JID().String() != juliet {
		t.Fatalf("Remotes: %v", rs)
	}
	if len(e.known) != 1 || e.known[0].Session != rs[0] || !e.known[0].Features.Verified || e.known[0].Locals != nil {
		t.Fatalf("Known: %+v", e.known)
	}
	if !e.tr.Has(rs[0], "http://jabber.org/protocol/muc") {
		t.Error("features not known")
	}
	if _, ok := e.tr.Cached("sha-1", simpleVer); !ok {
		t.Error("the verified ver is not in the shared cache")
	}
	if l := rs[0].Locals(); len(l) != 1 || l[0].String() != "romeo@localhost" {
		t.Errorf("Locals: %v", l)
	}
	// Its presence reaches another local account: Known again, for it.
	e.arrive(remotePresence(juliet, "benvolio@localhost", simpleVer))
	if len(e.known) != 2 || len(e.known[1].Locals) != 1 || e.known[1].Locals[0].String() != "benvolio@localhost" {
		t.Fatalf("Known: %+v", e.known)
	}
	// The same presence again: nothing.
	e.arrive(remotePresence(juliet, "benvolio@localhost", simpleVer))
	if len(e.known) != 2 || len(e.r.take()) != 0 {
		t.Fatal("the same presence did something")
	}
	// Another entity with that ver: from the cache, not asked.
	e.arrive(remotePresence("juliet@remote.test/tomb", "romeo@localhost", simpleVer))
	if len(e.r.take()) != 0 || len(e.known) != 3 || len(e.tr.Remotes(jid.MustParse("juliet@remote.test"))) != 2 {
		t.Fatal("the cached ver was not used")
	}
	// Unavailable forgets it.
	e.arrive("<presence type='unavailable' from='" + juliet + "' to='romeo@localhost'/>")
	if rs := e.tr.Remotes(jid.MustParse("juliet@remote.test")); len(rs) != 1 || rs[0].JID().Resourcepart() != "tomb" {
		t.Fatalf("Remotes after unavailable: %v", rs)
	}
	if n, _ := e.tr.Sessions(); n != 1 {
		t.Errorf("%d entities tracked, want 1", n)
	}
	// Presence of local users, of services of this server, without a
	// resource, or to a domain: ignored.
	for _, from := range []string{"alice@localhost/a", "room@muc.localhost/nick", "remote.test"} {
		e.arrive(remotePresence(from, "romeo@localhost", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	}
	e.arrive(remotePresence("x@remote.test/r", "localhost", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	if got := e.r.take(); len(got) != 0 || e.tr.RemoteCount() != 1 {
		t.Fatalf("ignored presence was tracked: %d routed, %d tracked", len(got), e.tr.RemoteCount())
	}
}

func TestRemoteBounded(t *testing.T) {
	e := newRemoteEnv(t, 2)
	e.arrive(remotePresence("a@remote.test/r", "romeo@localhost", simpleVer))
	id := e.remoteQuery("a@remote.test/r")
	e.arrive(remotePresence("b@remote.test/r", "romeo@localhost", simpleVer))
	e.arrive(remotePresence("c@remote.test/r", "romeo@localhost", simpleVer))
	// a, the least recently seen, is forgotten, and its query given up:
	// b is asked in its place.
	if e.tr.RemoteCount() != 2 || len(e.tr.Remotes(jid.MustParse("a@remote.test"))) != 0 {
		t.Fatalf("%d tracked", e.tr.RemoteCount())
	}
	id2 := e.remoteQuery("b@remote.test/r")
	if id2 == id {
		t.Fatal("the same query")
	}
	e.arrive("<iq type='result' from='a@remote.test/r' to='localhost' id='" + id + "'>" + simple + "</iq>")
	if e.stopped != 0 {
		t.Fatal("the answer of a forgotten entity was taken")
	}
	e.arrive("<iq type='result' from='b@remote.test/r' to='localhost' id='" + id2 + "'>" + simple + "</iq>")
	if len(e.known) != 2 {
		t.Fatalf("Known fired %d times, want 2 (b and c)", len(e.known))
	}
	if _, inFlight := e.tr.Sessions(); inFlight != 0 {
		t.Errorf("%d queries in flight", inFlight)
	}
}
