package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	fail    int             // AppendArchive calls left to fail
	block   chan struct{}   // if not nil, AppendArchive waits for it
}

func (f *fakeStore) AppendArchive(_ context.Context, e []storage.ArchiveEntry) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("database down")
	}
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
	s.ids.now = s.now
	s.writer = newWriter(store, s.log)
	s.writer.retries = []time.Duration{0}
	t.Cleanup(func() { s.writer.stop(context.Background()) })
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
	if err := s.writer.flush(ctx); err != nil {
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
		if err := s.writer.flush(ctx); err != nil {
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

func TestParseQuery(t *testing.T) {
	form := func(fields string) string {
		return `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + fields + `</x></query>`
	}
	for _, tt := range []struct {
		ns, query string
		err       string // condition, "" for none
		check     func(r request) bool
	}{
		{NS2, form(`<field var='with'><value>romeo@example.net/orchard</value></field>`), "", func(r request) bool {
			return r.q.With == "romeo@example.net" && r.q.WithResource == "orchard" && r.max == defaultPageSize
		}},
		{NS2, form(`<field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='end'><value>2010-07-07T13:23:54.123+02:00</value></field>`), "", func(r request) bool {
			return r.q.Start.Equal(time.Date(2010, 6, 7, 0, 0, 0, 0, time.UTC)) && r.q.End.Equal(time.Date(2010, 7, 7, 11, 23, 54, 123e6, time.UTC))
		}},
		{NS2, form(`<field var='after-id'><value>17</value></field><field var='ids'><value>5</value><value>x</value></field>`), "", func(r request) bool {
			return r.q.AfterID == 17 && slices.Equal(r.q.IDs, []int64{5})
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1000000</max><before/></set><flip-page/></query>`, "", func(r request) bool {
			return r.max == 250 && r.q.Last && r.q.BeforeID == 0 && r.flip
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>9</after><before>20</before></set></query>`, "", func(r request) bool {
			return r.max == 10 && r.q.AfterID == 9 && r.q.BeforeID == 20 && r.q.Last
		}},
		{NS0, `<query xmlns='urn:xmpp:mam:0'><with>romeo@example.net</with><start>2010-06-07T00:00:00Z</start></query>`, "", func(r request) bool {
			return r.q.With == "romeo@example.net" && !r.q.Start.IsZero()
		}},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>`, stanza.BadRequest, nil},
		{NS2, form(`<field var='start'><value>yesterday</value></field>`), stanza.BadRequest, nil},
		{NS2, form(`<field var='with'><value>@@</value></field>`), stanza.BadRequest, nil},
		{NS2, form(`<field var='withtext'><value>hi</value></field>`), stanza.BadRequest, nil},
		{NS1, `<query xmlns='urn:xmpp:mam:1'><x xmlns='jabber:x:data'><field var='after-id'><value>1</value></field></x></query>`, stanza.BadRequest, nil},
		{NS2, form(`<field var='after-id'><value>nope</value></field>`), stanza.ItemNotFound, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query>`, stanza.ItemNotFound, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>`, stanza.BadRequest, nil},
		{NS2, `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set></query>`, stanza.FeatureNotImplemented, nil},
	} {
		var el queryElement
		if err := xml.Unmarshal([]byte(tt.query), &el); err != nil {
			t.Fatal(err)
		}
		r, err := parseQuery(tt.ns, &el, 250)
		var se *stanza.Error
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("parseQuery(%s): %v", tt.query, err)
		case tt.err != "" && (!errors.As(err, &se) || se.Condition != tt.err):
			t.Errorf("parseQuery(%s): %v, want %s", tt.query, err, tt.err)
		case tt.check != nil && !tt.check(r):
			t.Errorf("parseQuery(%s) = %+v", tt.query, r)
		}
	}
}

// TestWriter checks group commit, flush, a retried failure and stop.
func TestWriter(t *testing.T) {
	store := &fakeStore{block: make(chan struct{}), fail: 1}
	w := newWriter(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.retries = []time.Duration{0}
	e := func(id int64) storage.ArchiveEntry {
		return storage.ArchiveEntry{Host: "example.org", Username: "u", ArchivedMessage: storage.ArchivedMessage{ID: id}}
	}
	w.add(e(1))
	// The writer is held in AppendArchive with the first; these wait and
	// go in one batch.
	w.add(e(2))
	w.add(e(3))
	flushed := make(chan error)
	go func() { flushed <- w.flush(context.Background()) }()
	close(store.block)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, x := range store.appended() {
		ids = append(ids, x.ID)
	}
	if !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Errorf("written %v, want [1 2 3]", ids)
	}
	w.add(e(4))
	if err := w.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.appended()); n != 4 {
		t.Errorf("after stop, %d written, want 4", n)
	}
}

func TestResultMessage(t *testing.T) {
	m := storage.ArchivedMessage{ID: 1735787045123456, Stanza: []byte(`<message from='a@example.org/x' to='b@example.org'><body>&lt;hi</body></message>`)}
	got := resultMessage(NS2, stringer("b@example.org/y"), "b@example.org", "q1", m)
	want := `<message to='b@example.org/y' from='b@example.org'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='1735787045123456'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-02T03:04:05.123456Z'/><message xmlns='jabber:client' from='a@example.org/x' to='b@example.org'><body>&lt;hi</body></message></forwarded></result></message>`
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("resultMessage = %s\nwant %s", got, want)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

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
	s.writer.flush(ctx)
}
