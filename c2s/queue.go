package c2s

import "sync"

// queue is a session's bounded outbound queue: any goroutine pushes, the
// session's writer takes everything queued at once. Unlike a buffered
// channel it holds memory only for what is actually waiting, which
// matters with tens of thousands of mostly idle sessions.
type queue struct {
	max   int
	ready chan struct{} // a token whenever something was pushed

	mu    sync.Mutex // guards items
	items [][]byte
}

func newQueue(max int) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1)}
}

// push adds b, or reports false when max items are already waiting.
func (q *queue) push(b []byte) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, b)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a token is already waiting for the writer
	}
	return true
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
	q.mu.Unlock()
	return buf
}
