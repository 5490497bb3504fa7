package blocking

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// fakeStore is an in-memory storage.Blocklist with failures on demand.
type fakeStore struct {
	mu                sync.Mutex
	lists             map[string][]string // "user@host" → blocked JIDs
	reads             int                 // BlockedJIDs calls
	readErr, writeErr error
	// gate, if set, holds the next BlockedJIDs after it has read: it
	// sends on gate, then waits to receive from it.
	gate chan struct{}
}

func (f *fakeStore) BlockedJIDs(_ context.Context, host, username string) ([]string, error) {
	f.mu.Lock()
	f.reads++
	l, err, gate := slices.Clone(f.lists[username+"@"+host]), f.readErr, f.gate
	f.gate = nil
	f.mu.Unlock()
	if gate != nil {
		gate <- struct{}{}
		<-gate
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(l)
	return l, nil
}

func (f *fakeStore) Block(_ context.Context, host, username string, jids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return f.writeErr
	}
	key := username + "@" + host
	for _, j := range jids {
		if !slices.Contains(f.lists[key], j) {
			f.lists[key] = append(f.lists[key], j)
		}
	}
	return nil
}

func (f *fakeStore) Unblock(_ context.Context, host, username string, jids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return f.writeErr
	}
	key := username + "@" + host
	if len(jids) == 0 {
		delete(f.lists, key)
		return nil
	}
	f.lists[key] = slices.DeleteFunc(f.lists[key], func(j string) bool { return slices.Contains(jids, j) })
	return nil
}

func (f *fakeStore) stored(user string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := slices.Clone(f.lists[user])
	slices.Sort(l)
	return l
}

// session is a router.Session that records what it is given.
type session struct {
	full jid.JID
	got  [][]byte
}

func (s *session) JID() jid.JID                   { return s.full }
func (s *session) Deliver(raw []byte) bool        { s.got = append(s.got, raw); return true }
func (s *session) Available() (ok bool, prio int) { return true, 0 }
func (s *session) Replace()                       {}
func (s *session) SetAvailable(bool, int)         {}

// sender records the Mux's replies.
type sender struct{ replies [][]byte }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, raw)
	return true
}

// env is a Service on a Mux with alice's three sessions and bob's one.
type env struct {
	t        *testing.T
	svc      *Service
	store    *fakeStore
	mux      *dispatch.Mux
	out      *sender
	sessions map[string][]*session // bare JID → sessions
	// hooks records OnBlock and OnUnblock calls, "block user item" and
	// "unblock user item".
	hooks []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &env{t: t, store: &fakeStore{lists: map[string][]string{}}, out: &sender{}, sessions: map[string][]*session{}}
	for _, full := range []string{"alice@example.org/phone", "alice@example.org/laptop", "alice@example.org/tablet", "bob@example.org/pc"} {
		j := jid.MustParse(full)
		e.sessions[j.Bare().String()] = append(e.sessions[j.Bare().String()], &session{full: j})
	}
	e.svc = &Service{
		Store: e.store,
		Sessions: func(bare jid.JID) []router.Session {
			var out []router.Session
			for _, s := range e.sessions[bare.String()] {
				out = append(out, s)
			}
			return out
		},
		OnBlock: func(_ context.Context, user, j jid.JID) {
			e.hooks = append(e.hooks, "block "+user.String()+" "+j.String())
		},
		OnUnblock: func(_ context.Context, user, j jid.JID) {
			e.hooks = append(e.hooks, "unblock "+user.String()+" "+j.String())
		},
		Log: log,
	}
	e.mux = dispatch.New(log)
	e.mux.SetSender(e.out)
	e.svc.Register(e.mux)
	return e
}

// session returns the recorded session of full.
func (e *env) session(full string) *session {
	j := jid.MustParse(full)
	for _, s := range e.sessions[j.Bare().String()] {
		if s.full.Equal(j) {
			return s
		}
	}
	e.t.Fatalf("no session %s", full)
	return nil
}

// ask sends raw (already stamped with 'from') through the Mux and returns
// the reply and, per full JID, what the sessions were pushed.
func (e *env) ask(raw string) (reply []byte, pushes map[string][]string) {
	e.t.Helper()
	st, err := stanza.Parse([]byte(raw), bytes.IndexByte([]byte(raw), '>')+1)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ss := range e.sessions {
		for _, s := range ss {
			s.got = nil
		}
	}
	e.out.replies = nil
	e.mux.HandleServer(context.Background(), st)
	if len(e.out.replies) != 1 {
		e.t.Fatalf("%d replies to %s", len(e.out.replies), raw)
	}
	pushes = map[string][]string{}
	for _, ss := range e.sessions {
		for _, s := range ss {
			for _, p := range s.got {
				pushes[s.full.String()] = append(pushes[s.full.String()], string(p))
			}
		}
	}
	return e.out.replies[0], pushes
}

func (e *env) blocked(user, other string) bool {
	return e.svc.Blocked(context.Background(), jid.MustParse(user), jid.MustParse(other))
}

// TestMatches: the JID matching rules of §6.
func TestMatches(t *testing.T) {
	tests := []struct {
		item string
		yes  []string
		no   []string
	}{
		{item: "romeo@montague.net/orchard",
			yes: []string{"romeo@montague.net/orchard"},
			no:  []string{"romeo@montague.net", "romeo@montague.net/balcony", "montague.net", "montague.net/orchard"}},
		{item: "romeo@montague.net",
			yes: []string{"romeo@montague.net", "romeo@montague.net/orchard", "romeo@montague.net/balcony"},
			no:  []string{"montague.net", "tybalt@montague.net", "romeo@capulet.com", "montague.net/orchard"}},
		{item: "montague.net/orchard",
			yes: []string{"montague.net/orchard"},
			no:  []string{"montague.net", "montague.net/balcony", "romeo@montague.net/orchard", "romeo@montague.net"}},
		{item: "montague.net",
			yes: []string{"montague.net", "montague.net/orchard", "romeo@montague.net", "romeo@montague.net/orchard"},
			no:  []string{"chat.montague.net", "romeo@chat.montague.net", "evilmontague.net", "capulet.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.item, func(t *testing.T) {
			item := jid.MustParse(tt.item)
			l := list{item.String(): item}
			for _, want := range []bool{true, false} {
				addrs := tt.yes
				if !want {
					addrs = tt.no
				}
				for _, a := range addrs {
					addr := jid.MustParse(a)
					if got := Matches(item, addr); got != want {
						t.Errorf("Matches(%s, %s) = %v", tt.item, a, got)
					}
					if got := l.matches(addr); got != want {
						t.Errorf("list{%s}.matches(%s) = %v", tt.item, a, got)
					}
				}
			}
		})
	}
}

// TestBlocked: a stored blocklist applies in both directions the router
// asks about, never between the user's own resources (§5), and with items
// stored in another spelling of the same JID.
func TestBlocked(t *testing.T) {
	e := newEnv(t)
	e.store.lists["alice@example.org"] = []string{"example.org", "Romeo@Montague.net", "not a jid@"}
	tests := []struct {
		other string
		want  bool
	}{
		{"romeo@montague.net/orchard", true},
		{"romeo@montague.net", true},
		{"juliet@capulet.com", false},
		{"bob@example.org/pc", true},
		{"example.org", true},
		{"alice@example.org/laptop", false}, // herself, though her domain is blocked
		{"alice@example.org", false},
	}
	for _, tt := range tests {
		if got := e.blocked("alice@example.org", tt.other); got != tt.want {
			t.Errorf("Blocked(alice, %s) = %v, want %v", tt.other, got, tt.want)
		}
	}
	if got := e.blocked("bob@example.org", "romeo@montague.net"); got {
		t.Error("bob's empty list blocks romeo")
	}
	if e.store.reads != 2 {
		t.Errorf("%d storage reads for two accounts", e.store.reads)
	}
}

// TestCommands walks through §3.2–§3.5: the phone and the tablet retrieve
// the list and get the pushes, the laptop does not; the hooks run for
// what actually changed; Blocked follows every change.
func TestCommands(t *testing.T) {
	e := newEnv(t)
	const phone, laptop, tablet = "alice@example.org/phone", "alice@example.org/laptop", "alice@example.org/tablet"
	steps := []struct {
		name   string
		send   string
		reply  string
		pushes map[string]string // full JID → push (id not compared)
		hooks  []string
		// blocked and free are JIDs alice blocks, or not, afterwards.
		blocked, free []string
	}{
		{name: "§3.2 empty list",
			send:  `<iq from='` + phone + `' type='get' id='1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`,
			reply: `<iq to='` + phone + `' type='result' id='1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`,
			free:  []string{"romeo@montague.net"}},
		{name: "§3.3 block from the laptop, pushed to the phone only",
			send:    `<iq from='` + laptop + `' type='set' id='2'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='Iago@Shakespeare.lit'/><item jid='romeo@montague.net'/></block></iq>`,
			reply:   `<iq to='` + laptop + `' type='result' id='2'/>`,
			pushes:  map[string]string{phone: `<iq to='` + phone + `' type='set' id='*'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='iago@shakespeare.lit'/></block></iq>`},
			hooks:   []string{"block alice@example.org romeo@montague.net", "block alice@example.org iago@shakespeare.lit"},
			blocked: []string{"romeo@montague.net/orchard", "iago@shakespeare.lit"},
			free:    []string{"juliet@capulet.com"}},
		{name: "§3.2 the tablet retrieves the list, to the user's bare JID",
			send:  `<iq from='` + tablet + `' to='alice@example.org' type='get' id='3'><blocklist xmlns='urn:xmpp:blocking'/></iq>`,
			reply: `<iq from='alice@example.org' to='` + tablet + `' type='result' id='3'><blocklist xmlns='urn:xmpp:blocking'><item jid='iago@shakespeare.lit'/><item jid='romeo@montague.net'/></blocklist></iq>`},
		{name: "§3.3 blocking again only what is new runs the hook",
			send:  `<iq from='` + phone + `' type='set' id='4'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='capulet.com'/></block></iq>`,
			reply: `<iq to='` + phone + `' type='result' id='4'/>`,
			pushes: map[string]string{
				phone:  `<iq to='` + phone + `' type='set' id='*'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='capulet.com'/></block></iq>`,
				tablet: `<iq to='` + tablet + `' type='set' id='*'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='capulet.com'/></block></iq>`,
			},
			hooks:   []string{"block alice@example.org capulet.com"},
			blocked: []string{"juliet@capulet.com/balcony", "capulet.com"}},
		{name: "§3.4 unblock one, and one that was not blocked",
			send:  `<iq from='` + laptop + `' type='set' id='5'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='mercutio@verona.lit'/></unblock></iq>`,
			reply: `<iq to='` + laptop + `' type='result' id='5'/>`,
			pushes: map[string]string{
				phone:  `<iq to='` + phone + `' type='set' id='*'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='mercutio@verona.lit'/></unblock></iq>`,
				tablet: `<iq to='` + tablet + `' type='set' id='*'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='mercutio@verona.lit'/></unblock></iq>`,
			},
			hooks:   []string{"unblock alice@example.org romeo@montague.net"},
			blocked: []string{"iago@shakespeare.lit", "juliet@capulet.com"},
			free:    []string{"romeo@montague.net/orchard"}},
		{name: "§3.5 unblock all",
			send:  `<iq from='` + phone + `' type='set' id='6'><unblock xmlns='urn:xmpp:blocking'/></iq>`,
			reply: `<iq to='` + phone + `' type='result' id='6'/>`,
			pushes: map[string]string{
				phone:  `<iq to='` + phone + `' type='set' id='*'><unblock xmlns='urn:xmpp:blocking'/></iq>`,
				tablet: `<iq to='` + tablet + `' type='set' id='*'><unblock xmlns='urn:xmpp:blocking'/></iq>`,
			},
			hooks: []string{"unblock alice@example.org capulet.com", "unblock alice@example.org iago@shakespeare.lit"},
			free:  []string{"iago@shakespeare.lit", "juliet@capulet.com", "romeo@montague.net"}},
		{name: "§3.2 the empty list again",
			send:  `<iq from='` + laptop + `' type='get' id='7'><blocklist xmlns='urn:xmpp:blocking'/></iq>`,
			reply: `<iq to='` + laptop + `' type='result' id='7'><blocklist xmlns='urn:xmpp:blocking'/></iq>`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.hooks = nil
			reply, pushes := e.ask(st.send)
			if err := xmlcmp.Equal([]byte(st.reply), reply, "jabber:client"); err != nil {
				t.Errorf("reply %s\nwant %s\n%v", reply, st.reply, err)
			}
			if len(pushes) != len(st.pushes) {
				t.Errorf("pushes %v, want %d", pushes, len(st.pushes))
			}
			for full, want := range st.pushes {
				got := pushes[full]
				if len(got) != 1 {
					t.Errorf("%s got %d pushes %v, want 1", full, len(got), got)
					continue
				}
				if err := xmlcmp.Equal([]byte(want), []byte(got[0]), "jabber:client"); err != nil {
					t.Errorf("push to %s: %s\nwant %s\n%v", full, got[0], want, err)
				}
			}
			slices.Sort(e.hooks)
			want := slices.Sorted(slices.Values(st.hooks))
			if !slices.Equal(e.hooks, want) {
				t.Errorf("hooks %q, want %q", e.hooks, want)
			}
			for _, j := range st.blocked {
				if !e.blocked("alice@example.org", j) {
					t.Errorf("%s not blocked", j)
				}
			}
			for _, j := range st.free {
				if e.blocked("alice@example.org", j) {
					t.Errorf("%s blocked", j)
				}
			}
		})
	}
	if got := e.store.stored("alice@example.org"); len(got) != 0 {
		t.Errorf("stored after unblocking all: %v", got)
	}
	if e.store.reads != 1 {
		t.Errorf("%d storage reads; the list is read once, then cached", e.store.reads)
	}

	// A session that ended gets no more pushes.
	e.svc.SessionEnded(e.session(tablet))
	_, pushes := e.ask(`<iq from='` + laptop + `' type='set' id='8'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block></iq>`)
	if _, ok := pushes[tablet]; ok || len(pushes) != 2 { // the phone, and the laptop since step 7
		t.Errorf("pushes after the tablet's session ended: %v", pushes)
	}
}

// TestReplacedSession: a session replaced by a new one with the same full
// JID (RFC 6120 §7.7.2.2) ends after its successor has retrieved the
// blocklist; the successor still gets the pushes (issue 11 part 5: the
// interest was kept by full JID, and the old session's end cleared it).
func TestReplacedSession(t *testing.T) {
	e := newEnv(t)
	const phone, laptop = "alice@example.org/phone", "alice@example.org/laptop"
	get := `<iq from='` + phone + `' type='get' id='g'><blocklist xmlns='urn:xmpp:blocking'/></iq>`
	e.ask(get)
	old := e.session(phone)
	successor := &session{full: old.full}
	alice := e.sessions["alice@example.org"]
	alice[slices.Index(alice, old)] = successor
	e.ask(get)
	e.svc.SessionEnded(old)
	_, pushes := e.ask(`<iq from='` + laptop + `' type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block></iq>`)
	if len(pushes[phone]) != 1 {
		t.Fatalf("the successor got pushes %v, want one", pushes[phone])
	}
}

// TestErrors: requests that are refused change nothing and push nothing.
func TestErrors(t *testing.T) {
	const phone = "alice@example.org/phone"
	errIQ := func(id, typ, cond string) string {
		return `<iq to='` + phone + `' type='error' id='` + id + `'><error type='` + typ + `'><` + cond + ` xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`
	}
	tests := []struct {
		name, send, reply string
		writeErr          error
	}{
		{name: "§3.3 block without items",
			send:  `<iq from='` + phone + `' type='set' id='1'><block xmlns='urn:xmpp:blocking'/></iq>`,
			reply: errIQ("1", "modify", "bad-request")},
		{name: "item that is not a JID",
			send:  `<iq from='` + phone + `' type='set' id='2'><block xmlns='urn:xmpp:blocking'><item jid='juliet@capulet.com'/><item jid='a@b@c'/></block></iq>`,
			reply: errIQ("2", "modify", "jid-malformed")},
		{name: "item without a jid",
			send:  `<iq from='` + phone + `' type='set' id='3'><unblock xmlns='urn:xmpp:blocking'><item/></unblock></iq>`,
			reply: errIQ("3", "modify", "jid-malformed")},
		{name: "a get of block",
			send:  `<iq from='` + phone + `' type='get' id='4'><block xmlns='urn:xmpp:blocking'><item jid='juliet@capulet.com'/></block></iq>`,
			reply: errIQ("4", "cancel", "service-unavailable")},
		{name: "a set of blocklist",
			send:  `<iq from='` + phone + `' type='set' id='5'><blocklist xmlns='urn:xmpp:blocking'><item jid='juliet@capulet.com'/></blocklist></iq>`,
			reply: errIQ("5", "cancel", "service-unavailable")},
		{name: "to the server's domain",
			send:  `<iq from='` + phone + `' to='example.org' type='set' id='6'><block xmlns='urn:xmpp:blocking'><item jid='juliet@capulet.com'/></block></iq>`,
			reply: `<iq from='example.org' to='` + phone + `' type='error' id='6'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{name: "to another account",
			send:  `<iq from='` + phone + `' to='bob@example.org' type='get' id='7'><blocklist xmlns='urn:xmpp:blocking'/></iq>`,
			reply: `<iq from='bob@example.org' to='` + phone + `' type='error' id='7'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{name: "storage failure on block",
			send:     `<iq from='` + phone + `' type='set' id='8'><block xmlns='urn:xmpp:blocking'><item jid='juliet@capulet.com'/></block></iq>`,
			reply:    errIQ("8", "wait", "internal-server-error"),
			writeErr: errors.New("disk on fire")},
		{name: "storage failure on unblock",
			send:     `<iq from='` + phone + `' type='set' id='9'><unblock xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></unblock></iq>`,
			reply:    errIQ("9", "wait", "internal-server-error"),
			writeErr: errors.New("disk on fire")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.lists["alice@example.org"] = []string{"romeo@montague.net"}
			e.ask(`<iq from='` + phone + `' type='get' id='0'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
			e.store.writeErr = tt.writeErr
			reply, pushes := e.ask(tt.send)
			if err := xmlcmp.Equal([]byte(tt.reply), reply, "jabber:client"); err != nil {
				t.Errorf("reply %s\nwant %s\n%v", reply, tt.reply, err)
			}
			if len(pushes) != 0 || len(e.hooks) != 0 {
				t.Errorf("pushes %v, hooks %v", pushes, e.hooks)
			}
			if !e.blocked("alice@example.org", "romeo@montague.net") || e.blocked("alice@example.org", "juliet@capulet.com") {
				t.Error("the cached list changed")
			}
			if got := e.store.stored("alice@example.org"); !slices.Equal(got, []string{"romeo@montague.net"}) {
				t.Errorf("stored list changed: %v", got)
			}
		})
	}
}

// TestOnBlockBeforeEffect: OnBlock runs while what it sends to the newly
// blocked JID still passes the router, and the block applies as soon as
// the command is answered.
func TestOnBlockBeforeEffect(t *testing.T) {
	e := newEnv(t)
	var during []bool
	e.svc.OnBlock = func(ctx context.Context, user, blocked jid.JID) {
		// bob's list, read first, would push alice's out of a cache of
		// one if it were not pinned.
		during = append(during, e.svc.Blocked(ctx, blocked, user), e.svc.Blocked(ctx, user, blocked))
	}
	e.svc.MaxCached = 1 // the list being edited must stay cached even so
	e.ask(`<iq from='alice@example.org/phone' type='set' id='1'><block xmlns='urn:xmpp:blocking'><item jid='bob@example.org'/></block></iq>`)
	if !slices.Equal(during, []bool{false, false}) {
		t.Errorf("Blocked during OnBlock: %v, want [false false]", during)
	}
	if !e.blocked("alice@example.org", "bob@example.org/pc") {
		t.Error("bob not blocked after the result")
	}
}

// TestCache: storage is read once per account; a read failure is not
// remembered (and blocks nothing); past MaxCached, lists are read again.
func TestCache(t *testing.T) {
	e := newEnv(t)
	e.store.lists["alice@example.org"] = []string{"romeo@montague.net"}

	e.store.readErr = errors.New("storage down")
	if e.blocked("alice@example.org", "romeo@montague.net") {
		t.Error("blocked while storage is down")
	}
	e.store.readErr = nil
	for range 3 {
		if !e.blocked("alice@example.org", "romeo@montague.net") {
			t.Error("not blocked once storage is back")
		}
	}
	if e.store.reads != 2 {
		t.Errorf("%d reads, want 2 (the failed one, then one cached)", e.store.reads)
	}

	e.svc.MaxCached = 2
	users := []string{"alice@example.org"}
	for i := range 5 {
		users = append(users, fmt.Sprintf("user%d@example.org", i))
	}
	for _, u := range users {
		e.blocked(u, "romeo@montague.net")
	}
	e.svc.mu.RLock()
	n := len(e.svc.lists)
	e.svc.mu.RUnlock()
	if n > 2 {
		t.Errorf("%d lists cached, MaxCached 2", n)
	}
	e.store.reads = 0
	for _, u := range users {
		if got, want := e.blocked(u, "romeo@montague.net"), u == "alice@example.org"; got != want {
			t.Errorf("Blocked(%s, romeo) = %v after eviction", u, got)
		}
	}
	if e.store.reads < len(users)-2 {
		t.Errorf("%d reads for %d accounts, at most 2 cached", e.store.reads, len(users))
	}
}

// TestStaleRead: a list read from storage before a block command, and
// returned after it, is not cached over the new one, even when the new one
// has been evicted meanwhile.
func TestStaleRead(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.store.gate = gate
	before := make(chan bool)
	go func() { before <- e.blocked("alice@example.org", "romeo@montague.net") }()
	<-gate // the router's read of alice's (empty) list is done, not returned
	e.ask(`<iq from='alice@example.org/phone' type='set' id='1'><block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block></iq>`)
	e.svc.mu.Lock()
	delete(e.svc.lists, "alice@example.org") // as if evicted
	e.svc.mu.Unlock()
	gate <- struct{}{}
	if <-before {
		t.Error("the question asked before the block saw it")
	}
	if !e.blocked("alice@example.org", "romeo@montague.net") {
		t.Error("the stale list was cached")
	}
}

// TestConcurrent: commands and the router's questions at once stay
// consistent (run with -race).
func TestConcurrent(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			j := fmt.Sprintf("user%d@example.net", i)
			e.svc.Blocked(context.Background(), jid.MustParse("alice@example.org"), jid.MustParse(j))
		})
	}
	for i := range 20 {
		j := fmt.Sprintf("user%d@example.net", i)
		e.ask(`<iq from='alice@example.org/phone' type='set' id='b` + fmt.Sprint(i) + `'><block xmlns='urn:xmpp:blocking'><item jid='` + j + `'/></block></iq>`)
	}
	wg.Wait()
	for i := range 20 {
		if j := fmt.Sprintf("user%d@example.net", i); !e.blocked("alice@example.org", j) {
			t.Errorf("%s not blocked", j)
		}
	}
	if got := len(e.store.stored("alice@example.org")); got != 20 {
		t.Errorf("%d stored", got)
	}
	if len(e.hooks) != 20 {
		t.Errorf("%d OnBlock calls, want 20", len(e.hooks))
	}
}

// TestRegister: the feature is advertised (§3.1).
func TestRegister(t *testing.T) {
	e := newEnv(t)
	if !slices.Contains(e.mux.Features(), "urn:xmpp:blocking") {
		t.Errorf("features %v", e.mux.Features())
	}
}
