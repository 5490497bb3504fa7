package auth

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/fakeclock"
)

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

func TestThrottle(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(3, time.Minute, clk.Now)
	for i := range 3 {
		if !th.Allowed("a") {
			t.Fatalf("refused after %d failures", i)
		}
		th.Failed("a")
		clk.Advance(time.Second)
	}
	if th.Allowed("a") {
		t.Fatal("allowed after 3 failures")
	}
	if !th.Allowed("b") {
		t.Fatal("other key refused")
	}
	// Sliding window: the first failure (t=0) leaves at t=60s.
	clk.Advance(56 * time.Second) // t=59s
	if th.Allowed("a") {
		t.Fatal("allowed before the first failure left the window")
	}
	clk.Advance(time.Second) // t=60s
	if !th.Allowed("a") {
		t.Fatal("still refused after the first failure left the window")
	}
	th.Failed("a")
	if th.Allowed("a") {
		t.Fatal("allowed with 3 failures in the window again")
	}
	th.Succeeded("a")
	if !th.Allowed("a") {
		t.Fatal("refused after Succeeded")
	}
	th.Failed("a")
	th.Failed("a")
	if !th.Allowed("a") {
		t.Fatal("Succeeded did not clear the failures")
	}
}

// TestThrottleKeepsBlocking: failures while refused keep the key refused.
func TestThrottleKeepsBlocking(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(2, time.Minute, clk.Now)
	for range 10 {
		th.Failed("a")
		clk.Advance(40 * time.Second)
		th.Failed("a")
		if th.Allowed("a") {
			t.Fatal("allowed while failing every 40s")
		}
	}
	clk.Advance(time.Minute)
	if !th.Allowed("a") {
		t.Fatal("refused after a quiet window")
	}
}

func TestThrottleDisabled(t *testing.T) {
	for _, th := range []*Throttle{NewThrottle(0, time.Minute, nil), NewThrottle(3, 0, nil)} {
		for range 10 {
			th.Failed("a")
		}
		if !th.Allowed("a") {
			t.Error("disabled throttle refused")
		}
	}
}

// TestThrottleBounded: a scan from many addresses does not grow the map
// beyond what failed within one window.
func TestThrottleBounded(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(5, time.Minute, clk.Now)
	peak := 0
	for i := range 200_000 {
		th.Failed("10.0." + strconv.Itoa(i))
		clk.Advance(time.Millisecond) // 60,000 keys per window
		th.mu.Lock()
		peak = max(peak, len(th.entries))
		th.mu.Unlock()
	}
	if peak > 2*60_000+minSweepAt {
		t.Errorf("map peaked at %d entries", peak)
	}
	clk.Advance(time.Minute)
	th.Failed("last")
	th.mu.Lock()
	n := len(th.entries)
	th.mu.Unlock()
	if n != 1 {
		t.Errorf("%d entries after a quiet window, want 1", n)
	}
}

func TestThrottleConcurrent(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(1000, time.Minute, clk.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := strconv.Itoa(i % 10)
				th.Failed(k)
				th.Allowed(k)
				if i%50 == g {
					th.Succeeded(k)
				}
				clk.Advance(time.Millisecond)
			}
		})
	}
	wg.Wait()
}
