package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/starling-xmpp/starling/storage"
)

// FuzzServer feeds arbitrary client messages to every mechanism: no panic,
// and every error is a *Failure.
func FuzzServer(f *testing.F) {
	f.Add(uint8(0), []byte("n,,n=user,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(uint8(3), []byte("p=tls-exporter,a=x=2Cy,n=user,r=abc"), []byte("c=cD10bHMtZXhwb3J0ZXIsLA==,r=abc,p="))
	f.Add(uint8(6), []byte("\x00user\x00pencil"), []byte(nil))
	f.Add(uint8(1), []byte(nil), []byte("y,,n=nobody,r=\x7f"))
	cb := ChannelBinding{Exporter: make([]byte, 32), EndPoint: make([]byte, 32)}
	mechs := Mechanisms(cb, true)
	// Cheap keys: the fuzzer should explore parsing, not PBKDF2.
	keys := map[storage.Hash]storage.SCRAMKeys{}
	for _, fam := range families {
		k, _ := deriveKeys(fam, "pencil", []byte("salt"), 1)
		keys[fam.id] = k
	}
	lookup := func(_ context.Context, u string) (map[storage.Hash]storage.SCRAMKeys, error) {
		if u == "user" {
			return keys, nil
		}
		return nil, storage.ErrNotFound
	}
	f.Fuzz(func(t *testing.T, m uint8, first, final []byte) {
		s, err := NewServer(mechs[int(m)%len(mechs)], cb, true, lookup)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, in := range [][]byte{first, final} {
			_, done, err := s.Step(ctx, in)
			var fl *Failure
			if err != nil && !errors.As(err, &fl) {
				t.Fatalf("non-Failure error %T %v", err, err)
			}
			if err != nil || done {
				return
			}
		}
	})
}
