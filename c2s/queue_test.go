package c2s

import (
	"sync"
	"testing"
)

func TestQueue(t *testing.T) {
	q := newQueue(3)
	for i := range 3 {
		if !q.push([]byte{byte(i)}) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.push([]byte{3}) {
		t.Fatal("push beyond max accepted")
	}
	<-q.ready
	got := q.take(nil)
	if len(got) != 3 || got[0][0] != 0 || got[2][0] != 2 {
		t.Fatalf("take = %v", got)
	}
	if !q.push([]byte{4}) {
		t.Fatal("push after take refused")
	}
}

// TestQueueConcurrent: with several pushers and one taker, every item
// arrives exactly once and in order per pusher, and no wake-up is lost.
func TestQueueConcurrent(t *testing.T) {
	const pushers, each = 4, 2000
	q := newQueue(pushers * each)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				if !q.push([]byte{byte(p), byte(i >> 8), byte(i)}) {
					t.Errorf("push refused")
				}
			}
		})
	}
	next := make([]int, pushers)
	var buf [][]byte
	for n := 0; n < pushers*each; {
		<-q.ready
		buf = q.take(buf)
		for _, b := range buf {
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
