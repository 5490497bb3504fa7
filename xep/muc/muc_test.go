package muc

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// fakeRouter records what the service routes.
type fakeRouter struct {
	router.Router
	mu  sync.Mutex
	out []*stanza.Stanza
}

func (f *fakeRouter) Route(_ context.Context, st *stanza.Stanza) {
	f.mu.Lock()
	f.out = append(f.out, st)
	f.mu.Unlock()
}

func (f *fakeRouter) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, st := range f.out {
		got = append(got, string(st.Raw))
	}
	f.out = nil
	return got
}

func newService(t *testing.T, st storage.MUC) (*Service, *fakeRouter) {
	t.Helper()
	r := &fakeRouter{}
	s := &Service{Domain: "conference.example.org", Host: "example.org", Router: r, Store: st,
		Options: DefaultOptions, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if st != nil {
		s.writer = archive.NewWriter(s.appendArchive, s.Log)
		t.Cleanup(func() { s.writer.Stop(context.Background()) })
		if err := s.load(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return s, r
}

// send hands the service a stanza written in the test.
func send(t *testing.T, s *Service, raw string) {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	s.HandleService(t.Context(), st)
}

func contains(got []string, want string) bool {
	for _, g := range got {
		if strings.Contains(g, want) {
			return true
		}
	}
	return false
}

// TestPersistentRoom: a persistent room's configuration, subject and
// affiliations survive a restart (a new Service on the same storage); a
// temporary room does not, and a destroyed one is gone from storage.
func TestPersistentRoom(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	s, r := newService(t, db)
	const owner = "alice@example.org/phone"
	send(t, s, "<presence from='"+owner+"' to='keep@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='c'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_roomname'><value>Kept</value></field>"+
		"<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>")
	send(t, s, "<message from='"+owner+"' to='keep@conference.example.org' type='groupchat'><subject>Still here</subject></message>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='bob@example.org' affiliation='member' nick='Bobby'/><item jid='eve@example.org' affiliation='outcast'><reason>spam</reason></item></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a2'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='dan@example.org' affiliation='member'/></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a3'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='dan@example.org' affiliation='none'/></query></iq>")
	// A temporary room, configured, with its owner still inside.
	send(t, s, "<presence from='"+owner+"' to='temp@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='temp@conference.example.org' type='set' id='t'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	// A persistent room, then destroyed.
	send(t, s, "<presence from='"+owner+"' to='gone@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='gone@conference.example.org' type='set' id='g'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='gone@conference.example.org' type='set' id='d'><query xmlns='"+NSOwner+"'><destroy/></query></iq>")
	for _, got := range r.take() {
		if strings.Contains(got, "type='error'") {
			t.Fatalf("error: %s", got)
		}
	}

	// The restart.
	s2, r2 := newService(t, db)
	if len(s2.rooms) != 1 || s2.rooms["keep"] == nil {
		t.Fatalf("rooms after a restart: %v", s2.rooms)
	}
	kept := s2.rooms["keep"]
	if kept.cfg.Name != "Kept" || !kept.cfg.MembersOnly || kept.subject != "Still here" || kept.locked {
		t.Errorf("room after a restart: %+v, subject %q", kept.cfg, kept.subject)
	}
	want := map[string]affiliation{
		"alice@example.org": {aff: affOwner},
		"bob@example.org":   {aff: affMember, nick: "Bobby"},
		"eve@example.org":   {aff: affOutcast, reason: "spam"},
	}
	if len(kept.affiliations) != len(want) {
		t.Errorf("affiliations after a restart: %v", kept.affiliations)
	}
	for j, a := range want {
		if kept.affiliations[j] != a {
			t.Errorf("%s: %+v, want %+v", j, kept.affiliations[j], a)
		}
	}
	// It works as it did: the banned stay out, a member enters with
	// the occupant-id of before.
	send(t, s2, "<presence from='eve@example.org/x' to='keep@conference.example.org/Eve'/>")
	if got := r2.take(); !contains(got, "<forbidden") {
		t.Errorf("outcast entering: %q", got)
	}
	send(t, s2, "<presence from='bob@example.org/x' to='keep@conference.example.org/Bobby'/>")
	got := r2.take()
	if !contains(got, "<subject>Still here</subject>") || !contains(got, "id='"+s.rooms["keep"].occupantID(jidOf(t, "bob@example.org"))+"'") {
		t.Errorf("member entering: %q", got)
	}
}

func jidOf(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// countRouter counts what the service routes, and checks that no room
// lock is held while it does (the room's lock is tried from inside).
type countRouter struct {
	router.Router
	mu     sync.Mutex
	n      int
	room   func() *room
	locked int
}

func (c *countRouter) Route(_ context.Context, st *stanza.Stanza) {
	locked := false
	if r := c.room(); r != nil {
		if r.mu.TryLock() {
			r.mu.Unlock()
		} else {
			locked = true
		}
	}
	c.mu.Lock()
	c.n++
	if locked {
		c.locked++
	}
	c.mu.Unlock()
}

func bigRoom(tb testing.TB, n int) (*Service, *countRouter) {
	tb.Helper()
	c := &countRouter{}
	opts := DefaultOptions()
	opts.OccupantRate, opts.RoomRate = 1<<30, 1<<30 // measured, not limited
	s := &Service{Domain: "conference.example.org", Host: "example.org", Router: c,
		Options: func() *Options { return opts }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c.room = func() *room { return s.room("big") }
	ctx := context.Background()
	do := func(raw string) {
		st, err := stanza.ParseElement([]byte(raw))
		if err != nil {
			tb.Fatal(err)
		}
		s.HandleService(ctx, st)
	}
	do("<presence from='u0@example.org/r' to='big@conference.example.org/u0'/>")
	do("<iq from='u0@example.org/r' to='big@conference.example.org' type='set' id='c'><query xmlns='" + NSOwner + "'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	for i := 1; i < n; i++ {
		u := "u" + strconv.Itoa(i)
		do("<presence from='" + u + "@example.org/r' to='big@conference.example.org/" + u + "'/>")
	}
	return s, c
}

// TestConcurrentRoom: occupants entering, talking, changing nicknames
// and leaving at once (run with -race); the room ends as it should.
func TestConcurrentRoom(t *testing.T) {
	s, c := bigRoom(t, 50)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := "w" + strconv.Itoa(i)
			for j := 0; j < 20; j++ {
				send(t, s, "<presence from='"+u+"@example.org/r' to='big@conference.example.org/"+u+"'/>")
				send(t, s, "<message from='"+u+"@example.org/r' to='big@conference.example.org' type='groupchat'><body>hi</body></message>")
				send(t, s, "<presence from='"+u+"@example.org/r' to='big@conference.example.org/"+u+"x'/>")
				send(t, s, "<presence from='"+u+"@example.org/r' to='big@conference.example.org/"+u+"x' type='unavailable'/>")
			}
		}()
	}
	wg.Wait()
	r := s.room("big")
	if r == nil || len(r.occupants) != 50 || len(r.real) != 50 {
		t.Fatalf("room after the churn: %v", r)
	}
	_ = c
}

// TestRoutesUnlocked: with one goroutine, the room's lock is free at
// every delivery of a message, an entering and a kick (§ scale: no lock
// held over the sends).
func TestRoutesUnlocked(t *testing.T) {
	s, c := bigRoom(t, 20)
	c.n, c.locked = 0, 0
	send(t, s, "<message from='u3@example.org/r' to='big@conference.example.org' type='groupchat'><body>hi</body></message>")
	send(t, s, "<presence from='new@example.org/r' to='big@conference.example.org/new'/>")
	send(t, s, "<iq from='u0@example.org/r' to='big@conference.example.org' type='set' id='k'><query xmlns='"+NSAdmin+"'><item nick='new' role='none'/></query></iq>")
	if c.n < 20+20+2+21 {
		t.Fatalf("only %d stanzas routed", c.n)
	}
	if c.locked != 0 {
		t.Errorf("%d of %d stanzas routed with the room locked", c.locked, c.n)
	}
}

// BenchmarkGroupchat1000 is one message to a room of 1,000 occupants:
// 1,000 deliveries, none under the room's lock.
func BenchmarkGroupchat1000(b *testing.B) {
	s, c := bigRoom(b, 1000)
	st, err := stanza.ParseElement([]byte("<message from='u7@example.org/r' to='big@conference.example.org' type='groupchat' id='m'><body>Hello everyone, a message of a usual length for a busy room.</body></message>"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c.n = 0
	b.ReportAllocs()
	for b.Loop() {
		s.HandleService(ctx, st)
	}
	b.ReportMetric(float64(c.n)/float64(b.N), "deliveries/op")
}

// TestFloodLimits: an occupant's burst is five seconds of its rate,
// then policy-violation (type wait) until time refills it; the room has
// a rate of its own over all its occupants.
func TestFloodLimits(t *testing.T) {
	s, r := newService(t, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	opts := DefaultOptions()
	opts.OccupantRate, opts.RoomRate = 2, 3
	s.Options = func() *Options { return opts }
	send(t, s, "<presence from='a@example.org/r' to='flood@conference.example.org/a'/>")
	send(t, s, "<iq from='a@example.org/r' to='flood@conference.example.org' type='set' id='c'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	send(t, s, "<presence from='b@example.org/r' to='flood@conference.example.org/b'/>")
	r.take()
	msg := func(from string) []string {
		send(t, s, "<message from='"+from+"' to='flood@conference.example.org' type='groupchat'><body>x</body></message>")
		return r.take()
	}
	for i := 0; i < 10; i++ { // a's burst: 2/s × 5 s
		if got := msg("a@example.org/r"); contains(got, "type='error'") {
			t.Fatalf("message %d refused: %q", i, got)
		}
	}
	if got := msg("a@example.org/r"); !contains(got, "<policy-violation") || !contains(got, "type='wait'") {
		t.Fatalf("the 11th message: %q", got)
	}
	// b has its own bucket, but the room's (3/s × 5 s = 15) has 5 left.
	for i := 0; i < 5; i++ {
		if got := msg("b@example.org/r"); contains(got, "type='error'") {
			t.Fatalf("b's message %d refused: %q", i, got)
		}
	}
	if got := msg("b@example.org/r"); !contains(got, "<policy-violation") {
		t.Fatalf("over the room's rate: %q", got)
	}
	now = now.Add(time.Second) // 2 for a, 3 for the room
	for i := 0; i < 2; i++ {
		if got := msg("a@example.org/r"); contains(got, "type='error'") {
			t.Fatalf("after a second, message %d refused: %q", i, got)
		}
	}
	if got := msg("a@example.org/r"); !contains(got, "<policy-violation") {
		t.Fatalf("a's third after a second: %q", got)
	}
}

// TestHistory: §7.2.14's maxstanzas, maxchars, seconds and since, alone
// and together (the most restrictive wins), each message delayed by the
// room (XEP-0203).
func TestHistory(t *testing.T) {
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := newRoom(jidOf(t, "h@conference.example.org"), roomConfig{})
	for i := 0; i < 5; i++ {
		inner := "<body>m" + strconv.Itoa(i) + "</body>"
		r.history = append(r.history, historyMessage{from: "h@conference.example.org/x", inner: []byte(inner),
			at: base.Add(time.Duration(i) * time.Minute), chars: len(inner)})
	}
	now := base.Add(5 * time.Minute)
	to := jidOf(t, "a@example.org/r")
	for _, tc := range []struct {
		h    string
		want string // the bodies, in order
	}{
		{"", "m0 m1 m2 m3 m4"},
		{"<history maxstanzas='2'/>", "m3 m4"},
		{"<history maxstanzas='0'/>", ""},
		{"<history seconds='150'/>", "m3 m4"},
		{"<history since='2026-01-01T12:01:00Z'/>", "m2 m3 m4"},
		{"<history maxchars='30'/>", "m3 m4"},
		{"<history maxstanzas='3' seconds='90'/>", "m4"},
	} {
		var j joinXML
		if err := xml.Unmarshal([]byte("<x xmlns='"+NS+"'>"+tc.h+"</x>"), &j); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range r.historyFor(nil, to, &j, now) {
			s := string(o.raw)
			if !strings.Contains(s, "<delay xmlns='urn:xmpp:delay' from='h@conference.example.org' stamp='2026-01-01T12:0") {
				t.Errorf("%s: no delay in %s", tc.h, s)
			}
			i := strings.Index(s, "<body>")
			got = append(got, s[i+6:i+8])
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: %q, want %q", tc.h, got, tc.want)
		}
	}
}

// TestArchivedHistory: a persistent room's messages are archived, and
// after a restart they are the history a new occupant gets.
func TestArchivedHistory(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, r := newService(t, db)
	const owner = "alice@example.org/phone"
	send(t, s, "<presence from='"+owner+"' to='log@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='log@conference.example.org' type='set' id='c'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>")
	for i := 0; i < 3; i++ {
		send(t, s, "<message from='"+owner+"' to='log@conference.example.org' type='groupchat' id='m"+strconv.Itoa(i)+"'><body>said "+strconv.Itoa(i)+" café</body></message>")
	}
	if got := r.take(); !contains(got, "<stanza-id xmlns='urn:xmpp:sid:0' by='log@conference.example.org'") {
		t.Fatalf("no stanza-id: %q", got)
	}
	if err := s.writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s2, r2 := newService(t, db)
	// maxchars counts characters, live and reloaded alike.
	for _, h := range s2.rooms["log"].history {
		if h.chars != utf8.RuneCount(h.inner) {
			t.Errorf("reloaded history counts %d characters of %q", h.chars, h.inner)
		}
	}
	send(t, s2, "<presence from='bob@example.org/x' to='log@conference.example.org/Bob'/>")
	got := r2.take()
	for i := 0; i < 3; i++ {
		if !contains(got, "<body>said "+strconv.Itoa(i)+" café</body>") {
			t.Errorf("history after a restart lacks message %d: %q", i, got)
		}
	}
	if !contains(got, "<delay xmlns='urn:xmpp:delay' from='log@conference.example.org'") || !contains(got, "<status code='170'/>") {
		t.Errorf("history or 170 missing: %q", got)
	}
}

// TestNewcomerOrder: while occupants talk, each newcomer gets its own
// entering — the occupants, its presence, the subject — before any live
// message: the room sends the stanzas of its changes in the order it
// made them (handOff).
func TestNewcomerOrder(t *testing.T) {
	s, r := newService(t, nil)
	opts := DefaultOptions()
	opts.OccupantRate, opts.RoomRate = 1<<30, 1<<30
	s.Options = func() *Options { return opts }
	send(t, s, "<presence from='t0@example.org/r' to='o@conference.example.org/t0'/>")
	send(t, s, "<iq from='t0@example.org/r' to='o@conference.example.org' type='set' id='c'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	for i := 1; i < 4; i++ {
		send(t, s, "<presence from='t"+strconv.Itoa(i)+"@example.org/r' to='o@conference.example.org/t"+strconv.Itoa(i)+"'/>")
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				send(t, s, "<message from='t"+strconv.Itoa(i)+"@example.org/r' to='o@conference.example.org' type='groupchat'><body>x</body></message>")
			}
		}()
	}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(t, s, "<presence from='n"+strconv.Itoa(i)+"@example.org/r' to='o@conference.example.org/n"+strconv.Itoa(i)+"'/>")
		}()
	}
	wg.Wait()
	entered := map[string]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.out {
		to := st.To.String()
		if !strings.HasPrefix(to, "n") {
			continue
		}
		raw := string(st.Raw)
		switch {
		case strings.Contains(raw, "<subject"):
			entered[to] = true
		case strings.Contains(raw, "<body>") && !strings.Contains(raw, "<delay") && !entered[to]:
			t.Fatalf("%s got a message before the end of its entering", to)
		}
	}
	if len(entered) != 20 {
		t.Errorf("%d newcomers entered, want 20", len(entered))
	}
}
