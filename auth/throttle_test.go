package auth

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/fakeclock"
)

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// failOnce runs one attempt of key that ends in a failure.
func failOnce(t *testing.T, th *Throttle, key string) {
	t.Helper()
	if !th.Begin(key) {
		t.Fatalf("%s refused", key)
	}
	th.End(key, true)
}

func TestThrottle(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(3, time.Minute, clk.Now)
	for range 3 {
		failOnce(t, th, "a")
		clk.Advance(time.Second)
	}
	if th.Begin("a") {
		t.Fatal("allowed after 3 failures")
	}
	if !th.Begin("b") {
		t.Fatal("other key refused")
	}
	th.End("b", false)
	// Sliding window: the first failure (t=0) leaves at t=60s.
	clk.Advance(56 * time.Second) // t=59s
	if th.Begin("a") {
		t.Fatal("allowed before the first failure left the window")
	}
	clk.Advance(time.Second) // t=60s
	if !th.Begin("a") {
		t.Fatal("still refused after the first failure left the window")
	}
	th.End("a", true)
	if th.Begin("a") {
		t.Fatal("allowed with 3 failures in the window again")
	}
}

// TestThrottleSuccessForgetsNothing: a success does not reset the count,
// so a guesser with an account of his own cannot reset his address's.
func TestThrottleSuccessForgetsNothing(t *testing.T) {
	th := NewThrottle(3, time.Minute, newFakeClock().Now)
	failOnce(t, th, "a")
	failOnce(t, th, "a")
	if !th.Begin("a") {
		t.Fatal("refused after 2 failures")
	}
	th.End("a", false)
	failOnce(t, th, "a")
	if th.Begin("a") {
		t.Fatal("a success reset the failures")
	}
}

// TestThrottlePending: attempts in progress count against the limit until
// they end; one that ends without a failure gives its place back.
func TestThrottlePending(t *testing.T) {
	th := NewThrottle(3, time.Minute, newFakeClock().Now)
	for i := range 3 {
		if !th.Begin("a") {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if th.Begin("a") {
		t.Fatal("a fourth attempt allowed while three are in progress")
	}
	th.End("a", false)
	if !th.Begin("a") {
		t.Fatal("the place of an attempt that ended was not given back")
	}
	for range 3 {
		th.End("a", true)
	}
	if th.Begin("a") {
		t.Fatal("allowed after 3 failures")
	}
}

// TestThrottleConcurrentAttempts: of many attempts for one key begun at
// once, at most the limit's worth go ahead (issue 10 part 3: the check and
// the record were apart, and 150 simultaneous logins from one address had
// 14 passwords checked with a limit of 10).
func TestThrottleConcurrentAttempts(t *testing.T) {
	th := NewThrottle(10, time.Minute, newFakeClock().Now)
	var allowed atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 150 {
		wg.Go(func() {
			<-start
			if th.Begin("addr") {
				allowed.Add(1)
				th.End("addr", true) // a wrong password
			}
		})
	}
	close(start)
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("%d of 150 concurrent attempts went ahead, want 10", n)
	}
}

// TestThrottleKeepsBlocking: failures keep the key refused.
func TestThrottleKeepsBlocking(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(2, time.Minute, clk.Now)
	failOnce(t, th, "a")
	for range 10 {
		clk.Advance(40 * time.Second)
		failOnce(t, th, "a")
		if th.Begin("a") {
			t.Fatal("allowed while failing every 40s")
		}
	}
	clk.Advance(time.Minute)
	if !th.Begin("a") {
		t.Fatal("refused after a quiet window")
	}
}

func TestThrottleDisabled(t *testing.T) {
	for _, th := range []*Throttle{NewThrottle(0, time.Minute, nil), NewThrottle(3, 0, nil)} {
		for range 10 {
			failOnce(t, th, "a")
		}
		if len(th.entries) != 0 {
			t.Error("a disabled throttle keeps records")
		}
	}
}

func TestThrottleSetLimits(t *testing.T) {
	th := NewThrottle(5, time.Minute, newFakeClock().Now)
	failOnce(t, th, "a")
	failOnce(t, th, "a")
	th.SetLimits(2, time.Minute)
	if th.Begin("a") {
		t.Fatal("allowed with 2 failures under a limit lowered to 2")
	}
	th.SetLimits(0, time.Minute)
	if !th.Begin("a") {
		t.Fatal("refused with throttling turned off")
	}
	th.End("a", true)
}

// TestThrottleBounded: a scan from many addresses does not grow the map
// beyond what failed within one window.
func TestThrottleBounded(t *testing.T) {
	clk := newFakeClock()
	th := NewThrottle(5, time.Minute, clk.Now)
	peak := 0
	for i := range 200_000 {
		failOnce(t, th, "10.0."+strconv.Itoa(i))
		clk.Advance(time.Millisecond) // 60,000 keys per window
		th.mu.Lock()
		peak = max(peak, len(th.entries))
		th.mu.Unlock()
	}
	if peak > 2*60_000+minSweepAt {
		t.Errorf("map peaked at %d entries", peak)
	}
	clk.Advance(time.Minute)
	failOnce(t, th, "last")
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
				if th.Begin(k) {
					th.End(k, i%50 != g)
				}
				clk.Advance(time.Millisecond)
			}
		})
	}
	wg.Wait()
	th.mu.Lock()
	defer th.mu.Unlock()
	for k, e := range th.entries {
		if e.pending != 0 {
			t.Errorf("%s: %d attempts still pending", k, e.pending)
		}
	}
}

// BenchmarkThrottleLogin: what a successful login costs the throttles: an
// attempt begun and ended on an address and an account.
func BenchmarkThrottleLogin(b *testing.B) {
	addr := NewThrottle(20, 5*time.Minute, nil)
	account := NewThrottle(10, 5*time.Minute, nil)
	b.ReportAllocs()
	for b.Loop() {
		addr.Begin("192.0.2.7")
		account.Begin("dave@example.org")
		account.End("dave@example.org", false)
		addr.End("192.0.2.7", false)
	}
}
