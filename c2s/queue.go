package c2s

import "sync"

// queue is a session's bounded outbound queue: any goroutine pushes, the
// writer of the session's connection takes everything queued at once.
// Unlike a buffered channel it holds memory only for what is actually
// waiting, which matters with tens of thousands of mostly idle sessions.
// It is bounded in stanzas and in bytes: 1000 stanzas of 256 KiB would
// otherwise let one slow session hold 256 MiB. Nonzas (stream management's
// answers) are not counted against the bounds.
type queue struct {
	maxItems, maxBytes int
	// wake is called after each push, without the lock held: it starts
	// the writer of the session's connection if none is running.
	wake func()

	mu     sync.Mutex // guards the fields below
	items  []item
	bytes  int
	closed bool
	ackAt  int // 1 + the index of the ackItem waiting, 0 if none
}

// item is one top-level element waiting to be written.
type item struct {
	b    []byte
	kind itemKind
}

// itemKind tells stanzas, which stream management counts (XEP-0198 §4),
// from nonzas.
type itemKind uint8

const (
	stanzaItem itemKind = iota
	nonzaItem
	// enabledItem is <enabled/>: stanzas written after it are counted.
	enabledItem
	// ackItem is an <a/>: a newer one replaces one not written yet.
	ackItem
)

func newQueue(maxItems, maxBytes int, wake func()) *queue {
	return &queue{maxItems: maxItems, maxBytes: maxBytes, wake: wake}
}

// push adds the stanza b, or refuses it with the reason: CloseQueueItems
// when maxItems are already waiting, CloseQueueBytes when b would take
// what is waiting beyond maxBytes, closeEnded once the queue is closed.
// ok is true when b was queued.
func (q *queue) push(b []byte) (reason CloseReason, ok bool) {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return closeEnded, false
	case len(q.items) >= q.maxItems:
		q.mu.Unlock()
		return CloseQueueItems, false
	case q.bytes+len(b) > q.maxBytes:
		q.mu.Unlock()
		return CloseQueueBytes, false
	}
	q.items = append(q.items, item{b: b})
	q.bytes += len(b)
	q.mu.Unlock()
	q.wake()
	return 0, true
}

// pushNonza adds a nonza of kind k, outside the bytes bound; an ackItem
// replaces the one still waiting, if any. It reports false when the
// client has made the server queue as many nonzas as the stanza bound
// allows without reading them (a flood of requests): it is refused.
func (q *queue) pushNonza(b []byte, k itemKind) bool {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return true
	case k == ackItem && q.ackAt > 0:
		q.items[q.ackAt-1].b = b
		q.mu.Unlock()
		return true
	case len(q.items) >= 2*q.maxItems:
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, item{b: b, kind: k})
	if k == ackItem {
		q.ackAt = len(q.items)
	}
	q.mu.Unlock()
	q.wake()
	return true
}

// take moves everything queued into buf[:0] and returns it.
func (q *queue) take(buf []item) []item {
	q.mu.Lock()
	buf = append(buf[:0], q.items...)
	clear(q.items)
	if cap(q.items) > 64 {
		q.items = nil // let a burst's backing array go
	} else {
		q.items = q.items[:0]
	}
	q.bytes = 0
	q.ackAt = 0
	q.mu.Unlock()
	return buf
}

// stanzas appends the stanzas waiting to buf.
func (q *queue) stanzas(buf [][]byte) [][]byte {
	q.mu.Lock()
	for _, it := range q.items {
		if it.kind == stanzaItem {
			buf = append(buf, it.b)
		}
	}
	q.mu.Unlock()
	return buf
}

// close refuses every later push and returns what was waiting.
func (q *queue) close() []item {
	q.mu.Lock()
	q.closed = true
	rest := q.items
	q.items, q.bytes, q.ackAt = nil, 0, 0
	q.mu.Unlock()
	return rest
}
