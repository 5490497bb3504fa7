package last

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/dbtest"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// TestWriterAnswersBeforeFlush: the end of juliet's session is answered
// (XEP-0012 §3) before it is written, from the Writer's memory, written
// at Stop, and written through after it.
func TestWriterAnswersBeforeFlush(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := start.Add(time.Hour)
	store := &activity{last: map[string]record{}}
	w := NewWriter(store, time.Hour, nil)
	svc := &Service{Store: store, Start: start, Now: func() time.Time { return now }, Writer: w,
		Subscribed: func(context.Context, jid.JID, jid.JID) bool { return true }}
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	m.SetAccountExists(func(context.Context, jid.JID) bool { return true })
	svc.Register(m)
	ask := func() string {
		t.Helper()
		in := `<iq from='romeo@example.org/orchard' to='juliet@example.org' type='get' id='1'><query xmlns='jabber:iq:last'/></iq>`
		s, err := stanza.Parse([]byte(in), strings.IndexByte(in, '>')+1)
		if err != nil {
			t.Fatal(err)
		}
		out.replies = nil
		m.HandleServer(context.Background(), s)
		if len(out.replies) != 1 {
			t.Fatalf("%d replies", len(out.replies))
		}
		return string(out.replies[0])
	}
	ctx := context.Background()
	juliet := jid.MustParse("juliet@example.org")
	if err := svc.SessionEnded(ctx, juliet, "Heading Home", now.Add(-903*time.Second)); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	_, written := store.last["juliet@example.org"]
	store.mu.Unlock()
	if written {
		t.Fatal("written at once; want it waiting for the interval")
	}
	if got := ask(); !strings.Contains(got, "seconds='903'>Heading Home<") {
		t.Errorf("before the flush: %s, want 903 seconds and the status", got)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	r := store.last["juliet@example.org"]
	store.mu.Unlock()
	if !r.at.Equal(now.Add(-903*time.Second)) || r.status != "Heading Home" {
		t.Errorf("after Stop, stored %+v", r)
	}
	if got := ask(); !strings.Contains(got, "seconds='903'>Heading Home<") {
		t.Errorf("after the flush: %s", got)
	}
	// After Stop, written through.
	if err := svc.SessionEnded(ctx, juliet, "", now.Add(-5*time.Second)); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	r = store.last["juliet@example.org"]
	store.mu.Unlock()
	if !r.at.Equal(now.Add(-5*time.Second)) || r.status != "" {
		t.Errorf("after Stop, a Set stored %+v", r)
	}
}

// txCounting counts a Store's transactions and its writes outside them.
type txCounting struct {
	storage.Store
	txs, sets atomic.Int64
}

func (c *txCounting) InTx(ctx context.Context, f func(tx storage.Tx) error) error {
	c.txs.Add(1)
	return c.Store.InTx(ctx, f)
}

func (c *txCounting) SetLastActivity(ctx context.Context, host, username string, at time.Time, status string) error {
	c.sets.Add(1)
	return c.Store.SetLastActivity(ctx, host, username, at, status)
}

// TestWriterBatches: the times waiting are written in one transaction,
// the latest per account; an account removed meanwhile makes the Writer
// write them one by one, the others still written.
func TestWriterBatches(t *testing.T) {
	for _, be := range dbtest.Backends {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)()
			ctx := context.Background()
			for _, n := range []string{"a", "b", "c"} {
				if err := st.CreateAccount(ctx, storage.Account{Host: "example.org", Username: n, Created: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			c := &txCounting{Store: st}
			at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			check := func(name string, want time.Time, status string) {
				t.Helper()
				got, s, err := st.LastActivity(ctx, "example.org", name)
				if err != nil || !got.Equal(want) || s != status {
					t.Errorf("%s: %v %q %v; want %v %q", name, got, s, err, want, status)
				}
			}

			w := NewWriter(c, time.Hour, nil)
			for i, n := range []string{"a", "b", "c", "a"} {
				if err := w.Set(ctx, jid.MustParse(n+"@example.org"), at.Add(time.Duration(i)*time.Second), n); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if c.txs.Load() != 1 || c.sets.Load() != 0 {
				t.Errorf("%d transactions, %d writes outside; want 1, 0", c.txs.Load(), c.sets.Load())
			}
			check("a", at.Add(3*time.Second), "a")
			check("b", at.Add(time.Second), "b")
			check("c", at.Add(2*time.Second), "c")

			w = NewWriter(c, time.Hour, nil)
			for _, n := range []string{"a", "gone", "c"} {
				if err := w.Set(ctx, jid.MustParse(n+"@example.org"), at.Add(time.Minute), "later"); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			check("a", at.Add(time.Minute), "later")
			check("c", at.Add(time.Minute), "later")
			if _, _, err := w.Get(ctx, jid.MustParse("gone@example.org")); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the removed account: %v, want ErrNotFound (not kept waiting)", err)
			}
		})
	}
}
