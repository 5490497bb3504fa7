package csi

import (
	"bytes"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/starling-xmpp/starling/c2s"
)

// seed keys the hashes of senders' addresses.
var seed = maphash.MakeSeed()

// holder keeps back what an inactive session need not see at once
// (c2s.Holder). Its fields below mu are guarded by mu, which is also held
// while held stanzas are released, so that two releases never interleave
// and what one sender sent reaches the session in the order it was sent.
type holder struct {
	sess               c2s.Client
	maxStanzas, maxLen int
	ended              atomic.Bool // the session has ended: hold nothing

	mu     sync.Mutex
	active bool    // <active/> came: hold nothing
	held   []entry // in arrival order; a replaced one has raw == nil
	live   int     // entries with raw != nil
	bytes  int     // their length
	// last maps (kind, sender) to the index in held of the one entry
	// of that kind from that sender that is kept (a hash: a collision
	// is told apart by the entry's own kind and sender).
	last map[uint64]int
}

// entry is one held stanza.
type entry struct {
	raw  []byte
	kind byte   // kindPresence, kindChatState; 0 for one held in order
	from []byte // within raw
}

func newHolder(sess c2s.Client, maxStanzas, maxBytes int) *holder {
	return &holder{sess: sess, maxStanzas: maxStanzas, maxLen: maxBytes}
}

// Hold implements c2s.Holder.
func (h *holder) Hold(raw []byte) bool {
	if h.ended.Load() {
		return false
	}
	v := classify(raw)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active || v.class == urgent {
		h.releaseLocked()
		return false
	}
	if v.class == latest {
		key := maphash.Bytes(seed, v.from) ^ uint64(v.kind)
		if h.last == nil {
			h.last = make(map[uint64]int)
		}
		if i, ok := h.last[key]; ok {
			if e := &h.held[i]; e.raw != nil && e.kind == v.kind && bytes.Equal(e.from, v.from) {
				h.live--
				h.bytes -= len(e.raw)
				*e = entry{}
			}
		}
		h.last[key] = len(h.held)
	}
	h.held = append(h.held, entry{raw: raw, kind: v.kind, from: v.from})
	h.live++
	h.bytes += len(raw)
	switch {
	case h.live > h.maxStanzas || h.bytes > h.maxLen:
		// Bounded memory: what does not fit goes out, all of it.
		h.releaseLocked()
	case len(h.held) > 2*h.live+16:
		h.compactLocked()
	}
	return true
}

// activate releases everything held; nothing is held from now on.
func (h *holder) activate() {
	h.mu.Lock()
	h.active = true
	h.releaseLocked()
	h.mu.Unlock()
}

// count returns how many stanzas are held and their length.
func (h *holder) count() (n, size int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live, h.bytes
}

// releaseLocked queues everything held on the session, in order.
func (h *holder) releaseLocked() {
	if len(h.held) == 0 {
		return
	}
	for _, e := range h.held {
		if e.raw != nil && !h.sess.DeliverNow(e.raw) {
			break // the session is ending: nothing more reaches it
		}
	}
	if cap(h.held) > 64 {
		h.held = nil // an idle session keeps no large array
	} else {
		clear(h.held)
		h.held = h.held[:0]
	}
	clear(h.last)
	h.live, h.bytes = 0, 0
}

// compactLocked drops the replaced entries, so that a sender who changes
// presence often does not grow held.
func (h *holder) compactLocked() {
	n := 0
	clear(h.last)
	for _, e := range h.held {
		if e.raw == nil {
			continue
		}
		if e.kind != 0 {
			h.last[maphash.Bytes(seed, e.from)^uint64(e.kind)] = n
		}
		h.held[n] = e
		n++
	}
	clear(h.held[n:])
	h.held = h.held[:n]
}
