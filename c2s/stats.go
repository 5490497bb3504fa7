package c2s

import (
	"math/bits"
	"sync/atomic"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
)

// Stats is a snapshot of what the client sessions of a Server have done
// since it started, and of the sessions bound now, for operators'
// metrics (package metrics exports it to Prometheus). Its counters are
// kept with atomic additions on the paths they count, so that counting
// costs no allocation and no lock; the snapshot itself is made only when
// asked for. The label values are from fixed sets: what a client sends
// (an unknown SASL mechanism) is counted as "other".
type Stats struct {
	// Logins are the successful SASL authentications by mechanism
	// (RFC 6120 §6), "SCRAM-SHA-256" and so on.
	Logins map[string]uint64
	// LoginFailures are the failed ones by reason: the SASL failure
	// condition (RFC 6120 §6.5: "not-authorized", "aborted", ...), or
	// "throttled" for an attempt refused by the failed-login throttles.
	LoginFailures map[string]uint64
	// StanzasIn are the stanzas received from clients, by kind
	// ("message", "presence", "iq"); StanzasOut those written to them.
	StanzasIn, StanzasOut map[string]uint64
	// StreamCloses are the client streams that ended, by reason: the
	// condition of the stream error that ended it (RFC 6120 §4.9.3:
	// "connection-timeout" for a client that did not authenticate in
	// time or did not answer a ping, "policy-violation", "conflict",
	// "system-shutdown", ...), "client-closed" (the client closed its
	// stream, §4.4) or "connection-lost" (the connection broke without
	// either).
	StreamCloses map[string]uint64
	// QueueOverflows are the sessions ended because their outbound
	// queue was full, by CloseReason ("queue-items", "queue-bytes"); they
	// are among StreamCloses' "policy-violation" too.
	QueueOverflows map[string]uint64
	// QueueLengths are the lengths of the outbound queues at each write:
	// how many stanzas and nonzas a session's writer took at once.
	QueueLengths Histogram
	// Sessions are the bound sessions now, by transport and state.
	Sessions []SessionCount
}

// SessionCount is how many sessions have a transport ("tcp",
// "websocket", "bosh", as SessionInfo.Transport) and a state: "active",
// "inactive" (the client said so, XEP-0352) or "detached" (waiting for a
// resumption, XEP-0198 §5).
type SessionCount struct {
	Transport, State string
	N                int
}

// Histogram counts observations in buckets: Counts[i] those at most
// Bounds[i] and above the bound before it, the last one those above every
// bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64 // len(Bounds)+1
	Sum    uint64
	Count  uint64
}

// stats are a Server's counters.
type stats struct {
	logins        labelCounts
	loginFailures labelCounts
	closes        labelCounts
	in, out       [stanza.IQ + 1]atomic.Uint64
	queue         lengths
}

func newStats() stats {
	return stats{
		logins: newLabelCounts("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
			"SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "EXTERNAL"),
		loginFailures: newLabelCounts(auth.Aborted, auth.AccountDisabled, auth.CredentialsExpired, auth.EncryptionRequired,
			auth.IncorrectEncoding, auth.InvalidAuthzid, auth.InvalidMechanism, auth.MalformedRequest, auth.MechanismTooWeak,
			auth.NotAuthorized, auth.TemporaryAuthFailure, "throttled"),
		closes: newLabelCounts(closeClient, closeLost,
			stream.BadFormat, stream.BadNamespacePrefix, stream.Conflict, stream.ConnectionTimeout, stream.HostGone,
			stream.HostUnknown, stream.ImproperAddressing, stream.InternalServerError, stream.InvalidFrom,
			stream.InvalidNamespace, stream.InvalidXML, stream.NotAuthorized, stream.NotWellFormed,
			stream.PolicyViolation, stream.RemoteConnectionFailed, stream.Reset, stream.ResourceConstraint,
			stream.RestrictedXML, stream.SeeOtherHost, stream.SystemShutdown, stream.UndefinedCondition,
			stream.UnsupportedEncoding, stream.UnsupportedFeature, stream.UnsupportedStanzaType,
			stream.UnsupportedVersion),
	}
}

// The reasons a stream ends without a stream error.
const (
	closeClient = "client-closed"
	closeLost   = "connection-lost"
)

// labelCounts counts events by a label from a fixed set; any other value
// counts as "other".
type labelCounts struct {
	names []string
	n     []atomic.Uint64 // len(names)+1: "other" last
}

func newLabelCounts(names ...string) labelCounts {
	return labelCounts{names: names, n: make([]atomic.Uint64, len(names)+1)}
}

func (c *labelCounts) add(name string) {
	for i, n := range c.names {
		if n == name {
			c.n[i].Add(1)
			return
		}
	}
	c.n[len(c.names)].Add(1)
}

// snapshot returns the counts by label, those not seen yet left out.
func (c *labelCounts) snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for i := range c.n {
		if v := c.n[i].Load(); v > 0 {
			name := "other"
			if i < len(c.names) {
				name = c.names[i]
			}
			m[name] = v
		}
	}
	return m
}

// lengths is a histogram of queue lengths in buckets of powers of two,
// 1 to 1024, and above.
type lengths struct {
	buckets  [lengthBuckets + 1]atomic.Uint64
	sum, cnt atomic.Uint64
}

const lengthBuckets = 11 // bounds 1, 2, 4, ..., 1024

func (l *lengths) observe(n int) {
	i := min(bits.Len(uint(n-1)), lengthBuckets) // n ≤ 2^i
	l.buckets[i].Add(1)
	l.sum.Add(uint64(n))
	l.cnt.Add(1)
}

func (l *lengths) snapshot() Histogram {
	h := Histogram{Bounds: make([]float64, lengthBuckets), Counts: make([]uint64, lengthBuckets+1)}
	for i := range lengthBuckets {
		h.Bounds[i] = float64(uint(1) << i)
	}
	for i := range l.buckets {
		h.Counts[i] = l.buckets[i].Load()
	}
	h.Sum, h.Count = l.sum.Load(), l.cnt.Load()
	return h
}

// kindOfRaw is the kind of a stanza as queued: its element's name, the
// first thing in its bytes.
func kindOfRaw(b []byte) stanza.Kind {
	if len(b) < 2 || b[0] != '<' {
		return 0
	}
	switch b[1] {
	case 'm':
		return stanza.Message
	case 'p':
		return stanza.Presence
	case 'i':
		return stanza.IQ
	}
	return 0
}

// countOut counts the stanzas of a batch about to be written.
func (st *stats) countOut(batch []item) {
	if len(batch) == 0 {
		return
	}
	st.queue.observe(len(batch))
	for _, it := range batch {
		if it.kind == stanzaItem {
			st.out[kindOfRaw(it.b)].Add(1)
		}
	}
}

// closeReason is what ended a stream, for StreamCloses: the stream error
// sent, the client's closing tag, or a connection lost.
func closeReason(se *stream.Error, clean bool) string {
	switch {
	case se != nil:
		return se.Condition
	case clean:
		return closeClient
	}
	return closeLost
}

// Stats returns a snapshot of the sessions' counters and of the sessions
// bound now.
func (s *Server) Stats() Stats {
	st := Stats{
		Logins:        s.stats.logins.snapshot(),
		LoginFailures: s.stats.loginFailures.snapshot(),
		StreamCloses:  s.stats.closes.snapshot(),
		StanzasIn:     make(map[string]uint64),
		StanzasOut:    make(map[string]uint64),
		QueueLengths:  s.stats.queue.snapshot(),
		QueueOverflows: map[string]uint64{
			CloseQueueItems.String(): s.Closed(CloseQueueItems),
			CloseQueueBytes.String(): s.Closed(CloseQueueBytes),
		},
	}
	for k := stanza.Message; k <= stanza.IQ; k++ {
		st.StanzasIn[k.String()] = s.stats.in[k].Load()
		st.StanzasOut[k.String()] = s.stats.out[k].Load()
	}
	type key struct{ transport, state string }
	counts := map[key]int{}
	for _, host := range s.config().Server.Hosts {
		for _, rs := range s.Router.HostSessions(host) {
			info, ok := Info(rs)
			if !ok {
				continue
			}
			state := "active"
			switch {
			case info.SM == "detached":
				state = "detached"
			case info.Inactive:
				state = "inactive"
			}
			counts[key{info.Transport, state}]++
		}
	}
	for _, t := range []string{"tcp", "websocket", "bosh"} {
		for _, state := range []string{"active", "inactive", "detached"} {
			k := key{t, state}
			st.Sessions = append(st.Sessions, SessionCount{Transport: t, State: state, N: counts[k]})
			delete(counts, k)
		}
	}
	for k, n := range counts {
		st.Sessions = append(st.Sessions, SessionCount{Transport: k.transport, State: k.state, N: n})
	}
	return st
}
