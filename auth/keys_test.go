package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"fmt"
	"maps"
	"testing"

	"github.com/starling-xmpp/starling/storage"
)

func TestDeriveAndCheckPassword(t *testing.T) {
	keys := testKeys()
	for _, h := range storage.Hashes {
		f, _ := familyOf(h)
		if k, ok := keys[h]; !ok || !usable(f, k) || k.Iterations != DefaultIterations || len(k.Salt) != saltLen {
			t.Errorf("%s: bad keys %+v", h, k)
		}
	}
	if !CheckPassword(keys, testPassword) {
		t.Error("right password refused")
	}
	for _, pw := range []string{"", "Pencil", "wrong", "pen\u0007cil"} {
		if CheckPassword(keys, pw) {
			t.Errorf("CheckPassword(%q) = true", pw)
		}
	}
	if CheckPassword(nil, testPassword) {
		t.Error("CheckPassword without keys = true")
	}
	if _, err := DeriveKeys("", DefaultIterations); err != ErrInvalidPassword {
		t.Errorf("DeriveKeys(\"\") = %v", err)
	}
}

// TestDeriveKeysIterations: keys carry the iteration count they were
// derived with and verify with it; fewer than RFC 7677 §4's 4096 is refused.
func TestDeriveKeysIterations(t *testing.T) {
	const n = MinIterations + 1
	keys, err := DeriveKeys(testPassword, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range storage.Hashes {
		if k := keys[h]; k.Iterations != n {
			t.Errorf("%s: Iterations = %d, want %d", h, k.Iterations, n)
		}
	}
	if !CheckPassword(keys, testPassword) || CheckPassword(keys, "wrong") {
		t.Error("CheckPassword does not use the stored count")
	}
	// The stored count is what makes them verify: the same salt at
	// another count gives other keys.
	f := families[0]
	other, err := deriveKeys(f, testPassword, keys[f.id].Salt, n+1)
	if err != nil {
		t.Fatal(err)
	}
	if string(other.StoredKey) == string(keys[f.id].StoredKey) {
		t.Error("the iteration count does not change the keys")
	}
	for _, bad := range []int{0, -1, MinIterations - 1} {
		if _, err := DeriveKeys(testPassword, bad); err == nil || err == ErrInvalidPassword {
			t.Errorf("DeriveKeys(%d iterations) = %v, want a count error", bad, err)
		}
	}
}

// BenchmarkPBKDF2 measures Hi() (RFC 5802 §2.2), the PBKDF2 run that a
// client pays at each SCRAM login (unless it caches SaltedPassword) and
// the server at each PLAIN login and when a password is set, per hash
// family and iteration count: the figures behind DefaultIterations
// (docs/scram-iterations.md).
func BenchmarkPBKDF2(b *testing.B) {
	salt := make([]byte, saltLen)
	for _, f := range families {
		for _, n := range []int{4096, 10000, 50000} {
			b.Run(fmt.Sprintf("%s/%d", f.mech[len("SCRAM-"):], n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := pbkdf2.Key(f.new, testPassword, salt, n, f.size); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDeriveKeys is the server's cost of setting a password
// (registration, `starling user add/passwd`): PBKDF2 for every family.
func BenchmarkDeriveKeys(b *testing.B) {
	for _, n := range []int{4096, 10000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DeriveKeys(testPassword, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCheckPasswordCheapest: PLAIN checks the password against the
// cheapest family stored (SHA-256), falling back to the others.
func TestCheckPasswordCheapest(t *testing.T) {
	keys := testKeys()
	garbled := func(h storage.Hash) map[storage.Hash]storage.SCRAMKeys {
		k := maps.Clone(keys)
		g := k[h]
		g.StoredKey = bytes.Repeat([]byte{1}, len(g.StoredKey))
		k[h] = g
		return k
	}
	if !CheckPassword(garbled(storage.SHA512), testPassword) || !CheckPassword(garbled(storage.SHA1), testPassword) {
		t.Error("not checked against SHA-256 first")
	}
	if CheckPassword(garbled(storage.SHA256), testPassword) {
		t.Error("SHA-256 not used although stored")
	}
	only512 := map[storage.Hash]storage.SCRAMKeys{storage.SHA512: keys[storage.SHA512]}
	if !CheckPassword(only512, testPassword) || CheckPassword(only512, "wrong") {
		t.Error("SHA-512 alone not used")
	}
}
