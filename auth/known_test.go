package auth

import (
	"strconv"
	"testing"
	"time"
)

func TestKnownAddrs(t *testing.T) {
	clk := newFakeClock()
	k := NewKnownAddrs(30*24*time.Hour, clk.Now)
	if k.Known("dave@example.org", "192.0.2.1") {
		t.Fatal("known before any login")
	}
	k.Add("dave@example.org", "192.0.2.1")
	if !k.Known("dave@example.org", "192.0.2.1") {
		t.Fatal("not known after a login")
	}
	if k.Known("dave@example.org", "192.0.2.2") || k.Known("erin@example.org", "192.0.2.1") {
		t.Fatal("known for another address or account")
	}
	clk.Advance(29 * 24 * time.Hour)
	if !k.Known("dave@example.org", "192.0.2.1") {
		t.Fatal("forgotten within retention")
	}
	clk.Advance(24 * time.Hour)
	if k.Known("dave@example.org", "192.0.2.1") {
		t.Fatal("still known after retention")
	}
}

// TestKnownAddrsRecent: an account keeps its KnownPerAccount most recent
// addresses; logging in again from one keeps it.
func TestKnownAddrsRecent(t *testing.T) {
	clk := newFakeClock()
	k := NewKnownAddrs(30*24*time.Hour, clk.Now)
	for i := range KnownPerAccount {
		k.Add("dave", "10.0.0."+strconv.Itoa(i))
		clk.Advance(time.Minute)
	}
	k.Add("dave", "10.0.0.0") // the oldest, used again
	clk.Advance(time.Minute)
	k.Add("dave", "10.0.0.99") // replaces 10.0.0.1, now the least recent
	for i := range KnownPerAccount {
		if want := i != 1; k.Known("dave", "10.0.0."+strconv.Itoa(i)) != want {
			t.Errorf("10.0.0.%d known = %v, want %v", i, !want, want)
		}
	}
	if !k.Known("dave", "10.0.0.99") {
		t.Error("the newest address is not known")
	}
}

// TestKnownAddrsSweep: accounts with nothing left to remember are dropped.
func TestKnownAddrsSweep(t *testing.T) {
	clk := newFakeClock()
	k := NewKnownAddrs(24*time.Hour, clk.Now)
	for i := range 1000 {
		k.Add("user"+strconv.Itoa(i), "10.0.0.1")
	}
	clk.Advance(25 * time.Hour)
	k.Add("last", "10.0.0.1")
	if n := len(k.accounts); n != 1 {
		t.Errorf("%d accounts remembered after retention, want 1", n)
	}
}

// BenchmarkKnownAddrs: the known-address check and record of a login.
func BenchmarkKnownAddrs(b *testing.B) {
	k := NewKnownAddrs(30*24*time.Hour, nil)
	b.ReportAllocs()
	for b.Loop() {
		k.Known("dave@example.org", "192.0.2.7")
		k.Add("dave@example.org", "192.0.2.7")
	}
}
