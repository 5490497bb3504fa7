package c2s

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
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
	if err := s.ack(math.MaxUint32 - 5); err != nil || len(s.unacked) != 1 || s.acked != 1 {
		t.Fatalf("an ack behind the last one: %v, %d unacked, acked %d", err, len(s.unacked), s.acked)
	}
}

// TestSentCountsAfterEnabled: only stanzas written after <enabled/> are
// kept for resending, and an ack is requested once a few wait.
func TestSentCountsAfterEnabled(t *testing.T) {
	s := &session{out: newQueue(100, 1<<20, func() {})}
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

// undeliveredRouter records what settle hands back.
type undeliveredRouter struct {
	router.Router
	got []string
}

func (r *undeliveredRouter) Undelivered(_ context.Context, s *stanza.Stanza) {
	r.got = append(r.got, s.ID)
}

// TestSettleOnce: an ended session hands back, once, what it wrote and
// its client never acknowledged and what was still queued, but not the
// carbons and archive results sent from the account itself.
func TestSettleOnce(t *testing.T) {
	r := &undeliveredRouter{}
	srv := &Server{Router: r, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s := &session{srv: srv, full: jid.MustParse("alice@example.org/phone"), out: newQueue(100, 1<<20, func() {})}
	s.smOn.Store(true)
	s.unacked = [][]byte{
		[]byte("<message from='bob@example.org/x' to='alice@example.org/phone' id='m1'><body>1</body></message>"),
		[]byte("<message from='alice@example.org' to='alice@example.org/phone' id='c1'><received xmlns='urn:xmpp:carbons:2'/></message>"),
	}
	s.out.push([]byte("<iq from='bob@example.org/x' to='alice@example.org/phone' type='get' id='q1'/>"))
	s.out.pushNonza([]byte("<r xmlns='urn:xmpp:sm:3'/>"), nonzaItem)
	s.settle()
	s.settle()
	if strings.Join(r.got, ",") != "m1,q1" {
		t.Fatalf("handed back %v, want m1 and q1 once", r.got)
	}
	if s.DeliverNow([]byte("<message/>")) {
		t.Fatal("an ended session still queues")
	}

	// A client that closed its stream read what was written before: only
	// what was still queued comes back.
	r.got = nil
	s = &session{srv: srv, full: jid.MustParse("alice@example.org/phone"), out: newQueue(100, 1<<20, func() {})}
	s.smOn.Store(true)
	s.closedByClient.Store(true)
	s.unacked = [][]byte{[]byte("<message from='bob@example.org/x' to='alice@example.org/phone' id='m1'><body>1</body></message>")}
	s.out.push([]byte("<message from='bob@example.org/x' to='alice@example.org/phone' id='m2'><body>2</body></message>"))
	s.settle()
	if strings.Join(r.got, ",") != "m2" {
		t.Fatalf("after a close by the client, handed back %v, want m2", r.got)
	}
}
