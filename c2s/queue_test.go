package c2s

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/router"
)

// testQueue is a queue whose pushes put a token in ready, as a writer
// would be woken.
func testQueue(maxItems, maxBytes int) (*queue, chan struct{}) {
	ready := make(chan struct{}, 1)
	return newQueue(maxItems, maxBytes, func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}), ready
}

func TestQueue(t *testing.T) {
	q, ready := testQueue(3, 1<<20)
	for i := range 3 {
		if _, ok := q.push([]byte{byte(i)}); !ok {
			t.Fatalf("push %d refused", i)
		}
	}
	if r, ok := q.push([]byte{3}); ok || r != CloseQueueItems {
		t.Fatalf("push beyond max items: %v, %v", r, ok)
	}
	<-ready
	got := q.take(nil)
	if len(got) != 3 || got[0].b[0] != 0 || got[2].b[0] != 2 {
		t.Fatalf("take = %v", got)
	}
	if _, ok := q.push([]byte{4}); !ok {
		t.Fatal("push after take refused")
	}
}

// TestQueueConcurrent: with several pushers and one taker, every item
// arrives exactly once and in order per pusher, and no wake-up is lost.
func TestQueueConcurrent(t *testing.T) {
	const pushers, each = 4, 2000
	q, ready := testQueue(pushers*each, 1<<30)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				if _, ok := q.push([]byte{byte(p), byte(i >> 8), byte(i)}); !ok {
					t.Errorf("push refused")
				}
			}
		})
	}
	next := make([]int, pushers)
	var buf []item
	for n := 0; n < pushers*each; {
		<-ready
		buf = q.take(buf)
		for _, it := range buf {
			b := it.b
			p, i := int(b[0]), int(b[1])<<8|int(b[2])
			if i != next[p] {
				t.Fatalf("pusher %d: got %d, want %d", p, i, next[p])
			}
			next[p]++
		}
		n += len(buf)
	}
	wg.Wait()
}

// TestQueueBytes: the queue is bounded in bytes too; what is taken frees
// its bytes.
func TestQueueBytes(t *testing.T) {
	q := newQueue(100, 10, func() {})
	for _, n := range []int{4, 4, 2} {
		if _, ok := q.push(make([]byte, n)); !ok {
			t.Fatalf("push of %d bytes refused", n)
		}
	}
	if r, ok := q.push([]byte{1}); ok || r != CloseQueueBytes {
		t.Fatalf("push beyond max bytes: %v, %v", r, ok)
	}
	q.take(nil)
	if _, ok := q.push(make([]byte, 10)); !ok {
		t.Fatal("push after take refused")
	}
}

// TestDeliverCountsCloses: a session whose queue overflows is ended, and
// the reason is counted.
func TestDeliverCountsCloses(t *testing.T) {
	srv := NewServer(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, router.New(nil, nil, nil, nil), nil)
	s := newSession(srv, jid.MustParse("alice@example.org/phone"))
	s.out = newQueue(100, 10, func() {})
	if !s.Deliver(make([]byte, 8)) {
		t.Fatal("first stanza refused")
	}
	if s.Deliver(make([]byte, 8)) {
		t.Fatal("a stanza beyond the bytes bound queued")
	}
	if n := srv.Closed(CloseQueueBytes); n != 1 {
		t.Fatalf("Closed(queue-bytes) = %d, want 1", n)
	}
	if n := srv.Closed(CloseQueueItems); n != 0 {
		t.Fatalf("Closed(queue-items) = %d, want 0", n)
	}
}

// TestQueueNonzas: a newer <a/> replaces one not written yet, so that a
// client flooding <r/> without reading costs one element; other nonzas
// are refused beyond twice the stanza bound.
func TestQueueNonzas(t *testing.T) {
	q := newQueue(2, 1<<20, func() {})
	for _, h := range []string{"1", "2", "3"} {
		if !q.pushNonza([]byte("<a h='"+h+"'/>"), ackItem) {
			t.Fatalf("ack %s refused", h)
		}
	}
	got := q.take(nil)
	if len(got) != 1 || string(got[0].b) != "<a h='3'/>" {
		t.Fatalf("took %q, want the last ack alone", got)
	}
	if !q.pushNonza([]byte("<a h='4'/>"), ackItem) || len(q.take(nil)) != 1 {
		t.Fatal("an ack after a take was not queued")
	}
	for i := range 4 {
		if !q.pushNonza([]byte("<failed/>"), nonzaItem) {
			t.Fatalf("nonza %d refused", i)
		}
	}
	if q.pushNonza([]byte("<failed/>"), nonzaItem) {
		t.Fatal("a nonza beyond twice the bound was queued")
	}
}
