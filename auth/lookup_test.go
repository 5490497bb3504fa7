package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/starling-xmpp/starling/storage"
)

// TestLookupFailure: a *Failure returned by the Lookup is the exchange's
// answer as it is, before the password matters: at PLAIN's only message
// and at SCRAM's client-first message.
func TestLookupFailure(t *testing.T) {
	refuse := &Failure{Condition: TemporaryAuthFailure, Text: "too many failed attempts"}
	calls := 0
	lookup := func(ctx context.Context, username string) (map[storage.Hash]storage.SCRAMKeys, error) {
		calls++
		return nil, fmt.Errorf("throttled %q: %w", username, refuse)
	}
	for _, tc := range []struct{ mech, in string }{
		{"PLAIN", "\x00user\x00" + testPassword},
		{"PLAIN", "\x00user\x00wrong"},
		{"SCRAM-SHA-256", "n,,n=user,r=" + base64.StdEncoding.EncodeToString([]byte("client-nonce"))},
	} {
		calls = 0
		s, err := NewServer(tc.mech, ChannelBinding{}, true, lookup)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := s.Step(context.Background(), []byte(tc.in))
		f := failureOf(t, err)
		if done || f.Condition != refuse.Condition || f.Text != refuse.Text || calls != 1 {
			t.Errorf("%s %q: done=%v failure=%v lookups=%d", tc.mech, tc.in, done, f, calls)
		}
		if s.Username() != "user" {
			t.Errorf("%s: Username() = %q", tc.mech, s.Username())
		}
	}
}
