package muc

import (
	"time"

	"github.com/starling-xmpp/starling/stanza"
)

// burstSeconds is how many seconds' worth of its rate a bucket holds.
const burstSeconds = 5

// bucket is a token bucket: rate tokens a second, burstSeconds of them
// at most. Guarded by its room's lock.
type bucket struct {
	tokens float64
	at     time.Time
}

// fill adds what rate gave since the last fill, and reports whether a
// token is there.
func (b *bucket) fill(now time.Time, rate int) bool {
	limit := float64(rate * burstSeconds)
	if b.at.IsZero() {
		b.tokens = limit
	} else if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = min(limit, b.tokens+d*float64(rate))
	}
	b.at = now
	return b.tokens >= 1
}

var errFlood = &stanza.Error{Type: stanza.Wait, Condition: stanza.PolicyViolation, Text: "too many messages: wait a moment"}

// flooding reports whether o or the room is over its rate, spending a
// token of each otherwise (a refused stanza costs nothing); r.mu is
// held.
func (r *room) flooding(o *occupant, now time.Time, opts *Options) bool {
	occupantOK := o.limit.fill(now, opts.OccupantRate)
	if !r.limit.fill(now, opts.RoomRate) || !occupantOK {
		return true
	}
	o.limit.tokens--
	r.limit.tokens--
	return false
}
