package c2s

import "sync/atomic"

// CloseReason says why the server ended a session on its own, for the log
// and the counters (Server.Closed).
type CloseReason int

// Reasons the server ends a session.
const (
	// CloseQueueItems: the client did not read, and its outbound queue
	// reached [limits] outbound_queue stanzas.
	CloseQueueItems CloseReason = iota + 1
	// CloseQueueBytes: the same, at [limits] outbound_queue_bytes.
	CloseQueueBytes
	numCloseReasons
	// closeEnded: the session has ended; not counted.
	closeEnded = numCloseReasons
)

// String is the reason as logged: "queue-items", "queue-bytes".
func (r CloseReason) String() string {
	switch r {
	case CloseQueueItems:
		return "queue-items"
	case CloseQueueBytes:
		return "queue-bytes"
	}
	return "unknown"
}

// closeCounts counts the sessions ended for each reason.
type closeCounts [numCloseReasons]atomic.Uint64

// Closed returns how many sessions the server has ended for reason r since
// it started.
func (s *Server) Closed(r CloseReason) uint64 {
	if r <= 0 || r >= numCloseReasons {
		return 0
	}
	return s.closed[r].Load()
}
