// Package event delivers typed events between Starling's packages and its
// modules, in the way Prosody's module:hook and ejabberd's hooks with
// priorities do, but with Go types instead of names: an event is a struct
// defined by the package that fires it (router.NoResource, say), a
// handler is a func of a pointer to that struct. Handlers run in order of
// priority, highest first, and any of them may stop the event, which the
// firer then sees. No lock is held while a handler runs, so a handler may
// fire other events or route stanzas. The package imports nothing of ours.
package event

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// Bus holds the handlers of every event type. Its zero value is ready to
// use. Handlers are usually registered at start-up, before events flow;
// registering later is safe too.
type Bus struct {
	// handlers is replaced as a whole on each registration, never
	// changed, so that Fire reads it without a lock: events are fired
	// for every stanza, from every session's goroutine.
	handlers atomic.Pointer[map[reflect.Type][]entry]

	mu sync.Mutex // serialises registrations; guards n
	n  int        // registrations so far, for a stable order among equals
}

// entry is one registered handler.
type entry struct {
	prio, seq int
	name      string
	h         func(ctx context.Context, e any) bool
}

// Priorities for the common cases; any int works.
const (
	// First is for handlers that may stop an event before anything
	// acts on it (a blocklist).
	First = 1000
	// Normal is the default.
	Normal = 0
	// Last is for handlers that act only if nothing stopped the event.
	Last = -1000
)

// On registers h for events of type E at priority prio; name (a module's)
// is for diagnostics. h returns true to stop the event: handlers of lower
// priority do not see it.
func On[E any](b *Bus, prio int, name string, h func(ctx context.Context, e *E) bool) {
	t := reflect.TypeFor[E]()
	b.mu.Lock()
	defer b.mu.Unlock()
	all := make(map[reflect.Type][]entry)
	if old := b.handlers.Load(); old != nil {
		maps.Copy(all, *old)
	}
	b.n++
	hs := append(slices.Clone(all[t]), entry{prio: prio, seq: b.n, name: name,
		h: func(ctx context.Context, e any) bool { return h(ctx, e.(*E)) }})
	slices.SortStableFunc(hs, func(a, b entry) int {
		if a.prio != b.prio {
			return b.prio - a.prio
		}
		return a.seq - b.seq
	})
	all[t] = hs
	b.handlers.Store(&all)
}

// of returns the handlers of events of type t.
func (b *Bus) of(t reflect.Type) []entry {
	if all := b.handlers.Load(); all != nil {
		return (*all)[t]
	}
	return nil
}

// Fire runs the handlers of e's type on e, in order, until one stops it,
// and reports whether one did. A nil Bus has no handlers.
func Fire[E any](ctx context.Context, b *Bus, e *E) (stopped bool) {
	if b == nil {
		return false
	}
	for _, en := range b.of(reflect.TypeFor[E]()) {
		if en.h(ctx, e) {
			return true
		}
	}
	return false
}

// Handlers lists the names of the handlers of events of type E, in the
// order they run (for diagnostics and tests).
func Handlers[E any](b *Bus) []string {
	var names []string
	for _, en := range b.of(reflect.TypeFor[E]()) {
		names = append(names, en.name)
	}
	return names
}
