package auth

import (
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
	if _, err := DeriveKeys(""); err != ErrInvalidPassword {
		t.Errorf("DeriveKeys(\"\") = %v", err)
	}
}
