package offline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/dbtest"
	"github.com/starling-xmpp/starling/storage"
)

// backends are the real stores the tests and benchmarks run on.
var backends = dbtest.Backends

// node is one server's offline service over st.
func node(st storage.Store) *Service {
	return &Service{Storage: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func addAccounts(t testing.TB, st storage.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := st.CreateAccount(context.Background(), storage.Account{Host: "example.org", Username: n, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkDeliver measures offline delivery at an available presence:
// Empty with nothing stored (most logins), One with one message stored
// just before (stored, read, handed over, deleted).
func BenchmarkDeliver(b *testing.B) {
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			st := be.Open(b)()
			addAccounts(b, st, "bob")
			s := node(st)
			ctx := context.Background()
			take := func([]byte) bool { return true }
			b.Run("Empty", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Deliver(ctx, bob, take); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("One", func(b *testing.B) {
				b.ReportAllocs()
				msg := parse(b, `<message from='alice@example.org/a' to='bob@example.org' type='chat'><body>hello</body></message>`)
				for b.Loop() {
					if e := s.Store(ctx, msg); e != nil {
						b.Fatal(e)
					}
					n := 0
					if err := s.Deliver(ctx, bob, func([]byte) bool { n++; return true }); err != nil || n != 1 {
						b.Fatal(n, err)
					}
				}
			})
		})
	}
}

// signalling wraps a node's Storage: entering is called as InTx is
// entered.
type signalling struct {
	storage.Store
	entering func()
}

func (s *signalling) InTx(ctx context.Context, f func(tx storage.Tx) error) error {
	s.entering()
	return s.Store.InTx(ctx, f)
}

// TestDeliverTwoNodes: two offline services ("nodes", each with a Store
// of its own on one database) deliver to one account at once; the
// database serialises them, and each message is given exactly once.
func TestDeliverTwoNodes(t *testing.T) {
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			open := be.Open(t)
			stA, stB := open(), open()
			addAccounts(t, stA, "bob")
			ctx := context.Background()
			const messages = 20
			store := func() {
				for i := range messages {
					msg := parse(t, fmt.Sprintf(`<message from='alice@example.org/a' to='bob@example.org' id='%d'><body>x</body></message>`, i))
					if e := node(stA).Store(ctx, msg); e != nil {
						t.Fatal(e)
					}
				}
			}
			var (
				mu    sync.Mutex
				given = map[string]int{}
			)
			count := func(raw []byte) bool {
				mu.Lock()
				given[parse(t, string(raw)).ID]++
				mu.Unlock()
				return true
			}
			check := func() {
				t.Helper()
				if len(given) != messages {
					t.Errorf("%d of %d messages given", len(given), messages)
				}
				for id, n := range given {
					if n != 1 {
						t.Errorf("message %s given %d times", id, n)
					}
				}
				if left, err := stB.OfflineMessages(ctx, "example.org", "bob"); len(left) != 0 || err != nil {
					t.Errorf("%d left (%v), want none", len(left), err)
				}
				clear(given)
			}

			// Node a, in its transaction, hands the messages over only
			// once node b has read them too and asked for bob.
			store()
			entered := make(chan struct{})
			b := node(&signalling{Store: stB, entering: sync.OnceFunc(func() { close(entered) })})
			a := node(stA)
			var wg sync.WaitGroup
			first := true
			errs := make(chan error, 2)
			wg.Go(func() {
				errs <- a.Deliver(ctx, bob, func(raw []byte) bool {
					if first {
						first = false
						wg.Go(func() { errs <- b.Deliver(ctx, bob, count) })
						<-entered
					}
					return count(raw)
				})
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			check()

			// Many at once, on both nodes.
			store()
			a, b = node(stA), node(stB)
			start := make(chan struct{})
			for i := range 8 {
				s := []*Service{a, b}[i%2]
				wg.Go(func() {
					<-start
					if err := s.Deliver(ctx, bob, count); err != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			check()
		})
	}
}
