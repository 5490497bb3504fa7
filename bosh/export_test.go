package bosh

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
