package auth

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/storage"
)

// TestUnknownUserIterations: the server-first message of an unknown user,
// or of an account without keys of the family, carries the configured
// iteration count (the Server's Iterations), the count of an account whose
// password was set now, for every SCRAM family (RFC 5802 §9); PLAIN checks
// an unknown user against keys of that count.
func TestUnknownUserIterations(t *testing.T) {
	for _, n := range []int{0, MinIterations, 20000, 65536} {
		want := n
		if n == 0 {
			want = DefaultIterations
		}
		for _, f := range families {
			for _, user := range []string{"nobody", "nokeys", "only1"} {
				if user == "only1" && f.id == storage.SHA1 {
					continue // a real account with SHA-1 keys
				}
				s, err := NewServer(f.mech, ChannelBinding{}, false, testLookup)
				if err != nil {
					t.Fatal(err)
				}
				s.Iterations = n
				out, _, err := s.Step(context.Background(), []byte("n,,n="+user+",r=abc"))
				if err != nil {
					t.Fatalf("%s %s: %v", f.mech, user, err)
				}
				_, _, i, err := parseServerFirst(string(out))
				if err != nil {
					t.Fatal(err)
				}
				if i != want {
					t.Errorf("Iterations %d, %s, %s: i=%d, want %d", n, f.mech, user, i, want)
				}
			}
		}
		for _, k := range dummyKeys("nobody", want) {
			if k.Iterations != want {
				t.Errorf("Iterations %d: PLAIN's dummy keys have %d", n, k.Iterations)
			}
		}
	}
}

// TestExistingKeysAfterSettingChange: an account whose keys were stored
// with 4096 iterations keeps logging in with SCRAM (every family, the
// server-first message showing its own count) and PLAIN after the setting
// is raised, while an unknown user is shown the new count.
func TestExistingKeysAfterSettingChange(t *testing.T) {
	old, err := DeriveKeys(testPassword, 4096)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, user string) (map[storage.Hash]storage.SCRAMKeys, error) {
		if user == "old" {
			return old, nil
		}
		return nil, storage.ErrNotFound
	}
	const setting = 50000
	newServer := func(mech string) *Server {
		s, err := NewServer(mech, ChannelBinding{}, true, lookup)
		if err != nil {
			t.Fatal(err)
		}
		s.Iterations = setting
		return s
	}
	for _, tc := range []struct {
		mech string
		h    func() hash.Hash
	}{{"SCRAM-SHA-1", nil}, {"SCRAM-SHA-256", sha256.New}, {"SCRAM-SHA-512", sha512.New}} {
		t.Run(tc.mech, func(t *testing.T) {
			if tc.h == nil {
				if err := runMellium(t, newServer(tc.mech), sasl.ScramSha1, "old", testPassword, ""); err != nil {
					t.Fatalf("login: %v", err)
				}
				return
			}
			c := &scramClient{h: tc.h, user: "old", password: testPassword, gs2: "n,,"}
			s := newServer(tc.mech)
			sf, _, err := s.Step(context.Background(), c.clientFirst())
			if err != nil {
				t.Fatal(err)
			}
			if _, _, i, _ := parseServerFirst(string(sf)); i != 4096 {
				t.Errorf("i=%d, want the stored 4096", i)
			}
			cf, err := c.clientFinal(sf)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Step(context.Background(), cf)
			if err != nil || !done {
				t.Fatalf("login: %v, %v", done, err)
			}
			if err := c.checkServerFinal(out); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("PLAIN", func(t *testing.T) {
		s := newServer("PLAIN")
		if _, done, err := s.Step(context.Background(), []byte("\x00old\x00"+testPassword)); err != nil || !done {
			t.Fatalf("login: %v, %v", done, err)
		}
		s = newServer("PLAIN")
		if _, _, err := s.Step(context.Background(), []byte("\x00old\x00wrong")); failureOf(t, err).Condition != NotAuthorized {
			t.Errorf("wrong password: %v", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		s := newServer("SCRAM-SHA-256")
		sf, _, err := s.Step(context.Background(), []byte("n,,n=nobody,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, i, _ := parseServerFirst(string(sf)); i != setting {
			t.Errorf("unknown user: i=%d, want %d", i, setting)
		}
	})
}
