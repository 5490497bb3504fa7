package auth

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestPLAIN(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		in      string
		want    string // failure condition, "" for success
		user    string // Username() afterwards
		authzid string
	}{
		{"ok", "\x00user\x00" + testPassword, "", "user", ""},
		{"ok case-mapped", "\x00UsEr\x00" + testPassword, "", "user", ""},
		{"ok authzid", "user@example.org\x00user\x00" + testPassword, "", "user", "user@example.org"},
		{"wrong password", "\x00user\x00wrong", NotAuthorized, "user", ""},
		{"unknown user", "\x00nobody\x00" + testPassword, NotAuthorized, "nobody", ""},
		{"keyless account", "\x00nokeys\x00" + testPassword, NotAuthorized, "nokeys", ""},
		{"storage down", "\x00broken\x00" + testPassword, TemporaryAuthFailure, "broken", ""},
		{"empty password", "\x00user\x00", MalformedRequest, "user", ""},
		{"empty authcid", "\x00\x00" + testPassword, MalformedRequest, "", ""},
		{"username not PRECIS", "\x00two words\x00" + testPassword, NotAuthorized, "", ""},
		{"one NUL", "user\x00" + testPassword, MalformedRequest, "", ""},
		{"no NUL", "user" + testPassword, MalformedRequest, "", ""},
		{"three NULs", "\x00user\x00pen\x00cil", MalformedRequest, "", ""},
		{"not UTF-8", "\x00user\x00\xff\xfe", MalformedRequest, "", ""},
		{"garbage", "\x80\x00\x81\x00\x82", MalformedRequest, "", ""},
		{"password not OpaqueString", "\x00user\x00pen\u0007cil", NotAuthorized, "user", ""},
		{"too long", "\x00user\x00" + strings.Repeat("p", maxInput), MalformedRequest, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer("PLAIN", ChannelBinding{}, true, testLookup)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Step(ctx, []byte(tc.in))
			if len(out) != 0 {
				t.Errorf("PLAIN returned data %q", out)
			}
			if tc.want == "" {
				if err != nil || !done {
					t.Fatalf("Step = %v, %v", done, err)
				}
			} else {
				if done {
					t.Fatal("done despite a failure")
				}
				if f := failureOf(t, err); f.Condition != tc.want {
					t.Fatalf("got %v, want %s", f, tc.want)
				}
			}
			if s.Username() != tc.user || s.Authzid() != tc.authzid {
				t.Errorf("Username, Authzid = %q, %q; want %q, %q", s.Username(), s.Authzid(), tc.user, tc.authzid)
			}
		})
	}
}

func TestPLAINNoInitialResponse(t *testing.T) {
	ctx := context.Background()
	s, _ := NewServer("PLAIN", ChannelBinding{}, true, testLookup)
	out, done, err := s.Step(ctx, nil)
	if err != nil || done || len(out) != 0 {
		t.Fatalf("empty initial response: %q, %v, %v", out, done, err)
	}
	if _, done, err := s.Step(ctx, []byte("\x00user\x00"+testPassword)); err != nil || !done {
		t.Fatalf("response: %v, %v", done, err)
	}

	s, _ = NewServer("PLAIN", ChannelBinding{}, true, testLookup)
	s.Step(ctx, nil)
	if _, _, err := s.Step(ctx, nil); failureOf(t, err).Condition != MalformedRequest {
		t.Fatalf("second empty message: %v", err)
	}
}

func TestPLAINUnencrypted(t *testing.T) {
	_, err := NewServer("PLAIN", ChannelBinding{}, false, testLookup)
	f := failureOf(t, err)
	if f.Condition != EncryptionRequired {
		t.Fatalf("got %v", f)
	}
	if !bytes.Contains(f.Bytes(), []byte("<encryption-required/>")) {
		t.Errorf("Bytes = %s", f.Bytes())
	}
}
