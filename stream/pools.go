package stream

import "sync"

// Pools lends values built around a Reader with given Limits (a parser of
// in-memory input and its source, say) so that each message or request
// borrows one instead of making its own: one sync.Pool per Limits in use,
// since a reload may change the limits (max_stanza_bytes). New makes a
// value when its pool is empty. Safe for concurrent use; the zero value
// with New set is ready.
type Pools[T any] struct {
	New func(Limits) *T
	m   sync.Map // Limits → *sync.Pool
}

// Get takes a value made for l from its pool, or makes one.
func (p *Pools[T]) Get(l Limits) *T {
	pool, ok := p.m.Load(l)
	if !ok {
		pool, _ = p.m.LoadOrStore(l, &sync.Pool{})
	}
	if v, _ := pool.(*sync.Pool).Get().(*T); v != nil {
		return v
	}
	return p.New(l)
}

// Put gives v, got with Get(l), back to the pool of l.
func (p *Pools[T]) Put(l Limits, v *T) {
	if pool, ok := p.m.Load(l); ok {
		pool.(*sync.Pool).Put(v)
	}
}
