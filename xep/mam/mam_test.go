package mam

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/archive"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// fakeStore keeps appended entries in memory.
type fakeStore struct {
	mu      sync.Mutex
	entries []storage.ArchiveEntry
	docs    map[string][]byte
	roster  map[string]bool // "user contact"
}

func (f *fakeStore) AppendArchive(_ context.Context, e []storage.ArchiveEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, e...)
	return nil
}

func (f *fakeStore) appended() []storage.ArchiveEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *fakeStore) QueryArchive(context.Context, string, string, storage.ArchiveQuery) (storage.ArchivePage, error) {
	return storage.ArchivePage{}, nil
}
func (f *fakeStore) PurgeArchive(context.Context, string, time.Time) (int64, error) { return 0, nil }
func (f *fakeStore) Document(_ context.Context, host, user, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.docs[user+"@"+host+" "+key]; ok {
		return d, nil
	}
	return nil, storage.ErrNotFound
}
func (f *fakeStore) PutDocument(_ context.Context, host, user, key string, doc []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.docs == nil {
		f.docs = map[string][]byte{}
	}
	f.docs[user+"@"+host+" "+key] = doc
	return nil
}
func (f *fakeStore) DeleteDocument(context.Context, string, string, string) error { return nil }
func (f *fakeStore) RosterItem(_ context.Context, host, user, contact string) (storage.RosterItem, error) {
	if f.roster[user+" "+contact] {
		return storage.RosterItem{Contact: contact}, nil
	}
	return storage.RosterItem{}, storage.ErrNotFound
}

func newTestService(t testing.TB, store *fakeStore, def string) *service {
	opts := DefaultOptions()
	opts.Default = def
	s := &service{
		router:  router.New([]string{"example.org"}, nil, nil, nil),
		store:   store,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		options: func() *Options { return opts },
		limits:  func() (int, int) { return 1000, 4 << 20 },
		now:     func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
	s.ids.Now = s.now
	s.writer = archive.NewWriter(store.AppendArchive, s.log)
	s.writer.Retries = []time.Duration{0}
	t.Cleanup(func() { s.writer.Stop(context.Background()) })
	return s
}

func parse(t testing.TB, raw string) *stanza.Stanza {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestArchived(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want bool
	}{
		{`<message type='chat'><body>hi</body></message>`, true},
		{`<message><body>hi</body></message>`, true},
		{`<message type='normal'><body>hi</body></message>`, true},
		{`<message type='odd'><body>hi</body></message>`, true},
		{`<message type='groupchat'><body>hi</body></message>`, false},
		{`<message type='headline'><body>hi</body></message>`, false},
		{`<message type='error'><body>hi</body></message>`, false},
		{`<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, false},
		{`<message type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/><store xmlns='urn:xmpp:hints'/></message>`, true},
		{`<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`, false},
		{`<message type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message><body>hi</body></message></forwarded></received></message>`, false},
		{`<message type='chat'><x:body xmlns:x='urn:other'>hi</x:body></message>`, false},
	} {
		if got := inspect([]byte(tt.msg)).archived(parse(t, tt.msg).Type); got != tt.want {
			t.Errorf("archived(%s) = %v, want %v", tt.msg, got, tt.want)
		}
	}
}

func TestStanzaIDs(t *testing.T) {
	in := `<message to='bob@example.org'><body>a</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.net' id='r1'/></message>`
	got := string(withoutStanzaIDs([]byte(in), "bob@example.org"))
	want := `<message to='bob@example.org'><body>a</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.net' id='r1'/></message>`
	if got != want {
		t.Errorf("withoutStanzaIDs = %s, want %s", got, want)
	}
	if out := withoutStanzaIDs([]byte(want), "bob@example.org"); &out[0] != &[]byte(want)[0] && string(out) != want {
		t.Errorf("withoutStanzaIDs changed %s", want)
	}
	got = string(withStanzaID([]byte(`<message><body>a</body></message>`), "o'b@example.org", 42))
	want = `<message><body>a</body><stanza-id xmlns='urn:xmpp:sid:0' by='o&apos;b@example.org' id='42'/></message>`
	if got != want {
		t.Errorf("withStanzaID = %s, want %s", got, want)
	}
}

// TestRouting checks what the Routing handler archives and stamps.
func TestRouting(t *testing.T) {
	store := &fakeStore{}
	s := newTestService(t, store, modeAlways)
	ctx := t.Context()
	route := func(raw string) string {
		e := &router.Routing{Stanza: parse(t, raw)}
		if s.routing(ctx, e) {
			t.Fatalf("routing stopped %s", raw)
		}
		return string(e.Stanza.Raw)
	}
	// Incoming for a local account: the forged stanza-id goes, ours comes.
	got := route(`<message from='romeo@example.net/orchard' to='juliet@example.org/balcony' type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.org' id='forged'/></message>`)
	want := `<message from='romeo@example.net/orchard' to='juliet@example.org/balcony' type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.org' id='1735787045000000'/></message>`
	if got != want {
		t.Errorf("routed %s\nwant %s", got, want)
	}
	// Not archived, but the forged id still goes.
	got = route(`<message from='romeo@example.net' to='juliet@example.org' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.org' id='forged'/></message>`)
	if strings.Contains(got, "stanza-id") {
		t.Errorf("routed %s, want no stanza-id", got)
	}
	// For another server's user: nothing to do here.
	raw := `<message from='juliet@example.org/balcony' to='romeo@example.net' type='chat'><body>hi</body></message>`
	if got := route(raw); got != raw {
		t.Errorf("routed %s, want it unchanged", got)
	}
	// To oneself: once, as outgoing.
	route(`<message from='juliet@example.org/balcony' to='juliet@example.org' type='chat'><body>note</body></message>`)
	if err := s.writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	e := store.appended()
	if len(e) != 2 {
		t.Fatalf("archived %d messages, want 2: %+v", len(e), e)
	}
	if e[0].Username != "juliet" || e[0].Host != "example.org" || e[0].With != "romeo@example.net" || e[0].WithResource != "orchard" ||
		e[0].Direction != storage.Incoming || e[0].ID != 1735787045000000 || string(e[0].Stanza) != want {
		t.Errorf("first entry %+v", e[0])
	}
	if e[1].With != "juliet@example.org" || e[1].Direction != storage.Outgoing || e[1].ID != 1735787045000001 {
		t.Errorf("second entry %+v", e[1])
	}
}

// TestPrefs checks that preferences decide what is archived.
func TestPrefs(t *testing.T) {
	store := &fakeStore{roster: map[string]bool{"juliet romeo@example.net": true}}
	s := newTestService(t, store, modeRoster)
	ctx := t.Context()
	archived := func(from string) bool {
		n := len(store.appended())
		s.routing(ctx, &router.Routing{Stanza: parse(t, `<message from='`+from+`' to='juliet@example.org' type='chat'><body>hi</body></message>`)})
		if err := s.writer.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return len(store.appended()) > n
	}
	if !archived("romeo@example.net/a") || archived("tybalt@example.net/a") {
		t.Errorf("roster default: a contact's not archived, or a stranger's archived")
	}
	p, err := parsePrefs([]byte(`<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>tybalt@example.net</jid><jid>romeo@example.net/secret</jid></never></prefs>`))
	if err != nil {
		t.Fatal(err)
	}
	s.prefs.put("juliet@example.org", p)
	if archived("tybalt@example.net/a") || archived("romeo@example.net/secret") || !archived("romeo@example.net/a") || !archived("nurse@example.net") {
		t.Errorf("never list not honoured")
	}
	for _, bad := range []string{`<prefs xmlns='urn:xmpp:mam:2'/>`, `<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>`, `<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>@@</jid></always></prefs>`} {
		if _, err := parsePrefs([]byte(bad)); err == nil {
			t.Errorf("parsePrefs(%s) succeeded", bad)
		}
	}
}

// BenchmarkRouting is the cost archiving adds to each message routed to a
// local account: inspection, preferences (cached), stanza-id, queueing.
func BenchmarkRouting(b *testing.B) {
	store := &fakeStore{}
	s := newTestService(b, store, modeAlways)
	st := parse(b, `<message from='romeo@example.net/orchard' to='juliet@example.org/balcony' type='chat' id='m1'><body>Wherefore art thou Romeo?</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='de305d54'/></message>`)
	ctx := b.Context()
	e := &router.Routing{}
	b.ReportAllocs()
	for b.Loop() {
		*e = router.Routing{Stanza: st}
		s.routing(ctx, e)
		if e.Stanza == st {
			b.Fatal("not stamped")
		}
	}
	b.StopTimer()
	s.writer.Flush(ctx)
}
