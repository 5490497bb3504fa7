package s2s

import "testing"

// TestDialbackKey checks the key generation of XEP-0220 §2.2.2 against
// the specification's own example: HMAC-SHA256 keyed with SHA-256 of the
// secret, over "Receiving Server, Originating Server, Stream ID", in hex.
func TestDialbackKey(t *testing.T) {
	const want = "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
	secret := []byte("d14lb4ck43v3r")
	if got := dialbackKey(secret, "capulet.example", "montague.example", "417GAF25"); got != want {
		t.Errorf("dialbackKey = %s, want %s", got, want)
	}
	if !validKey(secret, "capulet.example", "montague.example", "417GAF25", want) {
		t.Error("validKey refuses the key it made")
	}
	// The key is bound to each of its inputs.
	for _, c := range []struct{ secret, receiving, originating, id, key string }{
		{"another secret", "capulet.example", "montague.example", "417GAF25", want},
		{"d14lb4ck43v3r", "evil.example", "montague.example", "417GAF25", want},
		{"d14lb4ck43v3r", "capulet.example", "evil.example", "417GAF25", want},
		{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF26", want},
		{"d14lb4ck43v3r", "montague.example", "capulet.example", "417GAF25", want},
		{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25", want[:63]},
		{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25", ""},
		// The separators count: no other split of the same bytes.
		{"d14lb4ck43v3r", "capulet.example montague.example", "", "417GAF25", want},
	} {
		if validKey([]byte(c.secret), c.receiving, c.originating, c.id, c.key) {
			t.Errorf("validKey(%q, %q, %q, %q, %q) = true", c.secret, c.receiving, c.originating, c.id, c.key)
		}
	}
}
