package stream

import "testing"

// Pools makes each value for the Limits it is asked for, and keeps the
// values of different Limits apart.
func TestPools(t *testing.T) {
	type parser struct{ lim Limits }
	p := Pools[parser]{New: func(l Limits) *parser { return &parser{lim: l} }}
	small, large := Limits{MaxElementBytes: 10000}, Limits{MaxElementBytes: 1 << 20}
	for range 3 {
		a, b := p.Get(small), p.Get(large)
		if a.lim != small || b.lim != large {
			t.Fatalf("Get(small) made for %v, Get(large) for %v", a.lim, b.lim)
		}
		p.Put(large, b)
		p.Put(small, a)
	}
	p.Put(Limits{MaxDepth: 3}, &parser{}) // never got: dropped
	if v := p.Get(Limits{MaxDepth: 3}); v.lim != (Limits{MaxDepth: 3}) {
		t.Fatalf("a value put for Limits never got came back: %v", v.lim)
	}
}
