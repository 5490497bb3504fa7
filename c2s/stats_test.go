package c2s

import (
	"maps"
	"slices"
	"testing"
)

func TestLengthsBuckets(t *testing.T) {
	var l lengths
	for _, n := range []int{1, 2, 3, 4, 5, 1024, 1025, 100000} {
		l.observe(n)
	}
	h := l.snapshot()
	if len(h.Bounds) != lengthBuckets || h.Bounds[0] != 1 || h.Bounds[lengthBuckets-1] != 1024 {
		t.Fatalf("bounds %v", h.Bounds)
	}
	// 1 | 2 | 3,4 | 5 (≤8) | ... | 1024 | above
	want := []uint64{1, 1, 2, 1, 0, 0, 0, 0, 0, 0, 1, 2}
	if !slices.Equal(h.Counts, want) {
		t.Errorf("counts %v, want %v", h.Counts, want)
	}
	if h.Count != 8 || h.Sum != 1+2+3+4+5+1024+1025+100000 {
		t.Errorf("count %d sum %d", h.Count, h.Sum)
	}
}

func TestLabelCounts(t *testing.T) {
	c := newLabelCounts("PLAIN", "SCRAM-SHA-256")
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256", "made-up", "another"} {
		c.add(m)
	}
	got := c.snapshot()
	want := map[string]uint64{"PLAIN": 1, "SCRAM-SHA-256": 2, "other": 2}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestKindOfRaw(t *testing.T) {
	for raw, want := range map[string]string{
		"<message to='a'/>": "message", "<presence/>": "presence", "<iq type='get'/>": "iq", "<r xmlns='urn:xmpp:sm:3'/>": "unknown", "": "unknown",
	} {
		if got := kindOfRaw([]byte(raw)).String(); got != want {
			t.Errorf("%q: %s, want %s", raw, got, want)
		}
	}
}

// Counting is on the hot path (every stanza read and every batch
// written): it must not allocate.
func TestCountingAllocatesNothing(t *testing.T) {
	st := newStats()
	batch := []item{{b: []byte("<message/>")}, {b: []byte("<r xmlns='urn:xmpp:sm:3'/>"), kind: ackItem}, {b: []byte("<iq/>")}}
	if n := testing.AllocsPerRun(100, func() {
		st.countOut(batch)
		st.in[kindOfRaw(batch[0].b)].Add(1)
		st.closes.add(closeReason(nil, true))
		st.logins.add("SCRAM-SHA-256")
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
	if got := st.out[1].Load(); got != 101 {
		t.Errorf("%d messages out, want 101", got)
	}
}
