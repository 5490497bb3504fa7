package offline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// fakeStore is an in-memory Storage with failures on demand. Its
// transactions hold an account by a lock of its own, and do not roll
// back.
type fakeStore struct {
	mu       sync.Mutex
	accounts map[string]bool // "user@host" that exist
	msgs     map[string][]storage.OfflineMessage
	nextID   int64
	// Injected failures.
	storeErr, readErr, deleteErr error
	// beforeTx, if set, runs as InTx is entered.
	beforeTx func()
	// reads counts OfflineMessages outside transactions; afterRead, if
	// set, runs after each such read.
	reads     atomic.Int64
	afterRead func()

	locks map[string]*sync.Mutex // LockAccount's, by account; guarded by mu

	rmu        sync.Mutex     // guards reading and maxReading
	reading    map[string]int // reads in a transaction in progress per account
	maxReading int            // the most seen at once for one account
}

func newFakeStore(accounts ...string) *fakeStore {
	f := &fakeStore{accounts: map[string]bool{}, msgs: map[string][]storage.OfflineMessage{}, reading: map[string]int{}, locks: map[string]*sync.Mutex{}}
	for _, a := range accounts {
		f.accounts[a] = true
		f.locks[a] = new(sync.Mutex)
	}
	return f
}

func (f *fakeStore) InTx(ctx context.Context, fn func(tx storage.Tx) error) error {
	if f.beforeTx != nil {
		f.beforeTx()
	}
	tx := &fakeTx{f: f}
	defer func() {
		for _, l := range tx.held {
			l.Unlock()
		}
	}()
	return fn(tx)
}

// fakeTx is a transaction of fakeStore.
type fakeTx struct {
	storage.Tx // nil: what Deliver does not use panics
	f          *fakeStore
	held       []*sync.Mutex
}

func (t *fakeTx) LockAccount(_ context.Context, host, username string) error {
	t.f.mu.Lock()
	l := t.f.locks[username+"@"+host]
	t.f.mu.Unlock()
	if l == nil {
		return storage.ErrNotFound
	}
	l.Lock()
	t.held = append(t.held, l)
	return nil
}

func (t *fakeTx) OfflineMessages(ctx context.Context, host, username string) ([]storage.OfflineMessage, error) {
	key := username + "@" + host
	t.f.rmu.Lock()
	t.f.reading[key]++
	t.f.maxReading = max(t.f.maxReading, t.f.reading[key])
	t.f.rmu.Unlock()
	defer func() {
		t.f.rmu.Lock()
		t.f.reading[key]--
		t.f.rmu.Unlock()
	}()
	runtime.Gosched() // give a concurrent Deliver the chance to overlap
	return t.f.read(key)
}

func (t *fakeTx) DeleteOffline(ctx context.Context, host, username string, through int64) error {
	return t.f.DeleteOffline(ctx, host, username, through)
}

func (f *fakeStore) StoreOffline(_ context.Context, host, username string, raw []byte, stored time.Time, max int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := username + "@" + host
	switch {
	case f.storeErr != nil:
		return f.storeErr
	case !f.accounts[key]:
		return storage.ErrNotFound
	case max > 0 && len(f.msgs[key]) >= max:
		return storage.ErrQuota
	}
	f.nextID++
	f.msgs[key] = append(f.msgs[key], storage.OfflineMessage{ID: f.nextID, Stanza: slices.Clone(raw), Stored: stored})
	return nil
}

func (f *fakeStore) OfflineMessages(_ context.Context, host, username string) ([]storage.OfflineMessage, error) {
	f.reads.Add(1)
	if f.afterRead != nil {
		defer f.afterRead()
	}
	return f.read(username + "@" + host)
}

func (f *fakeStore) read(key string) ([]storage.OfflineMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readErr != nil {
		return nil, f.readErr
	}
	return slices.Clone(f.msgs[key]), nil
}

func (f *fakeStore) DeleteOffline(_ context.Context, host, username string, through int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleteErr != nil {
		return f.deleteErr
	}
	key := username + "@" + host
	f.msgs[key] = slices.DeleteFunc(f.msgs[key], func(m storage.OfflineMessage) bool { return m.ID <= through })
	return nil
}

func (f *fakeStore) stored(user string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, m := range f.msgs[user] {
		out = append(out, m.Stanza)
	}
	return out
}

var bob = jid.MustParse("bob@example.org")

// clock returns a Now that starts at start and advances a second per call.
func clock(start time.Time) func() time.Time {
	var mu sync.Mutex
	t := start.Add(-time.Second)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func newService(f *fakeStore) *Service {
	return &Service{
		Storage: f,
		Now:     clock(time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))),
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func parse(t testing.TB, raw string) *stanza.Stanza {
	t.Helper()
	s, err := stanza.Parse([]byte(raw), bytes.IndexByte([]byte(raw), '>')+1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore: what is stored, what is dropped silently, and what is
// bounced (XEP-0160 §2, §3; XEP-0334 §4).
func TestStore(t *testing.T) {
	quotaFull := &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable, Text: "offline message queue is full"}
	tests := []struct {
		name   string
		msg    string
		max    int
		stErr  error
		stored bool
		want   *stanza.Error
	}{
		{name: "chat with a body",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='1'><body>hi</body></message>`,
			stored: true},
		{name: "normal, no type, to a full JID",
			msg:    `<message from='alice@example.org/a' to='bob@example.org/gone' id='2'><subject>s</subject><body>hi</body></message>`,
			stored: true},
		{name: "chat state only (XEP-0160 §3)",
			msg: `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='3'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`},
		{name: "chat state with thread and a no-copy hint",
			msg: `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='4'><thread>t1</thread><paused xmlns='http://jabber.org/protocol/chatstates'/><no-copy xmlns='urn:xmpp:hints'/></message>`},
		{name: "chat state with a body",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='5'><active xmlns='http://jabber.org/protocol/chatstates'/><body>hi</body></message>`,
			stored: true},
		{name: "empty message",
			msg: `<message from='alice@example.org/a' to='bob@example.org' id='6'/>`},
		{name: "no-store hint (XEP-0334 §4.2)",
			msg: `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='7'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>`},
		{name: "no-storage, XEP-0334 0.1's spelling",
			msg: `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='8'><body>secret</body><no-storage xmlns='urn:xmpp:hints'/></message>`},
		{name: "no-permanent-store allows offline storage (XEP-0334 §4.1)",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='9'><body>otr</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`,
			stored: true},
		{name: "store hint without a body (XEP-0334 §4.4)",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='10'><active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>`,
			stored: true},
		{name: "store wins over no-store",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='11'><no-store xmlns='urn:xmpp:hints'/><store xmlns='urn:xmpp:hints'/></message>`,
			stored: true},
		{name: "a receipt is content",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' id='12'><received xmlns='urn:xmpp:receipts' id='x'/></message>`,
			stored: true},
		{name: "what a chat state contains is not looked at",
			msg:    `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='13'><gone xmlns='http://jabber.org/protocol/chatstates'><body>nested</body></gone><body>hi</body></message>`,
			stored: true},
		{name: "queue full",
			msg:  `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='14'><body>one too many</body></message>`,
			max:  1,
			want: quotaFull},
		{name: "account removed meanwhile",
			msg:   `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='15'><body>hi</body></message>`,
			stErr: storage.ErrNotFound,
			want:  &stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}},
		{name: "storage failure",
			msg:   `<message from='alice@example.org/a' to='bob@example.org' type='chat' id='16'><body>hi</body></message>`,
			stErr: errors.New("disk on fire"),
			want:  &stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeStore("bob@example.org")
			s := newService(f)
			if tt.max > 0 {
				s.Max = func(host string) int {
					if host != "example.org" {
						t.Errorf("Max asked for host %q", host)
					}
					return tt.max
				}
				for range tt.max {
					if e := s.Store(context.Background(), parse(t, `<message to='bob@example.org'><body>filler</body></message>`)); e != nil {
						t.Fatal(e)
					}
				}
			}
			f.storeErr = tt.stErr
			before := len(f.stored("bob@example.org"))
			got := s.Store(context.Background(), parse(t, tt.msg))
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("Store = %v, want nil", got)
			case tt.want != nil && (got == nil || got.Type != tt.want.Type || got.Condition != tt.want.Condition || got.Text != tt.want.Text):
				t.Fatalf("Store = %v, want %v", got, tt.want)
			}
			all := f.stored("bob@example.org")
			if stored := len(all) > before; stored != tt.stored {
				t.Fatalf("stored = %v, want %v", stored, tt.stored)
			}
			if tt.stored && string(all[len(all)-1]) != tt.msg {
				t.Errorf("stored %s, want the message as routed", all[len(all)-1])
			}
		})
	}
}

// TestDeliver: messages come out in storage order, each with a XEP-0203
// delay from the domain with the time it was stored, and are then gone.
func TestDeliver(t *testing.T) {
	f := newFakeStore("bob@example.org")
	s := newService(f)
	ctx := context.Background()
	for _, m := range []string{
		`<message from='alice@example.org/a' to='bob@example.org' type='chat' id='1'><body>first</body></message>`,
		`<message from='carol@example.org/c' to='bob@example.org/phone' id='2'><body>second</body><delay xmlns='urn:xmpp:delay' from='elsewhere.example' stamp='2020-01-01T00:00:00Z'/></message>`,
		`<message from='alice@example.org/a' to='bob@example.org' type='chat' id='3'><body>third</body></message>`,
	} {
		if e := s.Store(ctx, parse(t, m)); e != nil {
			t.Fatal(e)
		}
	}
	var got [][]byte
	if err := s.Deliver(ctx, bob, func(raw []byte) bool { got = append(got, raw); return true }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`<message from='alice@example.org/a' to='bob@example.org' type='chat' id='1'><body>first</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2025-03-04T04:06:07.890Z'>Offline Storage</delay></message>`,
		`<message from='carol@example.org/c' to='bob@example.org/phone' id='2'><body>second</body><delay xmlns='urn:xmpp:delay' from='elsewhere.example' stamp='2020-01-01T00:00:00Z'/><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2025-03-04T04:06:08.890Z'>Offline Storage</delay></message>`,
		`<message from='alice@example.org/a' to='bob@example.org' type='chat' id='3'><body>third</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2025-03-04T04:06:09.890Z'>Offline Storage</delay></message>`,
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if err := xmlcmp.Equal([]byte(want[i]), got[i], "jabber:client"); err != nil {
			t.Errorf("message %d:\n got %s\nwant %s\n%v", i, got[i], want[i], err)
		}
	}
	if left := f.stored("bob@example.org"); len(left) != 0 {
		t.Errorf("%d messages left after delivery", len(left))
	}
	got = nil
	if err := s.Deliver(ctx, bob, func(raw []byte) bool { got = append(got, raw); return true }); err != nil || len(got) != 0 {
		t.Errorf("second Deliver: %d messages, %v", len(got), err)
	}
}

// TestDeliverBlocked: a message whose sender was blocked after it was
// stored is dropped, not delivered (XEP-0191 §3.3).
func TestDeliverBlocked(t *testing.T) {
	f := newFakeStore("bob@example.org")
	s := newService(f)
	ctx := context.Background()
	for _, m := range []string{
		`<message from='alice@example.org/a' to='bob@example.org' id='1'><body>kept</body></message>`,
		`<message from='mallory@evil.example/x' to='bob@example.org' id='2'><body>dropped</body></message>`,
		`<message from="alice@example.org/a" to='bob@example.org' id='3'><body>kept too</body></message>`,
	} {
		if e := s.Store(ctx, parse(t, m)); e != nil {
			t.Fatal(e)
		}
	}
	s.Stopped = func(_ context.Context, m *stanza.Stanza) bool {
		if !m.To.Equal(bob) {
			t.Errorf("Stopped asked about a message to %s", m.To)
		}
		return m.From.Domainpart() == "evil.example"
	}
	var ids []string
	if err := s.Deliver(ctx, bob, func(raw []byte) bool { ids = append(ids, parse(t, string(raw)).ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"1", "3"}) {
		t.Errorf("delivered %v, want [1 3]", ids)
	}
	if left := f.stored("bob@example.org"); len(left) != 0 {
		t.Errorf("%d left; the blocked one is dropped", len(left))
	}
}

// TestWithDelay: the delay becomes the last child of the message as
// stored, whatever its shape.
func TestWithDelay(t *testing.T) {
	stamp := time.Date(2002, 9, 10, 23, 8, 25, 0, time.UTC)
	delay := `<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='2002-09-10T23:08:25.000Z'>Offline Storage</delay>`
	tests := []struct{ name, in, want string }{
		{"XEP-0160 §2 example",
			`<message from='romeo@montague.net/orchard' to='juliet@capulet.com'><body>O blessed, blessed night!</body></message>`,
			`<message from='romeo@montague.net/orchard' to='juliet@capulet.com'><body>O blessed, blessed night!</body>` + delay + `</message>`},
		{"self-closing",
			`<message from='romeo@montague.net/orchard' to='juliet@capulet.com' id='a/>b'/>`,
			`<message from='romeo@montague.net/orchard' to='juliet@capulet.com' id='a/>b'>` + delay + `</message>`},
		{"self-closing with a space",
			`<message to='juliet@capulet.com' />`,
			`<message to='juliet@capulet.com' >` + delay + `</message>`},
		{"empty with an end tag",
			`<message to='juliet@capulet.com'></message>`,
			`<message to='juliet@capulet.com'>` + delay + `</message>`},
		{"nested messages and CDATA",
			`<message to='juliet@capulet.com'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded><body><![CDATA[a</message>]]></body></message>`,
			`<message to='juliet@capulet.com'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded><body><![CDATA[a</message>]]></body>` + delay + `</message>`},
		{"prefixed",
			`<c:message xmlns:c='jabber:client' to='juliet@capulet.com'/>`,
			`<c:message xmlns:c='jabber:client' to='juliet@capulet.com'>` + delay + `</c:message>`},
		{"trailing whitespace",
			"<message to='juliet@capulet.com'><body>x</body></message>\n",
			`<message to='juliet@capulet.com'><body>x</body>` + delay + `</message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withDelay([]byte(tt.in), "capulet.com", stamp)
			if string(got) != tt.want {
				t.Errorf("withDelay\n got %s\nwant %s", got, tt.want)
			}
			if err := xmlcmp.Equal([]byte(tt.want), got, "jabber:client"); err != nil {
				t.Errorf("not well-formed or different: %v", err)
			}
		})
	}
}

// TestDeliverStops: when the session cannot take a message, delivery
// stops and that message and the later ones stay stored, in order.
func TestDeliverStops(t *testing.T) {
	f := newFakeStore("bob@example.org")
	s := newService(f)
	ctx := context.Background()
	for _, body := range []string{"1", "2", "3"} {
		if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='`+body+`'><body>`+body+`</body></message>`)); e != nil {
			t.Fatal(e)
		}
	}
	var ids []string
	take := func(n int) func([]byte) bool {
		return func(raw []byte) bool {
			if n == 0 {
				return false
			}
			n--
			ids = append(ids, parse(t, string(raw)).ID)
			return true
		}
	}
	for _, step := range []struct {
		take int
		want []string
		left int
	}{
		{take: 0, want: nil, left: 3},
		{take: 1, want: []string{"1"}, left: 2},
		{take: 5, want: []string{"1", "2", "3"}, left: 0},
	} {
		if err := s.Deliver(ctx, bob, take(step.take)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, step.want) {
			t.Errorf("after taking %d: delivered %v, want %v", step.take, ids, step.want)
		}
		if left := len(f.stored("bob@example.org")); left != step.left {
			t.Errorf("after taking %d: %d left, want %d", step.take, left, step.left)
		}
	}
}

// TestDeliverErrors: a read failure delivers nothing; a delete failure is
// reported and the messages stay, to be delivered again rather than lost.
func TestDeliverErrors(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore("bob@example.org")
	s := newService(f)
	if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='1'><body>x</body></message>`)); e != nil {
		t.Fatal(e)
	}
	n := 0
	count := func([]byte) bool { n++; return true }

	f.readErr = errors.New("read failed")
	if err := s.Deliver(ctx, bob, count); !errors.Is(err, f.readErr) || n != 0 {
		t.Errorf("read failure: err %v, %d delivered", err, n)
	}
	f.readErr = nil

	f.deleteErr = errors.New("delete failed")
	if err := s.Deliver(ctx, bob, count); !errors.Is(err, f.deleteErr) || n != 1 {
		t.Errorf("delete failure: err %v, %d delivered", err, n)
	}
	if left := len(f.stored("bob@example.org")); left != 1 {
		t.Errorf("after a delete failure %d left, want 1", left)
	}
}

// TestDeliverConcurrent: resources of one account coming online together
// get each message once between them, one Deliver at a time.
func TestDeliverConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore("bob@example.org", "carol@example.org")
	s := newService(f)
	const perUser = 50
	for i := range perUser {
		for _, u := range []string{"bob@example.org", "carol@example.org"} {
			if e := s.Store(ctx, parse(t, `<message to='`+u+`'><body>`+string(rune('a'+i%26))+`</body></message>`)); e != nil {
				t.Fatal(e)
			}
		}
	}
	var delivered [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			u := i % 2
			user := []jid.JID{bob, jid.MustParse("carol@example.org")}[u]
			if err := s.Deliver(ctx, user, func([]byte) bool { delivered[u].Add(1); return true }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for u, n := range []int32{delivered[0].Load(), delivered[1].Load()} {
		if n != perUser {
			t.Errorf("user %d: %d messages delivered, want %d (each exactly once)", u, n, perUser)
		}
	}
	if f.maxReading != 1 {
		t.Errorf("%d reads of one account's queue at once in transactions, want 1", f.maxReading)
	}
}

// TestRegister: the msgoffline feature is advertised (XEP-0160 §4).
func TestRegister(t *testing.T) {
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	(&Service{}).Register(m)
	if !slices.Contains(m.Features(), "msgoffline") {
		t.Errorf("features %v lack msgoffline", m.Features())
	}
}

// TestDeliverStoredMeanwhile: a message stored after Deliver's first read
// (whose sender was not asked about) stays for the next delivery; one
// delivered meanwhile by another resource is not given again.
func TestDeliverStoredMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore("bob@example.org")
	s := newService(f)
	for _, id := range []string{"1", "2"} {
		if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='`+id+`'><body>x</body></message>`)); e != nil {
			t.Fatal(e)
		}
	}
	var ids []string
	take := func(raw []byte) bool { ids = append(ids, parse(t, string(raw)).ID); return true }
	f.beforeTx = func() {
		f.beforeTx = nil
		// Another resource takes message 1 first; message 3 arrives.
		if err := f.DeleteOffline(ctx, "example.org", "bob", 1); err != nil {
			t.Fatal(err)
		}
		if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='3'><body>x</body></message>`)); e != nil {
			t.Fatal(e)
		}
	}
	if err := s.Deliver(ctx, bob, take); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"2"}) {
		t.Errorf("delivered %v, want [2]", ids)
	}
	if err := s.Deliver(ctx, bob, take); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"2", "3"}) || len(f.stored("bob@example.org")) != 0 {
		t.Errorf("then delivered %v, %d left; want [2 3], none", ids, len(f.stored("bob@example.org")))
	}
}

// TestDeliverAccountRemoved: an account removed between the first read
// and the transaction gets nothing, and no error.
func TestDeliverAccountRemoved(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore("bob@example.org")
	s := newService(f)
	if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='1'><body>x</body></message>`)); e != nil {
		t.Fatal(e)
	}
	f.beforeTx = func() {
		f.mu.Lock()
		delete(f.locks, "bob@example.org")
		f.mu.Unlock()
	}
	n := 0
	if err := s.Deliver(ctx, bob, func([]byte) bool { n++; return true }); err != nil || n != 0 {
		t.Errorf("Deliver: %d delivered, %v; want none, nil", n, err)
	}
}

// TestDeliverKnownEmpty: an account found with no offline message is not
// read again at its next available presence (XEP-0160 §2) until a
// message is stored for it; a message stored while it was offline is
// still delivered, and one whose store ends during the read that found
// none is not lost to the next login.
func TestDeliverKnownEmpty(t *testing.T) {
	ctx := context.Background()
	f := newFakeStore("bob@example.org")
	s := newService(f)
	var ids []string
	take := func(raw []byte) bool { ids = append(ids, parse(t, string(raw)).ID); return true }
	login := func(wantReads int64, want ...string) {
		t.Helper()
		ids = nil
		before := f.reads.Load()
		if err := s.Deliver(ctx, bob, take); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("delivered %v, want %v", ids, want)
		}
		if n := f.reads.Load() - before; n != wantReads {
			t.Errorf("%d reads, want %d", n, wantReads)
		}
	}
	login(1) // unknown at start: read, none
	login(0) // known empty
	store := func(id string) {
		t.Helper()
		if e := s.Store(ctx, parse(t, `<message to='bob@example.org' id='`+id+`'><body>x</body></message>`)); e != nil {
			t.Fatal(e)
		}
	}
	store("1") // while bob is offline
	login(1, "1")
	login(0) // everything handed over: empty again

	// A store that ends after the read that found none, before Deliver
	// decides: not marked, so the next login reads and delivers it.
	s.empty.unmark("bob@example.org")
	f.afterRead = func() { f.afterRead = nil; store("2") }
	login(1)
	login(1, "2")
	login(0)

	// A message that stays (the session's queue is full) keeps the
	// account unknown.
	store("4")
	ids = nil
	if err := s.Deliver(ctx, bob, func([]byte) bool { return false }); err != nil {
		t.Fatal(err)
	}
	login(1, "4")

	// The account's removal forgets it.
	s.AccountDeleted(bob)
	login(1)
}

// TestEmptySetBounded: at most max accounts are remembered, and a read
// that a store ended during marks nothing.
func TestEmptySetBounded(t *testing.T) {
	e := &emptySet{max: 3}
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		_, v := e.known(u)
		e.mark(u, v)
	}
	if len(e.m) != 3 {
		t.Errorf("%d remembered, want 3", len(e.m))
	}
	if ok, _ := e.known("e"); !ok {
		t.Error("the last marked is not remembered")
	}
	_, v := e.known("x")
	e.unmark("y") // a store for anyone ended meanwhile
	e.mark("x", v)
	if ok, _ := e.known("x"); ok {
		t.Error("marked from a read a store ended during")
	}
}
