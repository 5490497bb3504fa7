package config

import (
	"errors"
	"testing"

	"github.com/starling-xmpp/starling/auth"
)

// TestSCRAMIterationsRange: auth.scram_iterations from 4096 (RFC 7677 §4)
// to 65536 (Cyrus SASL's client limit); anything else is a problem named
// by its key path.
func TestSCRAMIterationsRange(t *testing.T) {
	for _, n := range []int{4096, 10000, 50000, 65536} {
		c := Default()
		c.Auth.SCRAMIterations = n
		if err := c.Validate(); err != nil {
			t.Errorf("%d: %v", n, err)
		}
	}
	for _, n := range []int{0, -1, 1000, 4095, 65537, 10000000} {
		c := Default()
		c.Auth.SCRAMIterations = n
		p, ok := errors.AsType[*Problems](c.Validate())
		if !ok || len(p.List) != 1 {
			t.Errorf("%d: Validate() = %v, want one problem", n, p)
			continue
		}
		if p.List[0].Path != "auth.scram_iterations" {
			t.Errorf("%d: problem %s, want one at auth.scram_iterations", n, p.List[0])
		}
	}
}

// TestSCRAMIterationsMatchAuth: the default and the floor are the auth
// package's, which config does not import.
func TestSCRAMIterationsMatchAuth(t *testing.T) {
	if got := Default().Auth.SCRAMIterations; got != auth.DefaultIterations {
		t.Errorf("default auth.scram_iterations %d, auth.DefaultIterations %d", got, auth.DefaultIterations)
	}
	if MinSCRAMIterations != auth.MinIterations {
		t.Errorf("MinSCRAMIterations %d, auth.MinIterations %d", MinSCRAMIterations, auth.MinIterations)
	}
}

// TestSCRAMHashes: auth.scram_hashes names at least one of the three
// families, each once; anything else is a problem at that key.
func TestSCRAMHashes(t *testing.T) {
	for _, hs := range [][]string{{"SHA-1"}, {"SHA-512", "SHA-1"}, {"SHA-1", "SHA-256", "SHA-512"}} {
		c := Default()
		c.Auth.SCRAMHashes = hs
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", hs, err)
		}
	}
	for _, hs := range [][]string{nil, {}, {"SHA1"}, {"sha-256"}, {"SHA-1", "SHA-1"}, {"MD5"}} {
		c := Default()
		c.Auth.SCRAMHashes = hs
		p, ok := errors.AsType[*Problems](c.Validate())
		if !ok || len(p.List) != 1 || p.List[0].Path != "auth.scram_hashes" {
			t.Errorf("%q: Validate() = %v, want one problem at auth.scram_hashes", hs, p)
		}
	}
}
