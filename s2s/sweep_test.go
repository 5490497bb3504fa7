package s2s

import (
	"fmt"
	"testing"
	"time"
)

// TestSweep checks that links which failed long ago are forgotten once
// there are many (stanzas to ever new unreachable domains must not hold
// memory for each), and that recent failures, whose backoff still
// matters, are kept.
func TestSweep(t *testing.T) {
	cfg, f, _, clock := testFederation(t)
	// minSweep failed links: half long past their window, half recent.
	old := clock.Now().Add(-cfg.S2S.MaxRetryDelay.Duration - time.Hour)
	f.mu.Lock()
	for i := range minSweep {
		p := pair{local: "local.test", remote: fmt.Sprintf("d%d.test", i)}
		l := &link{f: f, p: p, state: failed, retryAt: clock.Now().Add(time.Minute), lastErr: &failure{reason: "test"}}
		if i%2 == 0 {
			l.retryAt = old
		}
		f.links[p] = l
	}
	f.mu.Unlock()
	// A new domain's link sweeps the old failures first.
	f.getLink(pair{local: "local.test", remote: "new.test"})
	f.mu.Lock()
	n := len(f.links)
	_, recent := f.links[pair{local: "local.test", remote: "d1.test"}]
	_, stale := f.links[pair{local: "local.test", remote: "d0.test"}]
	f.mu.Unlock()
	if n != minSweep/2+1 || !recent || stale {
		t.Fatalf("after the sweep: %d links (want %d), recent kept %v, stale kept %v", n, minSweep/2+1, recent, stale)
	}
}
