package bosh

import "time"

// State reports the open requests of session sid: held, and received
// ahead of their turn; ok is false when there is no such session.
func (h *Handler) State(sid string) (held, ahead int, ok bool) {
	h.mu.Lock()
	c := h.sessions[sid]
	h.mu.Unlock()
	if c == nil {
		return 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held), len(c.ahead), true
}

// Ended reports whether session sid has ended, its last response still
// waiting for the client.
func Ended(h *Handler, sid string) bool {
	h.mu.Lock()
	c := h.sessions[sid]
	h.mu.Unlock()
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// SetClock makes the sessions h creates after it read the arrival and
// response times of requests from now (XEP-0124 §9.2 'time', 'polling'
// in §11 and §12); the timers still run on real time.
func SetClock(h *Handler, now func() time.Time) {
	s := *h.set.Load()
	s.now = now
	h.set.Store(&s)
}

// Waiting reports how many bytes of output session sid has for the
// client, waiting for a request.
func Waiting(h *Handler, sid string) int {
	h.mu.Lock()
	c := h.sessions[sid]
	h.mu.Unlock()
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}
