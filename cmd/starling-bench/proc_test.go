package main

import (
	"os"
	"testing"
	"time"
)

// TestProcCPU: the server's CPU time is read with nanosecond precision, so
// that a run shorter than a clock tick does not read 0 (the presence
// scenario's test failed about one run in two on that), and it agrees with
// getrusage for this process.
func TestProcCPU(t *testing.T) {
	pid := os.Getpid()
	before, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	self := selfCPU()
	for selfCPU()-self < 3*time.Millisecond { // less than one tick
	}
	after, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 2*time.Millisecond {
		t.Errorf("3 ms of CPU read as %v", d)
	}
	if total := selfCPU(); after > total+20*time.Millisecond || after < total/2 {
		t.Errorf("procCPU %v, getrusage %v", after, total)
	}
	if _, err := statCPU(pid); err != nil {
		t.Error(err)
	}
}
