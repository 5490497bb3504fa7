package testbin

import "testing"

// TestFreePortDistinct: ports are never handed out twice in one process,
// even when the kernel gives a port just closed out again.
func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
	}
}
