package c2s

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/stream"
)

// TestAckWraps: 'h' counts modulo 2^32 (XEP-0198 §4): an ack across the
// wrap removes what it acknowledges, and one beyond what was sent is
// <handled-count-too-high/>.
func TestAckWraps(t *testing.T) {
	s := &session{acked: math.MaxUint32 - 1}
	s.smOn.Store(true)
	s.unacked = [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	if err := s.ack(1); err != nil { // MaxUint32-1 + 3, wrapped
		t.Fatalf("ack across the wrap: %v", err)
	}
	if len(s.unacked) != 1 || string(s.unacked[0]) != "d" || s.acked != 1 {
		t.Fatalf("after the ack: unacked %q, acked %d", s.unacked, s.acked)
	}
	err := s.ack(3)
	var se *stream.Error
	if !errors.As(err, &se) || se.Condition != "undefined-condition" || !strings.Contains(string(se.App), "handled-count-too-high") || !strings.Contains(string(se.App), "send-count='2'") {
		t.Fatalf("ack beyond what was sent: %v (%s)", err, se.App)
	}
	if err := s.ack(1); err != nil || len(s.unacked) != 1 {
		t.Fatalf("an ack of what was acknowledged already: %v, %d unacked", err, len(s.unacked))
	}
}

// TestSentCountsAfterEnabled: only stanzas written after <enabled/> are
// kept for resending, and an ack is requested once a few wait.
func TestSentCountsAfterEnabled(t *testing.T) {
	s := &session{out: newQueue(100, 1<<20)}
	s.smOn.Store(true)
	batch := []item{{b: []byte("<iq/>")}, {b: []byte("<enabled/>"), kind: enabledItem}}
	for range ackRequestAfter {
		batch = append(batch, item{b: []byte("<message/>")})
	}
	units, over := s.sent(batch, nil)
	if over {
		t.Fatal("over")
	}
	if len(s.unacked) != ackRequestAfter {
		t.Fatalf("%d unacknowledged, want %d (the bind result before <enabled/> is not counted)", len(s.unacked), ackRequestAfter)
	}
	if last := string(units[len(units)-1]); last != string(requestAck) {
		t.Fatalf("last unit %q, want <r/>", last)
	}
	units, _ = s.sent([]item{{b: []byte("<message/>")}}, units[:0])
	if len(units) != 1 {
		t.Fatalf("<r/> asked again before an answer: %q", units)
	}
}
