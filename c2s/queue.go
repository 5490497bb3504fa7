package c2s

import "sync"

// queue is a session's bounded outbound queue: any goroutine pushes, the
// session's writer takes everything queued at once. Unlike a buffered
// channel it holds memory only for what is actually waiting, which
// matters with tens of thousands of mostly idle sessions. It is bounded
// in items and in bytes: 1000 stanzas of 256 KiB would otherwise let one
// slow session hold 256 MiB.
type queue struct {
	maxItems, maxBytes int
	ready              chan struct{} // a token whenever something was pushed

	mu    sync.Mutex // guards items and bytes
	items [][]byte
	bytes int
}

func newQueue(maxItems, maxBytes int) *queue {
	return &queue{maxItems: maxItems, maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// push adds b, or refuses it with the reason: CloseQueueItems when maxItems
// are already waiting, CloseQueueBytes when b would take what is waiting
// beyond maxBytes. ok is true when b was queued.
func (q *queue) push(b []byte) (reason CloseReason, ok bool) {
	q.mu.Lock()
	switch {
	case len(q.items) >= q.maxItems:
		q.mu.Unlock()
		return CloseQueueItems, false
	case q.bytes+len(b) > q.maxBytes:
		q.mu.Unlock()
		return CloseQueueBytes, false
	}
	q.items = append(q.items, b)
	q.bytes += len(b)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a token is already waiting for the writer
	}
	return 0, true
}

// take moves everything queued into buf[:0] and returns it.
func (q *queue) take(buf [][]byte) [][]byte {
	q.mu.Lock()
	buf = append(buf[:0], q.items...)
	clear(q.items)
	if cap(q.items) > 64 {
		q.items = nil // let a burst's backing array go
	} else {
		q.items = q.items[:0]
	}
	q.bytes = 0
	q.mu.Unlock()
	return buf
}
