package pep

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

func TestOnePayload(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"<nick xmlns='http://jabber.org/protocol/nick'>A</nick>", true},
		{"\n  <a xmlns='x'><b/><p:c xmlns:p='y'/></a>\n", true},
		{"", false},
		{"text", false},
		{"<a xmlns='x'/><b xmlns='x'/>", false},
		{"<a/>", false},                        // relies on the item's namespace
		{"<p:a xmlns='x'><p:b/></p:a>", false}, // undeclared prefix
		{"<a xmlns='x'/>trailing", false},
	} {
		if _, ok := onePayload([]byte(tc.in)); ok != tc.ok {
			t.Errorf("onePayload(%q) = %v, want %v", tc.in, ok, tc.ok)
		}
	}
}

func TestPreconditions(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		form map[string][]string
		want string // the failing field, "" for none
	}{
		{nil, ""},
		{map[string][]string{"pubsub#access_model": {"presence"}}, ""},
		{map[string][]string{"pubsub#access_model": {"open"}}, "pubsub#access_model"},
		{map[string][]string{"pubsub#persist_items": {"true"}, "pubsub#notify_retract": {"1"}}, ""},
		{map[string][]string{"pubsub#persist_items": {"0"}}, "pubsub#persist_items"},
		{map[string][]string{"pubsub#max_items": {"1"}}, ""},
		{map[string][]string{"pubsub#max_items": {"max"}}, "pubsub#max_items"},
		{map[string][]string{"pubsub#send_last_published_item": {"never"}}, "pubsub#send_last_published_item"},
		{map[string][]string{"pubsub#notify_retract": {"false"}}, "pubsub#notify_retract"},
		{map[string][]string{"pubsub#title": {"anything"}}, ""},
	} {
		err := preconditions(cfg, tc.form)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.form, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want precondition-not-met on %s", tc.form, err, tc.want)
		}
	}
	max := cfg
	max.MaxItems = storage.PubSubMaxItemsMax
	if err := preconditions(max, map[string][]string{"pubsub#max_items": {"max"}}); err != nil {
		t.Errorf("max against max: %v", err)
	}
}

func TestApplyForm(t *testing.T) {
	cfg := DefaultConfig()
	err := applyForm(&cfg, map[string][]string{
		"pubsub#access_model": {"whitelist"}, "pubsub#max_items": {"max"},
		"pubsub#persist_items": {"0"}, "pubsub#title": {"T"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessModel != storage.AccessWhitelist || cfg.MaxItems != storage.PubSubMaxItemsMax || cfg.PersistItems || cfg.Extra["pubsub#title"][0] != "T" {
		t.Errorf("got %+v", cfg)
	}
	for _, bad := range []map[string][]string{
		{"pubsub#access_model": {"authorize"}},
		{"pubsub#max_items": {"0"}},
		{"pubsub#persist_items": {"yes"}},
		{"pubsub#send_last_published_item": {"always"}},
	} {
		c := DefaultConfig()
		if err := applyForm(&c, bad, true); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// session is a router.Session that records what it is given.
type session struct {
	full      jid.JID
	available bool
	mu        sync.Mutex
	got       []string
}

func (s *session) JID() jid.JID                { return s.full }
func (s *session) Available() (bool, int)      { return s.available, 0 }
func (s *session) SetAvailable(ok bool, p int) { s.available = ok }
func (s *session) Replace()                    {}
func (s *session) Deliver(raw []byte) bool {
	s.mu.Lock()
	s.got = append(s.got, string(raw))
	s.mu.Unlock()
	return true
}

func (s *session) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.got
	s.got = nil
	return g
}

// fixture is a Service on SQLite with alice, bob (subscribed to alice's
// presence, interested in every node), carol (subscribed, interested in
// nothing) and eve (a stranger).
type fixture struct {
	s                 *Service
	r                 *router.Local
	bob, carol, alice *session
	sent              []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob", "carol", "eve"} {
		if err := st.CreateAccount(ctx, storage.Account{Host: "localhost", Username: u, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{r: router.New([]string{"localhost"}, nil, nil, nil)}
	mk := func(s string) *session {
		sess := &session{full: jid.MustParse(s), available: true}
		if err := f.r.Bind(sess, 0); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	f.alice, f.bob, f.carol = mk("alice@localhost/phone"), mk("bob@localhost/desk"), mk("carol@localhost/laptop")
	subs := map[string]storage.Subscription{"bob@localhost": storage.SubFrom, "carol@localhost": storage.SubFrom}
	opts := DefaultOptions()
	opts.MaxNodes = 2
	f.s = &Service{
		Store:  st,
		Router: f.r,
		Subscription: func(_ context.Context, user, contact jid.JID) storage.Subscription {
			if user.String() != "alice@localhost" {
				return storage.SubNone
			}
			return subs[contact.Bare().String()]
		},
		Contacts: func(_ context.Context, user jid.JID, keep func(storage.Subscription) bool) []jid.JID {
			var out []jid.JID
			if user.String() == "alice@localhost" {
				for c, sub := range subs {
					if keep(sub) {
						out = append(out, jid.MustParse(c))
					}
				}
			} else if keep(storage.SubTo) {
				out = append(out, jid.MustParse("alice@localhost"))
			}
			return out
		},
		Interested: func(sess router.Session, feature string) bool {
			return sess.JID().Localpart() != "carol"
		},
		Features: func(sess router.Session) []string {
			return []string{"urn:xmpp:nickname+notify", "caps"}
		},
		Options: func() *Options { return opts },
		Log:     slog.New(slog.DiscardHandler),
	}
	return f
}

func (f *fixture) iq(t *testing.T, h dispatch.Handler, from, to, typ, payload string) ([]byte, error) {
	t.Helper()
	raw := "<iq type='" + typ + "' id='x' from='" + from + "' to='" + to + "'>" + payload + "</iq>"
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	name, p, _ := st.Payload()
	return h(t.Context(), dispatch.Request{Stanza: st, To: jid.MustParse(to), Name: name, Payload: p})
}

func cond(err error) string {
	var se *stanza.Error
	if errors.As(err, &se) {
		return se.Condition
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

const nick = "<publish node='urn:xmpp:nickname'><item id='n1'><nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></item></publish>"

func TestPublishNotifiesAndAccess(t *testing.T) {
	f := newFixture(t)
	res, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>")
	if err != nil || !strings.Contains(string(res), "id='n1'") {
		t.Fatalf("publish: %s %v", res, err)
	}
	for name, sess := range map[string]*session{"alice": f.alice, "bob": f.bob} {
		got := sess.take()
		if len(got) != 1 || !strings.Contains(got[0], "<items node='urn:xmpp:nickname'><item id='n1'>") || !strings.Contains(got[0], "type='headline'") {
			t.Errorf("%s got %q", name, got)
		}
	}
	if got := f.carol.take(); len(got) != 0 {
		t.Errorf("carol, without +notify, got %q", got)
	}

	items := "<pubsub xmlns='" + NS + "'><items node='urn:xmpp:nickname'/></pubsub>"
	if res, err := f.iq(t, f.s.handle, "bob@localhost/desk", "alice@localhost", "get", items); err != nil || !strings.Contains(string(res), "Alice") {
		t.Errorf("bob reads: %s %v", res, err)
	}
	if _, err := f.iq(t, f.s.handle, "eve@localhost/x", "alice@localhost", "get", items); cond(err) != stanza.NotAuthorized {
		t.Errorf("eve reads: %v", err)
	}
	if _, err := f.iq(t, f.s.handle, "eve@localhost/x", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); cond(err) != stanza.Forbidden {
		t.Errorf("eve publishes: %v", err)
	}

	// A session that becomes available gets the last items of the nodes
	// it is interested in: alice's nickname, for bob.
	f.s.sendLast(t.Context(), f.bob)
	if got := f.bob.take(); len(got) != 1 || !strings.Contains(got[0], "from='alice@localhost'") {
		t.Errorf("last item: %q", got)
	}

	// Whitelist: only the owner (and the whitelist) read, nobody else is notified.
	cfgForm := "<pubsub xmlns='" + NSOwner + "'><configure node='urn:xmpp:nickname'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>whitelist</value></field></x></configure></pubsub>"
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set", cfgForm); err != nil {
		t.Fatal(err)
	}
	if _, err := f.iq(t, f.s.handle, "bob@localhost/desk", "alice@localhost", "get", items); cond(err) != stanza.NotAllowed {
		t.Errorf("bob reads a whitelist node: %v", err)
	}
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
	if got := f.bob.take(); len(got) != 0 {
		t.Errorf("bob notified of a whitelist node: %q", got)
	}
	if got := f.alice.take(); len(got) != 1 {
		t.Errorf("alice: %q", got)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	pub := func(node, item string) error {
		_, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set",
			"<pubsub xmlns='"+NS+"'><publish node='"+node+"'>"+item+"</publish></pubsub>")
		return err
	}
	for _, tc := range []struct {
		node, item, want string
	}{
		{"", "<item><a xmlns='x'/></item>", stanza.BadRequest},
		{"n", "", stanza.BadRequest},
		{"n", "<item><a/></item>", stanza.BadRequest},
		{"n", "<item><a xmlns='x'>" + strings.Repeat("x", 300<<10) + "</a></item>", stanza.NotAcceptable},
		{"n1", "<item><a xmlns='x'/></item>", ""},
		{"n2", "<item><a xmlns='x'/></item>", ""},
		{"n3", "<item><a xmlns='x'/></item>", stanza.NotAcceptable}, // max_nodes 2
	} {
		if got := cond(pub(tc.node, tc.item)); got != tc.want {
			t.Errorf("publish %q %.40q: %q, want %q", tc.node, tc.item, got, tc.want)
		}
	}
	for _, tc := range []struct {
		h            dispatch.Handler
		typ, payload string
		want         string
	}{
		{f.s.handle, "set", "<pubsub xmlns='" + NS + "'><subscribe node='n1' jid='alice@localhost'/></pubsub>", ""},
		{f.s.handle, "set", "<pubsub xmlns='" + NS + "'><subscribe node='none' jid='alice@localhost'/></pubsub>", stanza.ItemNotFound},
		{f.s.handle, "set", "<pubsub xmlns='" + NS + "'><retract node='n1'><item id='nope'/></retract></pubsub>", stanza.ItemNotFound},
		{f.s.handle, "get", "<pubsub xmlns='" + NS + "'><items node='none'/></pubsub>", stanza.ItemNotFound},
		{f.s.handle, "get", "<pubsub xmlns='" + NS + "'><items node='n1' max_items='x'/></pubsub>", stanza.BadRequest},
		{f.s.handleOwner, "set", "<pubsub xmlns='" + NSOwner + "'><delete node='none'/></pubsub>", stanza.ItemNotFound},
		{f.s.handleOwner, "set", "<pubsub xmlns='" + NSOwner + "'><purge node='n1'/></pubsub>", ""},
		{f.s.handleOwner, "set", "<pubsub xmlns='" + NSOwner + "'><delete node='n2'/></pubsub>", ""},
		{f.s.handleOwner, "get", "<pubsub xmlns='" + NSOwner + "'><subscriptions node='n1'/></pubsub>", ""},
		{f.s.handleOwner, "get", "<pubsub xmlns='" + NSOwner + "'><subscriptions node='none'/></pubsub>", stanza.ItemNotFound},
		{f.s.handleOwner, "get", "<pubsub xmlns='" + NSOwner + "'><subscriptions/></pubsub>", stanza.BadRequest},
		{f.s.handle, "set", "<pubsub xmlns='" + NS + "'><collection node='n1'/></pubsub>", stanza.FeatureNotImplemented},
		{f.s.handleOwner, "get", "<pubsub xmlns='" + NSOwner + "'><affiliations node='none'/></pubsub>", stanza.ItemNotFound},
		{f.s.handleOwner, "set", "<pubsub xmlns='" + NSOwner + "'><affiliations node='n1'><affiliation jid='bad@@jid' affiliation='member'/></affiliations></pubsub>", stanza.JIDMalformed},
		{f.s.handleOwner, "set", "<pubsub xmlns='" + NSOwner + "'><affiliations node='n1'><affiliation jid='bob@localhost' affiliation='lord'/></affiliations></pubsub>", stanza.BadRequest},
	} {
		_, err := f.iq(t, tc.h, "alice@localhost/phone", "alice@localhost", tc.typ, tc.payload)
		if got := cond(err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.payload, got, tc.want)
		}
	}
	// The node deleted, there is room for another.
	if err := pub("n3", "<item><a xmlns='x'/></item>"); err != nil {
		t.Errorf("after delete: %v", err)
	}
	// Purged: n1 holds nothing.
	res, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "get", "<pubsub xmlns='"+NS+"'><items node='n1'/></pubsub>")
	if err != nil || strings.Contains(string(res), "<item ") {
		t.Errorf("after purge: %s %v", res, err)
	}
}

func TestRegister(t *testing.T) {
	m := dispatch.New(slog.New(slog.DiscardHandler))
	(&Service{}).Register(m)
	if ids := m.AccountIdentities(); !slices.Contains(ids, dispatch.Identity{Category: "pubsub", Type: "pep"}) {
		t.Errorf("identities %v", ids)
	}
	f := strings.Join(m.AccountFeatures(), " ")
	for _, want := range []string{"#publish-options", "#auto-create", "#persistent-items", "#access-open", "#last-published"} {
		if !strings.Contains(f, NS+want+" ") && !strings.HasSuffix(f, NS+want) {
			t.Errorf("features lack %s", want)
		}
	}
}

func TestGrantedSendsLastItems(t *testing.T) {
	f := newFixture(t)
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
	f.bob.take()
	f.alice.take()
	// bob sees alice's presence (the fixture's roster): he gets her
	// nickname; carol is not interested in it.
	f.s.granted(t.Context(), jid.MustParse("alice@localhost"), jid.MustParse("bob@localhost"))
	if got := f.bob.take(); len(got) != 1 || !strings.Contains(got[0], "<item id='n1'>") {
		t.Errorf("bob got %q", got)
	}
	// eve's session, were it there, is not allowed by the presence model.
	eve := &session{full: jid.MustParse("eve@localhost/x"), available: true}
	if err := f.r.Bind(eve, 0); err != nil {
		t.Fatal(err)
	}
	f.s.granted(t.Context(), jid.MustParse("alice@localhost"), jid.MustParse("eve@localhost"))
	if got := eve.take(); len(got) != 0 {
		t.Errorf("eve got %q", got)
	}
}

func TestCreate(t *testing.T) {
	f := newFixture(t)
	create := func(payload string) error {
		_, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+payload+"</pubsub>")
		return err
	}
	if err := create("<create node='storage:bookmarks'/><configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>" + NSNodeConfig + "</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></configure>"); err != nil {
		t.Fatal(err)
	}
	n, err := f.s.Store.PubSubNode(t.Context(), "localhost", "alice", "storage:bookmarks")
	if err != nil || n.Config.AccessModel != storage.AccessWhitelist {
		t.Errorf("node %+v %v", n, err)
	}
	for _, tc := range []struct{ payload, want string }{
		{"<create node='storage:bookmarks'/>", stanza.Conflict},
		{"<create/>", stanza.BadRequest},
		{"<create node='a'/><configure><x xmlns='jabber:x:data' type='submit'><field var='pubsub#max_items'><value>-1</value></field></x></configure>", stanza.NotAcceptable},
		{"<create node='b'/>", ""},
		{"<create node='c'/>", stanza.NotAcceptable}, // max_nodes 2
	} {
		if got := cond(create(tc.payload)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.payload, got, tc.want)
		}
	}
	if _, err := f.iq(t, f.s.handle, "eve@localhost/x", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'><create node='d'/></pubsub>"); cond(err) != stanza.Forbidden {
		t.Errorf("eve creates: %v", err)
	}
}

func TestBlockedNotNotified(t *testing.T) {
	f := newFixture(t)
	var asked []string
	f.s.Stopped = func(_ context.Context, st *stanza.Stanza) bool {
		asked = append(asked, st.From.String()+" "+st.To.String())
		return st.To.Localpart() == "bob"
	}
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
	if got := f.bob.take(); len(got) != 0 {
		t.Errorf("bob, blocked, got %q", got)
	}
	if got := f.alice.take(); len(got) != 1 {
		t.Errorf("alice got %q", got)
	}
	if !slices.Equal(asked, []string{"alice@localhost bob@localhost/desk"}) {
		t.Errorf("asked about %q", asked)
	}
	f.s.sendLast(t.Context(), f.bob)
	if got := f.bob.take(); len(got) != 0 {
		t.Errorf("bob, blocked, got the last item %q", got)
	}
}

// TestRemoteContacts: a contact on another server (juliet, subscription
// both) is notified at the full JIDs the caps tracker follows whose
// capabilities are interested, gets last items, and reads; a remote
// stranger (mallory) neither.
func TestRemoteContacts(t *testing.T) {
	f := newFixture(t)
	balcony := &session{full: jid.MustParse("juliet@remote.test/balcony"), available: true}
	tomb := &session{full: jid.MustParse("juliet@remote.test/tomb"), available: true}
	mallory := &session{full: jid.MustParse("mallory@remote.test/m"), available: true}
	sub, contacts := f.s.Subscription, f.s.Contacts
	f.s.Subscription = func(ctx context.Context, user, contact jid.JID) storage.Subscription {
		if user.String() == "alice@localhost" && contact.Bare().String() == "juliet@remote.test" {
			return storage.SubBoth
		}
		return sub(ctx, user, contact)
	}
	f.s.Contacts = func(ctx context.Context, user jid.JID, keep func(storage.Subscription) bool) []jid.JID {
		out := contacts(ctx, user, keep)
		if user.String() == "alice@localhost" && keep(storage.SubBoth) {
			out = append(out, jid.MustParse("juliet@remote.test"))
		}
		return out
	}
	f.s.Interested = func(sess router.Session, feature string) bool {
		return sess.JID().Localpart() != "carol" && sess.JID().Resourcepart() != "tomb"
	}
	f.s.Remotes = func(bare jid.JID) []router.Session {
		switch bare.String() {
		case "juliet@remote.test":
			return []router.Session{balcony, tomb}
		case "mallory@remote.test":
			return []router.Session{mallory}
		}
		return nil
	}
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
	if got := balcony.take(); len(got) != 1 || !strings.Contains(got[0], "to='juliet@remote.test/balcony'") ||
		!strings.Contains(got[0], "from='alice@localhost'") || !strings.Contains(got[0], "<item id='n1'>") {
		t.Errorf("juliet's balcony got %q", got)
	}
	if got := tomb.take(); len(got) != 0 {
		t.Errorf("juliet's tomb, without +notify, got %q", got)
	}
	if got := mallory.take(); len(got) != 0 {
		t.Errorf("mallory got %q", got)
	}
	alice := []jid.JID{jid.MustParse("alice@localhost")}
	f.s.sendLastRemote(t.Context(), balcony, alice)
	if got := balcony.take(); len(got) != 1 || !strings.Contains(got[0], "<item id='n1'>") {
		t.Errorf("last item to juliet: %q", got)
	}
	f.s.sendLastRemote(t.Context(), mallory, alice)
	if got := mallory.take(); len(got) != 0 {
		t.Errorf("last item to mallory: %q", got)
	}
	f.s.granted(t.Context(), alice[0], jid.MustParse("juliet@remote.test"))
	if got := balcony.take(); len(got) != 1 {
		t.Errorf("granted: juliet got %q", got)
	}
	items := "<pubsub xmlns='" + NS + "'><items node='urn:xmpp:nickname'/></pubsub>"
	if res, err := f.iq(t, f.s.handle, "juliet@remote.test/balcony", "alice@localhost", "get", items); err != nil || !strings.Contains(string(res), "Alice") {
		t.Errorf("juliet reads: %s %v", res, err)
	}
	if _, err := f.iq(t, f.s.handle, "mallory@remote.test/m", "alice@localhost", "get", items); cond(err) != stanza.NotAuthorized {
		t.Errorf("mallory reads: %v", err)
	}
}
