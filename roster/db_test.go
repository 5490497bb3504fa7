package roster

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/internal/dbtest"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// backends are the real stores the tests and benchmarks run on.
var backends = dbtest.Backends

// fakeRouter records what a Service routes and delivers; it has no
// sessions unless online is set.
type fakeRouter struct {
	router.Router // nil: what the roster does not use panics

	mu     sync.Mutex
	routed []*stanza.Stanza
	online map[string][]router.Session // by bare JID
}

func (r *fakeRouter) Route(_ context.Context, s *stanza.Stanza) {
	r.mu.Lock()
	r.routed = append(r.routed, s)
	r.mu.Unlock()
}

func (r *fakeRouter) DeliverAvailable(jid.JID, []byte) int { return 0 }
func (r *fakeRouter) DeliverTo(jid.JID, []byte) bool       { return true }

func (r *fakeRouter) Sessions(bare jid.JID) []router.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.online[bare.String()]
}

func (r *fakeRouter) Session(full jid.JID) router.Session {
	for _, s := range r.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

// node is one server's roster service over st.
func node(st storage.Store, r router.Router) *Service {
	if r == nil {
		r = &fakeRouter{}
	}
	s := &Service{
		Store:    st,
		Router:   r,
		Exists:   func(context.Context, jid.JID) bool { return true },
		MaxItems: func() int { return 0 },
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	s.interested = make(map[string]router.Session)
	s.online = make(map[string]*cached)
	return s
}

func addAccounts(t testing.TB, st storage.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := st.CreateAccount(context.Background(), storage.Account{Host: "example.org", Username: n, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// res returns bare with resourcepart r.
func res(bare jid.JID, r string) jid.JID {
	return jid.MustParse(bare.String() + "/" + r)
}

func presence(from, to jid.JID, typ string) *stanza.Stanza {
	return stanza.NewPresence(from, to, typ)
}

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.org")
)

// BenchmarkSubscription measures the subscription path through storage:
// Change is a state change each (alice asks bob, then cancels), NoChange
// an inbound 'subscribed' that was not asked for, which changes nothing.
func BenchmarkSubscription(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)()
			addAccounts(b, st, "alice", "bob")
			s := node(st, nil)
			ctx := context.Background()
			aliceRes := jid.MustParse("alice@example.org/laptop")
			b.Run("Change", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					s.Outbound(ctx, presence(aliceRes, bob, "subscribe"))
					s.Outbound(ctx, presence(aliceRes, bob, "unsubscribe"))
				}
			})
			b.Run("NoChange", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					s.Inbound(ctx, presence(bob, alice, "subscribed"))
				}
			})
		})
	}
}

// pausing wraps a node's Store: its transactions call beforePut before
// each PutRosterItem, and entering is called as InTx is entered.
type pausing struct {
	storage.Store
	entering  func()
	beforePut func()
	// afterItems is called after RosterItems (outside transactions)
	// has read storage, before it returns.
	afterItems func()
}

func (p *pausing) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	items, ver, err := p.Store.RosterItems(ctx, host, username)
	if p.afterItems != nil {
		p.afterItems()
	}
	return items, ver, err
}

func (p *pausing) InTx(ctx context.Context, f func(tx storage.Tx) error) error {
	if p.entering != nil {
		p.entering()
	}
	return p.Store.InTx(ctx, func(tx storage.Tx) error { return f(&pausingTx{tx, p.beforePut}) })
}

type pausingTx struct {
	storage.Tx
	beforePut func()
}

func (t *pausingTx) PutRosterItem(ctx context.Context, host, username string, it storage.RosterItem) (int64, error) {
	if t.beforePut != nil {
		t.beforePut()
	}
	return t.Tx.PutRosterItem(ctx, host, username, it)
}

// pending makes contact's state in alice's roster None + Pending Out +
// Pending In: alice asked to subscribe, and the contact asked her.
func pending(t *testing.T, s *Service, contact jid.JID) {
	t.Helper()
	ctx := context.Background()
	s.Outbound(ctx, presence(jid.MustParse("alice@example.org/laptop"), contact, "subscribe"))
	s.Inbound(ctx, presence(res(contact, "x"), alice, "subscribe"))
	it, err := s.Store.RosterItem(ctx, "example.org", "alice", contact.String())
	if err != nil || it.Subscription != storage.SubNone || !it.Ask {
		t.Fatalf("setup: item %+v, %v; want none with ask", it, err)
	}
}

// wantBoth checks that contact's state ended as Both, no request pending
// either way: neither of the two answers was lost.
func wantBoth(t *testing.T, st storage.Store, contact jid.JID) {
	t.Helper()
	ctx := context.Background()
	it, err := st.RosterItem(ctx, "example.org", "alice", contact.String())
	if err != nil || it.Subscription != storage.SubBoth || it.Ask || it.Approved {
		t.Errorf("%s: item %+v, %v; want subscription both, nothing pending (an answer was lost)", contact, it, err)
	}
	reqs, err := st.SubscriptionRequests(ctx, "example.org", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if r.Contact == contact.String() {
			t.Errorf("%s: request still pending", contact)
		}
	}
}

// answers runs the two answers to contact's and alice's pending requests
// at once, one on each node: alice approves the contact's request (A.2.3,
// node a), the contact approves hers (A.3.3, node b). Each changes the
// same roster item by a read-modify-write.
func answers(a, b *Service, contact jid.JID, start <-chan struct{}, wg *sync.WaitGroup) {
	ctx := context.Background()
	wg.Go(func() {
		<-start
		a.Outbound(ctx, presence(jid.MustParse("alice@example.org/laptop"), contact, "subscribed"))
	})
	wg.Go(func() {
		<-start
		b.Inbound(ctx, presence(res(contact, "x"), alice, "subscribed"))
	})
}

// TestSubscriptionTwoNodes: two roster services ("nodes", each with a
// Store of its own on one database) change one account's subscription
// states at once; the database serialises them and no update is lost.
func TestSubscriptionTwoNodes(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			open := be.Open(t)
			stA, stB := open(), open()
			addAccounts(t, stA, "alice")
			carol := jid.MustParse("carol@example.net")

			// Node b holds alice, the item read, until node a has asked
			// for her; node a must then wait, and read what b wrote.
			holding, entered := make(chan struct{}), make(chan struct{})
			a := node(&pausing{Store: stA, entering: sync.OnceFunc(func() { close(entered) })}, nil)
			b := node(&pausing{Store: stB, beforePut: func() { close(holding); <-entered }}, nil)
			pending(t, node(stA, nil), carol)
			var wg sync.WaitGroup
			wg.Go(func() { b.Inbound(context.Background(), presence(res(carol, "x"), alice, "subscribed")) })
			wg.Go(func() {
				<-holding
				a.Outbound(context.Background(), presence(jid.MustParse("alice@example.org/laptop"), carol, "subscribed"))
			})
			wg.Wait()
			wantBoth(t, stA, carol)

			// Many at once, on both nodes.
			a, b = node(stA, nil), node(stB, nil)
			var contacts []jid.JID
			for i := range 8 {
				c := jid.MustParse("c" + string(rune('0'+i)) + "@example.net")
				contacts = append(contacts, c)
				pending(t, a, c)
			}
			start := make(chan struct{})
			for i, c := range contacts {
				if i%2 == 0 {
					answers(a, b, c, start, &wg)
				} else {
					answers(b, a, c, start, &wg)
				}
			}
			close(start)
			wg.Wait()
			for _, c := range contacts {
				wantBoth(t, stB, c)
			}
		})
	}
}

// replies records the answers of a dispatch.Mux.
type replies struct {
	mu  sync.Mutex
	got []string
}

func (r *replies) DeliverTo(_ jid.JID, raw []byte) bool {
	r.mu.Lock()
	r.got = append(r.got, string(raw))
	r.mu.Unlock()
	return true
}

// rosterSet sends alice's roster set of contact through a Mux on which s
// is registered and returns the answer.
func rosterSet(t *testing.T, s *Service, contact string) string {
	m := dispatch.New(s.Log)
	r := &replies{}
	m.SetSender(r)
	s.Register(m)
	raw := `<iq type='set' id='set1' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster'><item jid='` + contact + `' name='C'/></query></iq>`
	iq, err := stanza.Parse([]byte(raw), strings.IndexByte(raw, '>')+1)
	if err != nil {
		t.Error(err)
		return ""
	}
	m.HandleServer(context.Background(), iq)
	if len(r.got) != 1 {
		t.Errorf("%d answers to a roster set, want 1", len(r.got))
		return ""
	}
	return r.got[0]
}

// TestRosterSetTwoNodes: a roster set counts the items and adds one in a
// transaction holding the account, so that two nodes adding at once
// cannot both fill the last place.
func TestRosterSetTwoNodes(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			open := be.Open(t)
			stA, stB := open(), open()
			addAccounts(t, stA, "alice")
			holding, entered := make(chan struct{}), make(chan struct{})
			a := node(&pausing{Store: stA, entering: sync.OnceFunc(func() { close(entered) })}, nil)
			b := node(&pausing{Store: stB, beforePut: func() { close(holding); <-entered }}, nil)
			a.Bus, b.Bus = &event.Bus{}, &event.Bus{}
			a.MaxItems = func() int { return 1 }
			b.MaxItems = a.MaxItems
			var wg sync.WaitGroup
			var ansA, ansB string
			wg.Go(func() { ansB = rosterSet(t, b, "b@example.net") })
			wg.Go(func() {
				<-holding
				ansA = rosterSet(t, a, "a@example.net")
			})
			wg.Wait()
			if !strings.Contains(ansB, "type='result'") && !strings.Contains(ansB, `type="result"`) {
				t.Errorf("node b, first: %s; want a result", ansB)
			}
			if !strings.Contains(ansA, "resource-constraint") {
				t.Errorf("node a, second: %s; want resource-constraint (the roster is full)", ansA)
			}
			if n, err := stA.RosterCount(context.Background(), "example.org", "alice"); n != 1 || err != nil {
				t.Errorf("%d items (%v), want 1", n, err)
			}
		})
	}
}

// session is a bound session for the fake router.
type session struct {
	router.Session
	j jid.JID
}

func (s session) JID() jid.JID { return s.j }

// TestCacheCoherent: the roster cached for an online account never holds
// what was read before a change that was committed meanwhile.
func TestCacheCoherent(t *testing.T) {
	st := backends[0].Open(t)()
	addAccounts(t, st, "alice")
	laptop := jid.MustParse("alice@example.org/laptop")
	r := &fakeRouter{online: map[string][]router.Session{"alice@example.org": {session{j: laptop}}}}
	p := &pausing{Store: st}
	s := node(p, r)
	ctx := context.Background()
	sees := func() []jid.JID { return s.Contacts(ctx, alice, SeesPresence) }

	s.Inbound(ctx, presence(res(bob, "x"), alice, "subscribe"))
	if got := sees(); len(got) != 0 {
		t.Fatalf("before approval: %v see alice's presence", got)
	}
	// Cached now: an approval drops it.
	s.Outbound(ctx, presence(laptop, bob, "subscribed"))
	if got := sees(); len(got) != 1 || !got[0].Equal(bob) {
		t.Fatalf("after approval: %v see alice's presence, want bob", got)
	}
	// A change committed while the roster is read for the cache: what
	// was read before it is not cached.
	s.forget(alice)
	p.afterItems = sync.OnceFunc(func() { s.Outbound(ctx, presence(laptop, bob, "unsubscribed")) })
	sees() // read before the change: may still name bob
	p.afterItems = nil
	if got := sees(); len(got) != 0 {
		t.Errorf("after the revocation: %v see alice's presence, want none (stale cache)", got)
	}
}

// counting counts a Store's full roster reads.
type counting struct {
	storage.Store
	mu    sync.Mutex
	reads int
}

func (c *counting) RosterItems(ctx context.Context, host, username string) ([]storage.RosterItem, int64, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.RosterItems(ctx, host, username)
}

func (c *counting) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// pushed is a bound session that records what is delivered to it.
type pushed struct {
	session
	mu  sync.Mutex
	got []string
}

func (p *pushed) Deliver(raw []byte) bool {
	p.mu.Lock()
	p.got = append(p.got, string(raw))
	p.mu.Unlock()
	return true
}

// TestCacheInStep: while alice is online her roster is read from storage
// once; roster sets, removals, subscription changes and pre-approvals
// keep the cached copy in step (RFC 6121 §2.1.6: the pushes carry what a
// later roster get answers), with the version of storage (XEP-0237), and
// it goes with her last session and with the account.
func TestCacheInStep(t *testing.T) {
	st := backends[0].Open(t)()
	addAccounts(t, st, "alice")
	ctx := context.Background()
	laptop := jid.MustParse("alice@example.org/laptop")
	sess := &pushed{session: session{j: laptop}}
	r := &fakeRouter{online: map[string][]router.Session{"alice@example.org": {sess}}}
	c := &counting{Store: st}
	s := node(c, r)
	s.Bus = &event.Bus{}
	m := dispatch.New(s.Log)
	rep := &replies{}
	m.SetSender(rep)
	s.Register(m)
	iq := func(body string) string {
		t.Helper()
		raw := `<iq type='` + body
		st, err := stanza.Parse([]byte(raw), strings.IndexByte(raw, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		rep.mu.Lock()
		rep.got = nil
		rep.mu.Unlock()
		m.HandleServer(ctx, st)
		rep.mu.Lock()
		defer rep.mu.Unlock()
		if len(rep.got) != 1 {
			t.Fatalf("%d answers, want 1", len(rep.got))
		}
		return rep.got[0]
	}
	get := func() string {
		return iq(`get' id='g' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster' ver=''/></iq>`)
	}
	// check compares the roster get's answer with storage's roster.
	check := func(step string) {
		t.Helper()
		got := get()
		items, ver, err := st.RosterItems(ctx, "example.org", "alice")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("ver='" + strconv.FormatInt(ver, 10) + "'>")
		for _, it := range items {
			var w bytes.Buffer
			writeItem(&w, it)
			b.WriteString(w.String())
		}
		if !strings.Contains(got, b.String()) {
			t.Errorf("%s: roster get answered %s\nwant the stored %s", step, got, b.String())
		}
	}

	check("first get")
	carol, dave := jid.MustParse("carol@example.net"), jid.MustParse("dave@example.net")
	iq(`set' id='s1' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' name='Bob'><group>G</group></item></query></iq>`)
	check("after a roster set")
	iq(`set' id='s2' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' name='Robert'/></query></iq>`)
	check("after an update")
	s.Inbound(ctx, presence(res(carol, "x"), alice, "subscribe"))
	s.Outbound(ctx, presence(laptop, carol, "subscribed"))
	s.Outbound(ctx, presence(laptop, carol, "subscribe"))
	check("after subscription changes")
	s.Outbound(ctx, presence(laptop, dave, "subscribed")) // pre-approval, §3.4
	check("after a pre-approval")
	if sub, _ := s.Subscription(ctx, alice, carol); sub != storage.SubFrom {
		t.Errorf("carol's subscription from the cache: %s, want from", sub)
	}
	if got := s.Contacts(ctx, alice, SeesPresence); len(got) != 1 || !got[0].Equal(carol) {
		t.Errorf("contacts seeing alice's presence: %v, want carol", got)
	}
	iq(`set' id='s3' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' subscription='remove'/></query></iq>`)
	check("after a removal")
	if n := c.count(); n != 1 {
		t.Errorf("%d roster reads from storage while online, want 1", n)
	}
	sess.mu.Lock()
	pushes := len(sess.got)
	sess.mu.Unlock()
	if pushes < 6 {
		t.Errorf("%d roster pushes, want one per change (6 or more)", pushes)
	}
	// The client's version is current: an empty result, nothing read.
	_, ver, _ := st.RosterItems(ctx, "example.org", "alice")
	if got := iq(`get' id='v' from='alice@example.org/laptop'><query xmlns='jabber:iq:roster' ver='` + strconv.FormatInt(ver, 10) + `'/></iq>`); strings.Contains(got, "<item") || strings.Contains(got, "error") {
		t.Errorf("roster get with the current version: %s, want an empty result", got)
	}
	if n := c.count(); n != 1 {
		t.Errorf("%d roster reads, want 1", n)
	}

	// A version the cache does not follow from (another server's write):
	// dropped, read again.
	if _, err := st.PutRosterItem(ctx, "example.org", "alice", storage.RosterItem{Contact: "eve@example.net", Subscription: storage.SubNone}); err != nil {
		t.Fatal(err)
	}
	s.Outbound(ctx, presence(laptop, jid.MustParse("frank@example.net"), "subscribe"))
	check("after a write of another server")
	if n := c.count(); n != 2 {
		t.Errorf("%d roster reads, want 2", n)
	}

	// The last session ends: the cache goes.
	r.mu.Lock()
	r.online = nil
	r.mu.Unlock()
	s.SessionEnded(sess)
	s.mu.Lock()
	_, cachedStill := s.online["alice@example.org"]
	s.mu.Unlock()
	if cachedStill {
		t.Error("roster still cached after the last session ended")
	}
	// And with the account.
	r.mu.Lock()
	r.online = map[string][]router.Session{"alice@example.org": {sess}}
	r.mu.Unlock()
	get()
	event.Fire(ctx, s.Bus, &auth.AccountDeleted{JID: alice})
	s.mu.Lock()
	_, cachedStill = s.online["alice@example.org"]
	s.mu.Unlock()
	if cachedStill {
		t.Error("roster still cached after the account was deleted")
	}
}
