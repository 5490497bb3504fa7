package auth

import (
	"sync"
	"time"
)

// Throttle counts failed logins per key (a client address, an account)
// over a sliding window, so that password guessing is slowed down
// (RFC 6120 §13.8, RFC 4422 §9). An attempt is reserved with Begin before
// any password is checked and ended with End once its outcome is known:
// attempts in progress count against the limit as failures would, so
// concurrent attempts for one key check at most the limit's worth of
// passwords. It is safe for concurrent use: mu guards every field below
// it.
//
// Memory stays bounded: entries with no attempt in progress whose last
// failure is older than the window are swept on End, at least once per
// window and whenever the map has doubled since the last sweep, so it
// holds no more than about twice the keys that failed within one window
// (plus those with an attempt in progress).
type Throttle struct {
	now func() time.Time

	mu        sync.Mutex
	max       int
	window    time.Duration
	entries   map[string]*entry
	lastSweep time.Time
	sweepAt   int // sweep when len(entries) reaches this
}

// entry is the record of one key.
type entry struct {
	failures []time.Time // oldest first, at most max
	pending  int         // attempts begun and not ended
}

// minSweepAt is the smallest map size that triggers a size-based sweep.
const minSweepAt = 1024

// NewThrottle returns a Throttle that refuses a key once it has maxFailures
// failures within window, counting attempts in progress. now is the clock
// (time.Now if nil); maxFailures <= 0 or window <= 0 disables throttling.
func NewThrottle(maxFailures int, window time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{
		max:       maxFailures,
		window:    window,
		now:       now,
		entries:   make(map[string]*entry),
		lastSweep: now(),
		sweepAt:   minSweepAt,
	}
}

// SetLimits changes the limits (a reloaded configuration); failures
// already recorded are judged by them from now on.
func (t *Throttle) SetLimits(maxFailures int, window time.Duration) {
	t.mu.Lock()
	t.max, t.window = maxFailures, window
	t.mu.Unlock()
}

// Begin reserves an attempt for key and reports whether it may go ahead:
// false, reserving nothing, once the failures within the window and the
// attempts in progress reach the limit. Every true must be followed by one
// End.
func (t *Throttle) Begin(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.max <= 0 || t.window <= 0 {
		return true
	}
	now := t.now()
	e := t.recent(key, now)
	if e == nil {
		e = &entry{}
		t.entries[key] = e
	}
	if len(e.failures)+e.pending >= t.max {
		return false
	}
	e.pending++
	return true
}

// End ends an attempt that Begin allowed; failed records it as a failure
// (rejected credentials). A success forgets nothing: a guesser who also
// holds a valid account must not reset his count by using it.
func (t *Throttle) End(key string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.entries[key]
	if e == nil { // Begin found throttling disabled
		if !failed || t.max <= 0 || t.window <= 0 {
			return
		}
		e = &entry{}
		t.entries[key] = e
	} else if e.pending > 0 {
		e.pending--
	}
	if failed && t.max > 0 {
		t.expire(e, now)
		if len(e.failures) >= t.max {
			e.failures = append(e.failures[:0], e.failures[len(e.failures)-t.max+1:]...)
		}
		e.failures = append(e.failures, now)
	}
	if e.pending == 0 && len(e.failures) == 0 {
		delete(t.entries, key)
	}
	if now.Sub(t.lastSweep) >= t.window || len(t.entries) >= t.sweepAt {
		t.sweep(now)
	}
}

// recent drops the failures of key that left the window and returns its
// entry, or nil (deleting it) when nothing is left of it.
func (t *Throttle) recent(key string, now time.Time) *entry {
	e, ok := t.entries[key]
	if !ok {
		return nil
	}
	t.expire(e, now)
	if len(e.failures) == 0 && e.pending == 0 {
		delete(t.entries, key)
		return nil
	}
	return e
}

// expire drops the failures of e that left the window.
func (t *Throttle) expire(e *entry, now time.Time) {
	i := 0
	for i < len(e.failures) && now.Sub(e.failures[i]) >= t.window {
		i++
	}
	if i > 0 {
		e.failures = append(e.failures[:0], e.failures[i:]...)
	}
}

// sweep deletes every key with no attempt in progress whose newest
// failure left the window.
func (t *Throttle) sweep(now time.Time) {
	for k, e := range t.entries {
		if e.pending == 0 && (len(e.failures) == 0 || now.Sub(e.failures[len(e.failures)-1]) >= t.window) {
			delete(t.entries, k)
		}
	}
	t.lastSweep = now
	t.sweepAt = max(2*len(t.entries), minSweepAt)
}
