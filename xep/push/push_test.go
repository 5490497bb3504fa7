package push

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// --- fakes ---

// store is storage.PushRegistrations in memory, for accounts alice and
// bob of example.org.
type store struct {
	mu   sync.Mutex
	regs map[string][]storage.PushRegistration // by username
}

func (s *store) PutPushRegistration(_ context.Context, host, user string, r storage.PushRegistration, max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if host != "example.org" || (user != "alice" && user != "bob") {
		return storage.ErrNotFound
	}
	rs := slices.DeleteFunc(s.regs[user], func(x storage.PushRegistration) bool { return x.JID == r.JID && x.Node == r.Node })
	rs = append(rs, r)
	if max > 0 && len(rs) > max {
		rs = rs[len(rs)-max:]
	}
	s.regs[user] = rs
	return nil
}

func (s *store) PushRegistrations(_ context.Context, _, user string) ([]storage.PushRegistration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.regs[user]), nil
}

func (s *store) DeletePushRegistrations(_ context.Context, _, user, j, node string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.regs[user])
	s.regs[user] = slices.DeleteFunc(s.regs[user], func(x storage.PushRegistration) bool { return x.JID == j && (node == "" || x.Node == node) })
	return n - len(s.regs[user]), nil
}

func (s *store) nodes(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.regs[user] {
		out = append(out, r.JID+" "+r.Node)
	}
	return out
}

// session is a c2s.Client that records what it is given.
type session struct {
	full     jid.JID
	detached bool

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
func (s *session) Available() (bool, int)     { return true, 0 }
func (s *session) SetAvailable(bool, int)     {}
func (s *session) Replace()                   {}
func (s *session) Detached() bool             { s.mu.Lock(); defer s.mu.Unlock(); return s.detached }
func (s *session) SetHolder(c2s.Holder)       {}
func (s *session) DeliverNow(raw []byte) bool { return s.Deliver(raw) }

func (s *session) detach(d bool) { s.mu.Lock(); s.detached = d; s.mu.Unlock() }

// next returns the oldest stanza the session got and forgets it.
func (s *session) next(t *testing.T) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		t.Fatalf("%s got nothing", s.full)
	}
	g := s.got[0]
	s.got = s.got[1:]
	return g
}

// appServer is a router.Service that records what it is sent.
type appServer struct {
	mu  sync.Mutex
	got []*stanza.Stanza
}

func (a *appServer) HandleService(_ context.Context, s *stanza.Stanza) {
	a.mu.Lock()
	a.got = append(a.got, s)
	a.mu.Unlock()
}

func (a *appServer) take() []*stanza.Stanza {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.got
	a.got = nil
	return g
}

// world is a router for example.org with the module, the app server
// push.example.net, and alice's and bob's sessions.
type world struct {
	t      *testing.T
	s      *Service
	r      *router.Local
	bus    *event.Bus
	mux    *dispatch.Mux
	store  *store
	app    *appServer
	opts   *Options
	online map[string]bool // accounts with a session (else: stored offline)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, bus: &event.Bus{}, store: &store{regs: map[string][]storage.PushRegistration{}}, app: &appServer{},
		opts: DefaultOptions()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.mux = dispatch.New(log)
	w.r = router.New([]string{"example.org"}, func(_ context.Context, j jid.JID) bool {
		return j.Localpart() == "alice" || j.Localpart() == "bob"
	}, w.mux, w.bus)
	w.mux.SetSender(w.r)
	w.r.AddService("push.example.net", w.app)
	// Offline storage takes every message.
	event.On(w.bus, event.Last, "offline", func(_ context.Context, e *router.NoResource) bool {
		e.Err = nil
		return true
	})
	w.s = &Service{Router: w.r, Store: w.store, Log: log, Options: func() *Options { return w.opts }}
	w.s.Register(w.mux, w.bus)
	t.Cleanup(w.s.Stop)
	return w
}

func (w *world) bind(full string) *session {
	w.t.Helper()
	s := &session{full: jid.MustParse(full)}
	if err := w.r.Bind(s, 0); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) route(raw string) {
	w.t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		w.t.Fatal(err)
	}
	w.r.Route(context.Background(), st)
}

// iq sends an IQ from sess and returns the answer.
func (w *world) iq(sess *session, raw string) string {
	w.t.Helper()
	w.route(strings.Replace(raw, "<iq ", "<iq from='"+sess.full.String()+"' ", 1))
	return sess.next(w.t)
}

func match(t *testing.T, got, want string) {
	t.Helper()
	if err := xmlcmp.Equal([]byte(want), []byte(got), "jabber:client"); err != nil {
		t.Fatalf("got\n%s\nwant\n%s\n%v", got, want, err)
	}
}

const enableSecret = `<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n1'>` +
	`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
	`<field var='secret'><value>s3cr&amp;t</value></field></x></enable></iq>`

// want is the notification to push.example.net, node n1, with the given
// summary fields after FORM_TYPE and the secret as publish options.
func want(fields string) string {
	return `<iq type='set' from='alice@example.org' to='push.example.net' id='*'><pubsub xmlns='http://jabber.org/protocol/pubsub'>` +
		`<publish node='n1'><item><notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>` + fields + `</x></notification></item></publish>` +
		`<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var='secret'><value>s3cr&amp;t</value></field></x></publish-options></pubsub></iq>`
}

func count(n string) string { return `<field var='message-count'><value>` + n + `</value></field>` }

const chat = `<message from='bob@example.org/x' to='alice@example.org' type='chat'><body>hi &lt;3</body></message>`

// --- tests ---

// TestEnableDisable: §5 and §6, and the account feature (§4.1).
func TestEnableDisable(t *testing.T) {
	w := newWorld(t)
	if !slices.Contains(w.mux.AccountFeatures(), NS) {
		t.Errorf("account features %q lack %s", w.mux.AccountFeatures(), NS)
	}
	phone := w.bind("alice@example.org/phone")
	match(t, w.iq(phone, enableSecret), `<iq type='result' to='alice@example.org/phone' id='e1'/>`)
	regs, _ := w.store.PushRegistrations(t.Context(), "example.org", "alice")
	if len(regs) != 1 || regs[0].JID != "push.example.net" || regs[0].Node != "n1" ||
		len(regs[0].Options) != 1 || regs[0].Options[0].Var != "secret" || !slices.Equal(regs[0].Options[0].Values, []string{"s3cr&t"}) {
		t.Fatalf("stored %+v", regs)
	}
	// Another node, without options, addressed to the bare JID; the same
	// again replaces it.
	for range 2 {
		match(t, w.iq(phone, `<iq type='set' id='e2' to='alice@example.org'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n2'/></iq>`),
			`<iq type='result' from='alice@example.org' to='alice@example.org/phone' id='e2'/>`)
	}
	w.iq(phone, `<iq type='set' id='e3'><enable xmlns='urn:xmpp:push:0' jid='other.example.com' node='n1'/></iq>`)
	if got := w.store.nodes("alice"); !slices.Equal(got, []string{"push.example.net n1", "push.example.net n2", "other.example.com n1"}) {
		t.Fatalf("registrations %q", got)
	}
	// Disable one node, then every node of a JID; an unknown one is fine.
	match(t, w.iq(phone, `<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n2'/></iq>`),
		`<iq type='result' to='alice@example.org/phone' id='d1'/>`)
	w.iq(phone, `<iq type='set' id='e4'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n3'/></iq>`)
	match(t, w.iq(phone, `<iq type='set' id='d2'><disable xmlns='urn:xmpp:push:0' jid='push.example.net'/></iq>`),
		`<iq type='result' to='alice@example.org/phone' id='d2'/>`)
	match(t, w.iq(phone, `<iq type='set' id='d3'><disable xmlns='urn:xmpp:push:0' jid='nowhere.example'/></iq>`),
		`<iq type='result' to='alice@example.org/phone' id='d3'/>`)
	if got := w.store.nodes("alice"); !slices.Equal(got, []string{"other.example.com n1"}) {
		t.Fatalf("registrations after disable %q", got)
	}
	// Beyond max_registrations, the oldest go.
	w.opts.MaxRegistrations = 2
	w.iq(phone, `<iq type='set' id='e5'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='a'/></iq>`)
	w.iq(phone, `<iq type='set' id='e6'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='b'/></iq>`)
	if got := w.store.nodes("alice"); !slices.Equal(got, []string{"push.example.net a", "push.example.net b"}) {
		t.Fatalf("registrations beyond the limit %q", got)
	}
}

// TestBadRequests: what <enable/> and <disable/> refuse.
func TestBadRequests(t *testing.T) {
	w := newWorld(t)
	phone := w.bind("alice@example.org/phone")
	for _, c := range []struct{ name, req, cond string }{
		{"get", `<iq type='get' id='b'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'/></iq>`, "modify bad-request"},
		{"no jid", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' node='n'/></iq>`, "modify bad-request"},
		{"disable without jid", `<iq type='set' id='b'><disable xmlns='urn:xmpp:push:0'/></iq>`, "modify bad-request"},
		{"bad jid", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='a@b@c' node='n'/></iq>`, "modify jid-malformed"},
		{"own account", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='alice@example.org' node='n'/></iq>`, "modify bad-request"},
		{"no node", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='push.example.net'/></iq>`, "modify bad-request"},
		{"wrong FORM_TYPE", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:example</value></field></x></enable></iq>`, "modify bad-request"},
		{"no FORM_TYPE", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'><x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s</value></field></x></enable></iq>`, "modify bad-request"},
		{"two forms", `<iq type='set' id='b'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'><x xmlns='jabber:x:data'/><x xmlns='jabber:x:data'/></enable></iq>`, "modify bad-request"},
		{"to the server", `<iq type='set' id='b' to='example.org'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'/></iq>`, "cancel service-unavailable"},
		{"for another account", `<iq type='set' id='b' to='bob@example.org'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='n'/></iq>`, "cancel service-unavailable"},
	} {
		got := w.iq(phone, c.req)
		typ, cond := errorOf([]byte(got))
		if typ+" "+cond != c.cond {
			t.Errorf("%s: got %s, want %s", c.name, got, c.cond)
		}
	}
	if got := w.store.nodes("alice"); len(got) != 0 {
		t.Errorf("registrations %q", got)
	}
	if got := w.store.nodes("bob"); len(got) != 0 {
		t.Errorf("bob's registrations %q", got)
	}
}

// TestOffline: a message kept offline notifies every registration of the
// account (§7), with the summary and the publish options; nothing but
// the count by default; nothing for a message not worth it.
func TestOffline(t *testing.T) {
	w := newWorld(t)
	phone := w.bind("alice@example.org/phone")
	w.iq(phone, enableSecret)
	w.iq(phone, `<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='tablet'/></iq>`)
	w.r.Unbind(phone)
	event.Fire(context.Background(), w.bus, &c2s.SessionEnded{Session: phone})

	w.route(`<message from='bob@example.org/x' to='alice@example.org' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	w.route(`<message from='bob@example.org/x' to='alice@example.org'><received xmlns='urn:xmpp:receipts' id='r'/></message>`)
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("notified for a chat state and a receipt: %s", got[0].Raw)
	}
	w.route(chat)
	got := w.app.take()
	if len(got) != 2 {
		t.Fatalf("%d notifications, want 2", len(got))
	}
	match(t, string(got[0].Raw), want(count("1")))
	match(t, string(got[1].Raw), `<iq type='set' from='alice@example.org' to='push.example.net' id='*'><pubsub xmlns='http://jabber.org/protocol/pubsub'>`+
		`<publish node='tablet'><item><notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>`+count("1")+`</x></notification></item></publish></pubsub></iq>`)
	if !strings.HasPrefix(got[0].ID, idPrefix) || got[0].ID == got[1].ID {
		t.Errorf("ids %q and %q", got[0].ID, got[1].ID)
	}
	// bob has none.
	w.route(`<message from='alice@example.org/x' to='bob@example.org' type='chat'><body>hi</body></message>`)
	if got := w.app.take(); len(got) != 0 {
		t.Errorf("notified for bob: %s", got[0].Raw)
	}
}

// TestSenderAndBody: include_sender and include_body.
func TestSenderAndBody(t *testing.T) {
	w := newWorld(t)
	w.opts.IncludeSender, w.opts.IncludeBody = true, true
	w.store.PutPushRegistration(t.Context(), "example.org", "alice", storage.PushRegistration{JID: "push.example.net", Node: "n1",
		Options: []storage.PushOption{{Var: "secret", Values: []string{"s3cr&t"}}}}, 0)
	w.route(chat)
	got := w.app.take()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	match(t, string(got[0].Raw), want(count("1")+`<field var='last-message-sender'><value>bob@example.org</value></field>`+
		`<field var='last-message-body'><value>hi &lt;3</value></field>`))
	// An encrypted message without a body: no body field.
	w.opts.MinInterval = config.Duration{}
	w.route(`<message from='bob@example.org/x' to='alice@example.org' type='chat' id='answer'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`)
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("a second notification while the first is unanswered: %s", got[0].Raw)
	}
	w.route(`<iq type='result' from='push.example.net' to='alice@example.org' id='` + got[0].ID + `'/>`)
	got = w.app.take()
	if len(got) != 1 {
		t.Fatalf("%d notifications after the answer, want 1", len(got))
	}
	match(t, string(got[0].Raw), want(count("2")+`<field var='last-message-sender'><value>bob@example.org</value></field>`))
}

// TestDetached: a message handed to a detached session notifies the
// registration it enabled, not the account's others; one handed to
// connected sessions only notifies nobody.
func TestDetached(t *testing.T) {
	w := newWorld(t)
	phone, laptop := w.bind("alice@example.org/phone"), w.bind("alice@example.org/laptop")
	w.iq(phone, enableSecret)
	w.iq(laptop, `<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='push.example.net' node='laptop'/></iq>`)
	w.route(chat)
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("notified while connected: %s", got[0].Raw)
	}
	phone.detach(true)
	w.route(chat)
	got := w.app.take()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1 (the phone's)", len(got))
	}
	match(t, string(got[0].Raw), want(count("1")))
	// To the laptop's full JID: nothing.
	w.route(`<message from='bob@example.org/x' to='alice@example.org/laptop' type='chat'><body>hi</body></message>`)
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("notified for the laptop's message: %s", got[0].Raw)
	}
	// Resumed: the count starts again.
	w.route(`<iq type='result' from='push.example.net' to='alice@example.org' id='` + got[0].ID + `'/>`)
	phone.detach(false)
	event.Fire(context.Background(), w.bus, &c2s.SessionResumed{Session: phone})
	phone.detach(true)
	w.opts.MinInterval = config.Duration{}
	w.route(chat)
	if got := w.app.take(); len(got) != 1 || !strings.Contains(string(got[0].Raw), count("1")) {
		t.Fatalf("after resumption: %d notifications (want 1 with a count of 1)", len(got))
	}
	// Ended: the session's record goes (its registration stays stored).
	w.r.Unbind(phone)
	event.Fire(context.Background(), w.bus, &c2s.SessionEnded{Session: phone})
	if n := w.s.nSessions.Load(); n != 1 {
		t.Errorf("%d sessions recorded, want 1 (the laptop)", n)
	}
}

// TestDetachedWithPending: a session whose connection broke with an
// important message unacknowledged notifies its registration at once,
// not for what is not worth waking a phone.
func TestDetachedWithPending(t *testing.T) {
	w := newWorld(t)
	phone := w.bind("alice@example.org/phone")
	w.iq(phone, enableSecret)
	phone.detach(true)
	event.Fire(context.Background(), w.bus, &c2s.SessionDetached{Session: phone, Pending: [][]byte{
		[]byte(`<presence from='bob@example.org/x' to='alice@example.org/phone'/>`),
		[]byte(`<message from='bob@example.org/x' to='alice@example.org/phone' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`),
	}})
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("notified for presence and a chat state: %s", got[0].Raw)
	}
	event.Fire(context.Background(), w.bus, &c2s.SessionDetached{Session: phone, Pending: [][]byte{[]byte(chat)}})
	got := w.app.take()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	match(t, string(got[0].Raw), want(count("1")))
}

// TestRateLimit: one notification in flight at a time, at least
// min_interval apart; what comes meanwhile is counted and sent once
// afterwards; an answer that never comes holds things up for
// replyTimeout only.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.store.PutPushRegistration(t.Context(), "example.org", "alice", storage.PushRegistration{JID: "push.example.net", Node: "n1",
			Options: []storage.PushOption{{Var: "secret", Values: []string{"s3cr&t"}}}}, 0)
		w.route(chat)
		first := w.app.take()
		if len(first) != 1 {
			t.Fatalf("%d notifications, want 1", len(first))
		}
		for range 5 {
			w.route(chat)
		}
		// Answered at once: the next waits for min_interval.
		w.route(`<iq type='result' from='push.example.net' to='alice@example.org' id='` + first[0].ID + `'/>`)
		if got := w.app.take(); len(got) != 0 {
			t.Fatalf("sent before min_interval: %s", got[0].Raw)
		}
		time.Sleep(w.opts.MinInterval.Duration - time.Millisecond)
		synctest.Wait()
		if got := w.app.take(); len(got) != 0 {
			t.Fatalf("sent before min_interval: %s", got[0].Raw)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		second := w.app.take()
		if len(second) != 1 {
			t.Fatalf("%d notifications after min_interval, want 1", len(second))
		}
		match(t, string(second[0].Raw), want(count("6")))

		// Unanswered: the next waits for replyTimeout, then goes.
		w.route(chat)
		time.Sleep(replyTimeout - time.Millisecond)
		synctest.Wait()
		if got := w.app.take(); len(got) != 0 {
			t.Fatalf("sent while the last is unanswered: %s", got[0].Raw)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		third := w.app.take()
		if len(third) != 1 {
			t.Fatalf("%d notifications after the reply timeout, want 1", len(third))
		}
		match(t, string(third[0].Raw), want(count("7")))
		// The late answer to the second is ignored (not taken).
		if w.s.routing(t.Context(), &router.Routing{Stanza: mustParse(t, `<iq type='result' from='push.example.net' to='alice@example.org' id='`+second[0].ID+`'/>`)}) {
			t.Error("a late answer was taken")
		}
	})
}

// TestErrors: a final error disables the registration at once; transient
// ones after max_errors in a row; an answer from elsewhere is not taken.
func TestErrors(t *testing.T) {
	w := newWorld(t)
	w.opts.MinInterval = config.Duration{}
	w.opts.MaxErrors = 2
	put := func(node string) {
		w.store.PutPushRegistration(t.Context(), "example.org", "alice", storage.PushRegistration{JID: "push.example.net", Node: node}, 0)
	}
	notify := func() *stanza.Stanza {
		t.Helper()
		w.route(chat)
		got := w.app.take()
		if len(got) != 1 {
			t.Fatalf("%d notifications, want 1", len(got))
		}
		return got[0]
	}
	answer := func(n *stanza.Stanza, from, errType, cond string) bool {
		return w.s.routing(t.Context(), &router.Routing{Stanza: mustParse(t, `<iq type='error' from='`+from+`' to='alice@example.org' id='`+n.ID+`'>`+
			`<error type='`+errType+`'><`+cond+` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)})
	}

	put("a")
	n := notify()
	if answer(n, "evil.example", "cancel", "item-not-found") {
		t.Error("an answer from another JID was taken")
	}
	if !answer(n, "push.example.net", "cancel", "item-not-found") {
		t.Error("the answer was not taken")
	}
	if got := w.store.nodes("alice"); len(got) != 0 {
		t.Fatalf("registrations after item-not-found: %q", got)
	}
	w.route(chat)
	if got := w.app.take(); len(got) != 0 {
		t.Fatalf("notified after disabling: %s", got[0].Raw)
	}

	put("b")
	answer(notify(), "push.example.net", "wait", "remote-server-timeout")
	if got := w.store.nodes("alice"); len(got) != 1 {
		t.Fatalf("disabled after one transient error: %q", got)
	}
	answer(notify(), "push.example.net", "cancel", "remote-server-not-found")
	if got := w.store.nodes("alice"); len(got) != 0 {
		t.Fatalf("registrations after %d transient errors: %q", w.opts.MaxErrors, got)
	}

	// A success resets the count.
	put("c")
	answer(notify(), "push.example.net", "wait", "resource-constraint")
	w.s.routing(t.Context(), &router.Routing{Stanza: mustParse(t, `<iq type='result' from='push.example.net' to='alice@example.org' id='`+notify().ID+`'/>`)})
	answer(notify(), "push.example.net", "wait", "resource-constraint")
	if got := w.store.nodes("alice"); len(got) != 1 {
		t.Fatalf("disabled after errors that a success separated: %q", got)
	}
}

func mustParse(t *testing.T, raw string) *stanza.Stanza {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestImportant: which messages are worth a notification.
func TestImportant(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`<message type='chat'><body>hi</body></message>`, true},
		{`<message><body>hi</body></message>`, true},
		{`<message type='normal' xmlns='jabber:client'><body>hi</body></message>`, true},
		{`<message type='groupchat'><body>hi</body></message>`, true},
		{`<message type='chat'><body/></message>`, false},
		{`<message type='chat'><body>  </body></message>`, false},
		{`<message type='headline'><body>news</body></message>`, false},
		{`<message type='error'><body>hi</body><error type='cancel'/></message>`, false},
		{`<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message><received xmlns='urn:xmpp:receipts' id='x'/></message>`, false},
		{`<message><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>`, false},
		{`<message><x xmlns='urn:example'><body>hidden</body></x></message>`, false},
		{`<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>`, true},
		{`<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true},
		{`<message type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>`, true},
		{`<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>`, true},
		{`<message><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>`, true},
		{`<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>`, true},
	} {
		if got := Important(mustParse(t, c.raw)); got != c.want {
			t.Errorf("Important(%s) = %v, want %v", c.raw, got, c.want)
		}
	}
}

// TestOptions: the defaults validate, and what Validate refuses.
func TestOptions(t *testing.T) {
	if p := DefaultOptions().Validate(); len(p) != 0 {
		t.Errorf("defaults: %v", p)
	}
	o := DefaultOptions()
	o.MinInterval.Duration, o.MaxRegistrations, o.MaxErrors = -time.Second, 0, 0
	if p := o.Validate(); len(p) != 3 {
		t.Errorf("problems %v, want 3", p)
	}
}

// TestCut: last-message-body is cut by characters, not bytes.
func TestCut(t *testing.T) {
	if got := cut("héllo", 5); got != "héllo" {
		t.Errorf("cut = %q", got)
	}
	if got := cut("héllo wörld", 5); got != "héll…" {
		t.Errorf("cut = %q", got)
	}
}
