package auth

import (
	"sync"
	"time"
)

// Throttle counts failed logins per key (an IP address, a bare JID) over a
// sliding window, so that password guessing is slowed down (RFC 6120 §13.8,
// RFC 4422 §9). It is safe for concurrent use: mu guards every field below it.
//
// Memory stays bounded: entries whose last failure is older than the window
// are swept on Failed, at least once per window and whenever the map has
// doubled since the last sweep, so it holds no more than about twice the keys
// that failed within one window.
type Throttle struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	entries   map[string][]time.Time // failure times, oldest first, at most max
	lastSweep time.Time
	sweepAt   int // sweep when len(entries) reaches this
}

// minSweepAt is the smallest map size that triggers a size-based sweep.
const minSweepAt = 1024

// NewThrottle returns a Throttle that refuses a key once it has maxFailures
// failures within window. now is the clock (time.Now if nil); maxFailures
// <= 0 or window <= 0 disables throttling.
func NewThrottle(maxFailures int, window time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{
		max:       maxFailures,
		window:    window,
		now:       now,
		entries:   make(map[string][]time.Time),
		lastSweep: now(),
		sweepAt:   minSweepAt,
	}
}

func (t *Throttle) disabled() bool { return t.max <= 0 || t.window <= 0 }

// Allowed reports whether key may try to authenticate: false once it has
// maxFailures failures within the window.
func (t *Throttle) Allowed(key string) bool {
	if t.disabled() {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.recent(key, t.now())) < t.max
}

// Failed records a failed attempt of key.
func (t *Throttle) Failed(key string) {
	if t.disabled() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.recent(key, now)
	if len(f) >= t.max {
		f = append(f[:0], f[len(f)-t.max+1:]...)
	}
	t.entries[key] = append(f, now)
	if now.Sub(t.lastSweep) >= t.window || len(t.entries) >= t.sweepAt {
		t.sweep(now)
	}
}

// Succeeded forgets the failures of key.
func (t *Throttle) Succeeded(key string) {
	if t.disabled() {
		return
	}
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

// recent drops the failures of key that left the window and returns the rest.
func (t *Throttle) recent(key string, now time.Time) []time.Time {
	f, ok := t.entries[key]
	if !ok {
		return nil
	}
	i := 0
	for i < len(f) && now.Sub(f[i]) >= t.window {
		i++
	}
	if i == len(f) {
		delete(t.entries, key)
		return nil
	}
	if i > 0 {
		f = append(f[:0], f[i:]...)
		t.entries[key] = f
	}
	return f
}

// sweep deletes every key whose newest failure left the window.
func (t *Throttle) sweep(now time.Time) {
	for k, f := range t.entries {
		if now.Sub(f[len(f)-1]) >= t.window {
			delete(t.entries, k)
		}
	}
	t.lastSweep = now
	t.sweepAt = max(2*len(t.entries), minSweepAt)
}
