package event

import (
	"context"
	"slices"
	"sync"
	"testing"
)

type ping struct{ got []string }
type pong struct{ n int }

func TestOrderAndStop(t *testing.T) {
	var b Bus
	record := func(name string, stop bool) func(context.Context, *ping) bool {
		return func(_ context.Context, e *ping) bool {
			e.got = append(e.got, name)
			return stop
		}
	}
	On(&b, Normal, "b", record("b", false))
	On(&b, First, "a", record("a", false))
	On(&b, Normal, "c", record("c", false))
	On(&b, Last, "d", record("d", true))
	On(&b, Last-1, "e", record("e", false))
	On(&b, Normal, "other", func(_ context.Context, e *pong) bool { e.n++; return false })

	e := &ping{}
	if !Fire(context.Background(), &b, e) {
		t.Error("d stopped the event, Fire says not")
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(e.got, want) {
		t.Errorf("ran %v, want %v", e.got, want)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(Handlers[ping](&b), want) {
		t.Errorf("Handlers = %v", Handlers[ping](&b))
	}
	p := &pong{}
	if Fire(context.Background(), &b, p) || p.n != 1 {
		t.Errorf("pong: stopped or ran %d times", p.n)
	}
	if Fire(context.Background(), nil, p) {
		t.Error("a nil bus stopped an event")
	}
	type none struct{}
	if Fire(context.Background(), &b, &none{}) {
		t.Error("an event without handlers was stopped")
	}
}

// TestNoLockHeld: a handler may register handlers and fire events, also
// while other goroutines fire.
func TestNoLockHeld(t *testing.T) {
	var b Bus
	On(&b, Normal, "nested", func(ctx context.Context, e *ping) bool {
		Fire(ctx, &b, &pong{})
		On(&b, Normal, "late", func(context.Context, *pong) bool { return false })
		return false
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				Fire(context.Background(), &b, &ping{})
			}
		})
	}
	wg.Wait()
	if n := len(Handlers[pong](&b)); n != 800 {
		t.Errorf("%d late handlers, want 800", n)
	}
}

func BenchmarkFire(b *testing.B) {
	var bus Bus
	for range 3 {
		On(&bus, Normal, "h", func(_ context.Context, e *pong) bool { e.n++; return false })
	}
	e := &pong{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		Fire(ctx, &bus, e)
	}
}
