package s2s

import (
	"context"
	"sync"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// perRecipient bounds the stanzas waiting for one local recipient; beyond
// it they are refused with resource-constraint, so that one recipient
// whose delivery is stuck does not hold the memory of everyone's.
const perRecipient = 1000

// inbox routes stanzas received from other servers in order for each
// local recipient (bare JID, or the domain for the server itself), each
// recipient's queue drained by a goroutine of its own while it has
// stanzas: a slow delivery (offline storage, a vCard read) delays only
// that recipient, never the other users of the stream that carried it.
type inbox struct {
	r router.Router

	mu     sync.Mutex // guards queues
	queues map[string]*recipientQueue
}

type recipientQueue struct {
	items []*stanza.Stanza // guarded by inbox.mu
}

func newInbox(r router.Router) *inbox {
	return &inbox{r: r, queues: make(map[string]*recipientQueue)}
}

func (b *inbox) put(ctx context.Context, s *stanza.Stanza) {
	key := s.To.Bare().String()
	b.mu.Lock()
	if q := b.queues[key]; q != nil {
		if len(q.items) >= perRecipient {
			b.mu.Unlock()
			b.r.Bounce(ctx, s, &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
			return
		}
		q.items = append(q.items, s)
		b.mu.Unlock()
		return
	}
	q := &recipientQueue{}
	b.queues[key] = q
	b.mu.Unlock()
	go b.drain(ctx, key, q, s)
}

// drain routes s and then what was queued behind it, and stops when the
// queue is empty.
func (b *inbox) drain(ctx context.Context, key string, q *recipientQueue, s *stanza.Stanza) {
	for {
		b.r.Route(ctx, s)
		b.mu.Lock()
		if len(q.items) == 0 {
			delete(b.queues, key)
			b.mu.Unlock()
			return
		}
		s = q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		b.mu.Unlock()
	}
}
