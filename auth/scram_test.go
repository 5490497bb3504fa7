package auth

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"hash"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/starling-xmpp/starling/storage"
)

func TestMechanisms(t *testing.T) {
	all := []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
	for _, tc := range []struct {
		name      string
		cb        ChannelBinding
		encrypted bool
		want      []string
	}{
		{"plaintext", ChannelBinding{}, false, all[3:6]},
		{"tls without cb", ChannelBinding{}, true, all[3:]},
		{"tls 1.3", ChannelBinding{Exporter: []byte{1}, EndPoint: []byte{2}}, true, all},
		{"tls 1.2", ChannelBinding{EndPoint: []byte{2}}, true, all},
	} {
		if got := Mechanisms(tc.cb, tc.encrypted); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Mechanisms = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewServer(t *testing.T) {
	cb := ChannelBinding{Exporter: []byte{1}}
	for _, tc := range []struct {
		mech      string
		cb        ChannelBinding
		encrypted bool
		want      string // failure condition, "" for success
	}{
		{"SCRAM-SHA-1", ChannelBinding{}, false, ""},
		{"SCRAM-SHA-256", ChannelBinding{}, false, ""},
		{"SCRAM-SHA-512", ChannelBinding{}, false, ""},
		{"SCRAM-SHA-512-PLUS", cb, true, ""},
		{"PLAIN", ChannelBinding{}, true, ""},
		{"PLAIN", ChannelBinding{}, false, EncryptionRequired},
		{"SCRAM-SHA-256-PLUS", ChannelBinding{}, true, InvalidMechanism},
		{"scram-sha-256", ChannelBinding{}, true, InvalidMechanism},
		{"SCRAM-SHA-384", ChannelBinding{}, true, InvalidMechanism},
		{"DIGEST-MD5", ChannelBinding{}, true, InvalidMechanism},
		{"EXTERNAL", cb, true, InvalidMechanism},
		{"", cb, true, InvalidMechanism},
		{"-PLUS", cb, true, InvalidMechanism},
	} {
		s, err := NewServer(tc.mech, tc.cb, tc.encrypted, testLookup)
		if tc.want == "" {
			if err != nil || s == nil {
				t.Errorf("NewServer(%q) = %v", tc.mech, err)
			}
			continue
		}
		if f := failureOf(t, err); f.Condition != tc.want {
			t.Errorf("NewServer(%q): %v, want %s", tc.mech, f, tc.want)
		}
	}
	if _, err := NewServer("PLAIN", ChannelBinding{}, true, nil); err == nil {
		t.Error("NewServer with nil Lookup succeeded")
	}
}

// TestRFCVectors replays the example exchanges of RFC 5802 §5 (SHA-1) and
// RFC 7677 §3 (SHA-256) with keys derived from their salt and password.
func TestRFCVectors(t *testing.T) {
	for _, tc := range []struct {
		name, mech     string
		fam            storage.Hash
		salt, snonce   string
		c1, s1, c2, s2 string
	}{
		{
			name: "RFC 5802 §5", mech: "SCRAM-SHA-1", fam: storage.SHA1,
			salt: "QSXCR+Q6sek8bf92", snonce: "3rfcNHYJY1ZVvWVs7j",
			c1: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			s1: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			c2: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			s2: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			name: "RFC 7677 §3", mech: "SCRAM-SHA-256", fam: storage.SHA256,
			salt: "W22ZaJ0SNY7soEsUEjb6gQ==", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			c1: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			s1: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			c2: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			s2: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := familyOf(tc.fam)
			salt, _ := base64.StdEncoding.DecodeString(tc.salt)
			k, err := deriveKeys(f, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			lookup := func(_ context.Context, u string) (map[storage.Hash]storage.SCRAMKeys, error) {
				if u != "user" {
					return nil, storage.ErrNotFound
				}
				return map[storage.Hash]storage.SCRAMKeys{tc.fam: k}, nil
			}
			s, err := NewServer(tc.mech, ChannelBinding{}, false, lookup)
			if err != nil {
				t.Fatal(err)
			}
			s.genNonce = func() string { return tc.snonce }
			ctx := context.Background()
			out, done, err := s.Step(ctx, []byte(tc.c1))
			if err != nil || done || string(out) != tc.s1 {
				t.Fatalf("server-first = %q, %v, %v; want %q", out, done, err, tc.s1)
			}
			out, done, err = s.Step(ctx, []byte(tc.c2))
			if err != nil || !done || string(out) != tc.s2 {
				t.Fatalf("server-final = %q, %v, %v; want %q", out, done, err, tc.s2)
			}
			if s.Username() != "user" || s.Authzid() != "" {
				t.Errorf("Username, Authzid = %q, %q", s.Username(), s.Authzid())
			}
		})
	}
}

// TestMelliumClient runs mellium.im/sasl's client mechanisms against the
// server without TLS.
func TestMelliumClient(t *testing.T) {
	for _, tc := range []struct {
		mech       sasl.Mechanism
		encrypted  bool
		user, pass string
		want       string // failure condition; "" for success
	}{
		{sasl.ScramSha1, false, "user", testPassword, ""},
		{sasl.ScramSha256, false, "user", testPassword, ""},
		{sasl.ScramSha256, false, "USER", testPassword, ""}, // UsernameCaseMapped
		{sasl.ScramSha256, false, "user", "wrong", NotAuthorized},
		{sasl.ScramSha1, false, "nobody", testPassword, NotAuthorized},
		{sasl.ScramSha256, false, "only1", testPassword, NotAuthorized},
		{sasl.ScramSha1, false, "only1", testPassword, ""},
		{sasl.ScramSha256, false, "nokeys", testPassword, NotAuthorized},
		{sasl.ScramSha256, false, "broken", testPassword, TemporaryAuthFailure},
		{sasl.ScramSha256, false, "two words", testPassword, NotAuthorized},
		{sasl.Plain, true, "user", testPassword, ""},
		{sasl.Plain, true, "User", testPassword, ""},
		{sasl.Plain, true, "user", "wrong", NotAuthorized},
		{sasl.Plain, true, "nobody", testPassword, NotAuthorized},
		{sasl.Plain, true, "nokeys", testPassword, NotAuthorized},
		{sasl.Plain, true, "broken", testPassword, TemporaryAuthFailure},
	} {
		name := tc.mech.Name + "/" + tc.user + "/" + tc.pass
		t.Run(name, func(t *testing.T) {
			s, err := NewServer(tc.mech.Name, ChannelBinding{}, tc.encrypted, testLookup)
			if err != nil {
				t.Fatal(err)
			}
			err = runMellium(t, s, tc.mech, tc.user, tc.pass, "")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("exchange failed: %v", err)
				}
				if want := strings.ToLower(tc.user); s.Username() != want {
					t.Errorf("Username = %q, want %q", s.Username(), want)
				}
				return
			}
			if f := failureOf(t, err); f.Condition != tc.want {
				t.Fatalf("got %v, want %s", f, tc.want)
			}
			if want := strings.ToLower(tc.user); tc.user != "two words" && s.Username() != want {
				t.Errorf("Username after failure = %q, want %q", s.Username(), want)
			}
		})
	}
}

func TestAuthzid(t *testing.T) {
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	if err := runMellium(t, s, sasl.ScramSha256, "user", testPassword, "user@example.org"); err != nil {
		t.Fatal(err)
	}
	if s.Authzid() != "user@example.org" {
		t.Errorf("SCRAM Authzid = %q", s.Authzid())
	}

	// Escaped authzid and username (RFC 5802 §5.1).
	c := &scramClient{h: sha256.New, user: "user", password: testPassword, gs2: "n,a=a=2Cb=3Dc@example.org,"}
	s, _ = NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	if err := c.run(s); err != nil {
		t.Fatal(err)
	}
	if s.Authzid() != "a,b=c@example.org" {
		t.Errorf("decoded Authzid = %q", s.Authzid())
	}

	s, _ = NewServer("PLAIN", ChannelBinding{}, true, testLookup)
	if err := runMellium(t, s, sasl.Plain, "user", testPassword, "admin@example.org"); err != nil {
		t.Fatal(err)
	}
	if s.Authzid() != "admin@example.org" {
		t.Errorf("PLAIN Authzid = %q", s.Authzid())
	}
}

func TestSHA512(t *testing.T) {
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{{"user", testPassword, true}, {"user", "wrong", false}, {"nobody", testPassword, false}} {
		s, _ := NewServer("SCRAM-SHA-512", ChannelBinding{}, false, testLookup)
		c := &scramClient{h: sha512.New, user: tc.user, password: tc.pass, gs2: "n,,"}
		err := c.run(s)
		if tc.ok && err != nil {
			t.Errorf("%s/%s: %v", tc.user, tc.pass, err)
		}
		if !tc.ok && failureOf(t, err).Condition != NotAuthorized {
			t.Errorf("%s/%s: %v, want not-authorized", tc.user, tc.pass, err)
		}
	}
}

// TestChannelBindingTLS13 uses real tls-exporter (RFC 9266) and
// tls-server-end-point (RFC 5929) data of a TLS 1.3 connection.
func TestChannelBindingTLS13(t *testing.T) {
	cb, ccs := tlsPair(t, tls.VersionTLS13)
	if got := cb.Types(); !slices.Equal(got, []string{TLSExporter, TLSServerEndPoint}) {
		t.Fatalf("Types = %v", got)
	}
	offered := sasl.RemoteMechanisms(Mechanisms(cb, true)...)
	for _, m := range []sasl.Mechanism{sasl.ScramSha1Plus, sasl.ScramSha256Plus} {
		t.Run("mellium "+m.Name, func(t *testing.T) {
			s, err := NewServer(m.Name, cb, true, testLookup)
			if err != nil {
				t.Fatal(err)
			}
			if err := runMellium(t, s, m, "user", testPassword, "", sasl.TLSState(ccs), offered); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("mellium SCRAM-SHA-256 without cb", func(t *testing.T) {
		// The client chose not to bind: "n" is fine even though -PLUS was offered.
		s, _ := NewServer("SCRAM-SHA-256", cb, true, testLookup)
		if err := runMellium(t, s, sasl.ScramSha256, "user", testPassword, "", sasl.TLSState(ccs), offered); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mellium -PLUS wrong password", func(t *testing.T) {
		s, _ := NewServer("SCRAM-SHA-256-PLUS", cb, true, testLookup)
		err := runMellium(t, s, sasl.ScramSha256Plus, "user", "wrong", "", sasl.TLSState(ccs), offered)
		if f := failureOf(t, err); f.Condition != NotAuthorized {
			t.Fatal(f)
		}
	})
	ep := endPointOf(t, ccs)
	for _, tc := range []struct {
		mech string
		h    func() hash.Hash
		typ  string
		data []byte
	}{
		{"SCRAM-SHA-512-PLUS", sha512.New, TLSExporter, cb.Exporter},
		{"SCRAM-SHA-512-PLUS", sha512.New, TLSServerEndPoint, ep},
		{"SCRAM-SHA-256-PLUS", sha256.New, TLSServerEndPoint, ep},
		{"SCRAM-SHA-1-PLUS", sha1.New, TLSServerEndPoint, ep},
	} {
		t.Run(tc.mech+" "+tc.typ, func(t *testing.T) {
			s, _ := NewServer(tc.mech, cb, true, testLookup)
			c := &scramClient{h: tc.h, user: "user", password: testPassword, gs2: "p=" + tc.typ + ",,", cbData: tc.data}
			if err := c.run(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestChannelBindingTLS12: no tls-exporter on TLS 1.2 (RFC 9266 §3), but
// tls-server-end-point works; mellium's client picks tls-unique there,
// which Starling does not offer.
func TestChannelBindingTLS12(t *testing.T) {
	cb, ccs := tlsPair(t, tls.VersionTLS12)
	if got := cb.Types(); !slices.Equal(got, []string{TLSServerEndPoint}) {
		t.Fatalf("Types = %v", got)
	}
	offered := sasl.RemoteMechanisms(Mechanisms(cb, true)...)
	ep := endPointOf(t, ccs)
	if !bytes.Equal(ep, cb.EndPoint) {
		t.Fatal("client and server disagree on tls-server-end-point")
	}
	for _, h := range []struct {
		mech string
		h    func() hash.Hash
	}{{"SCRAM-SHA-512-PLUS", sha512.New}, {"SCRAM-SHA-256-PLUS", sha256.New}, {"SCRAM-SHA-1-PLUS", sha1.New}} {
		s, _ := NewServer(h.mech, cb, true, testLookup)
		c := &scramClient{h: h.h, user: "user", password: testPassword, gs2: "p=tls-server-end-point,,", cbData: ep}
		if err := c.run(s); err != nil {
			t.Errorf("%s: %v", h.mech, err)
		}
	}
	s, _ := NewServer("SCRAM-SHA-256", cb, true, testLookup)
	if err := runMellium(t, s, sasl.ScramSha256, "user", testPassword, "", sasl.TLSState(ccs), offered); err != nil {
		t.Errorf("mellium SCRAM-SHA-256 over TLS 1.2: %v", err)
	}
	s, _ = NewServer("SCRAM-SHA-256-PLUS", cb, true, testLookup)
	err := runMellium(t, s, sasl.ScramSha256Plus, "user", testPassword, "", sasl.TLSState(ccs), offered)
	if f := failureOf(t, err); f.Condition != MalformedRequest {
		t.Errorf("tls-unique: %v, want malformed-request", f)
	}
	// mellium without the mechanism list sends "y" even with a -PLUS mechanism.
	s, _ = NewServer("SCRAM-SHA-256-PLUS", cb, true, testLookup)
	err = runMellium(t, s, sasl.ScramSha256Plus, "user", testPassword, "", sasl.TLSState(ccs))
	if f := failureOf(t, err); f.Condition != MalformedRequest {
		t.Errorf("y with -PLUS: %v, want malformed-request", f)
	}
}

// TestChannelBindingOtherConnection: binding data of another TLS connection
// (a man in the middle relaying the exchange) fails.
func TestChannelBindingOtherConnection(t *testing.T) {
	cb, _ := tlsPair(t, tls.VersionTLS13)
	_, other := tlsPair(t, tls.VersionTLS13)
	s, _ := NewServer("SCRAM-SHA-256-PLUS", cb, true, testLookup)
	err := runMellium(t, s, sasl.ScramSha256Plus, "user", testPassword, "", sasl.TLSState(other), sasl.RemoteMechanisms(Mechanisms(cb, true)...))
	if f := failureOf(t, err); f.Condition != NotAuthorized {
		t.Fatalf("got %v, want not-authorized", f)
	}
}

// TestSCRAMBadInput feeds malformed or hostile messages; every failure is a
// *Failure with the expected condition, at the expected step.
func TestSCRAMBadInput(t *testing.T) {
	cb := ChannelBinding{Exporter: bytes.Repeat([]byte{7}, 32), EndPoint: bytes.Repeat([]byte{9}, 32)}
	good := func(gs2 string, data []byte, mutate func(string) string) func(*scramClient, []byte) []byte {
		return func(c *scramClient, sf []byte) []byte {
			c.gs2, c.cbData = gs2, data
			cf, err := c.clientFinal(sf)
			if err != nil {
				panic(err)
			}
			if mutate != nil {
				return []byte(mutate(string(cf)))
			}
			return cf
		}
	}
	const cn = "fyko+d2lbbFgONRv9qkxdawL"
	for _, tc := range []struct {
		name  string
		mech  string
		cb    ChannelBinding
		first string
		final func(*scramClient, []byte) []byte // nil: the failure is at the first step
		want  string
	}{
		{"unknown flag", "SCRAM-SHA-256", cb, "x,,n=user,r=" + cn, nil, MalformedRequest},
		{"no gs2 header", "SCRAM-SHA-256", cb, "n=user,r=" + cn, nil, MalformedRequest},
		{"one comma", "SCRAM-SHA-256", cb, "n,n=user,r=" + cn, nil, MalformedRequest},
		{"flag only", "SCRAM-SHA-256", cb, "n,", nil, MalformedRequest},
		{"empty cb name", "SCRAM-SHA-256-PLUS", cb, "p=,,n=user,r=" + cn, nil, MalformedRequest},
		{"bad cb name", "SCRAM-SHA-256-PLUS", cb, "p=tls exporter,,n=user,r=" + cn, nil, MalformedRequest},
		{"not authzid", "SCRAM-SHA-256", cb, "n,b=x,n=user,r=" + cn, nil, MalformedRequest},
		{"empty authzid", "SCRAM-SHA-256", cb, "n,a=,n=user,r=" + cn, nil, MalformedRequest},
		{"bad authzid escape", "SCRAM-SHA-256", cb, "n,a=x=2,n=user,r=" + cn, nil, MalformedRequest},
		{"p with non-PLUS", "SCRAM-SHA-256", cb, "p=tls-exporter,,n=user,r=" + cn, nil, MalformedRequest},
		{"n with PLUS", "SCRAM-SHA-256-PLUS", cb, "n,,n=user,r=" + cn, nil, MalformedRequest},
		{"y with PLUS", "SCRAM-SHA-256-PLUS", cb, "y,,n=user,r=" + cn, nil, MalformedRequest},
		{"y downgrade", "SCRAM-SHA-256", cb, "y,,n=user,r=" + cn, nil, MalformedRequest},
		{"y downgrade endpoint only", "SCRAM-SHA-1", ChannelBinding{EndPoint: cb.EndPoint}, "y,,n=user,r=" + cn, nil, MalformedRequest},
		{"tls-unique", "SCRAM-SHA-256-PLUS", cb, "p=tls-unique,,n=user,r=" + cn, nil, MalformedRequest},
		{"exporter on TLS 1.2", "SCRAM-SHA-256-PLUS", ChannelBinding{EndPoint: cb.EndPoint}, "p=tls-exporter,,n=user,r=" + cn, nil, MalformedRequest},
		{"reserved m", "SCRAM-SHA-256", cb, "n,,m=ext,n=user,r=" + cn, nil, MalformedRequest},
		{"extension m", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn + ",m=x", nil, MalformedRequest},
		{"bad extension", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn + ",7=x", nil, MalformedRequest},
		{"r before n", "SCRAM-SHA-256", cb, "n,,r=" + cn + ",n=user", nil, MalformedRequest},
		{"no nonce", "SCRAM-SHA-256", cb, "n,,n=user", nil, MalformedRequest},
		{"empty nonce", "SCRAM-SHA-256", cb, "n,,n=user,r=", nil, MalformedRequest},
		{"nonce with space", "SCRAM-SHA-256", cb, "n,,n=user,r=a b", nil, MalformedRequest},
		{"empty username", "SCRAM-SHA-256", cb, "n,,n=,r=" + cn, nil, MalformedRequest},
		{"bad username escape", "SCRAM-SHA-256", cb, "n,,n=us=er,r=" + cn, nil, MalformedRequest},
		{"username not PRECIS", "SCRAM-SHA-256", cb, "n,,n=us er,r=" + cn, nil, NotAuthorized},
		{"garbage", "SCRAM-SHA-256", cb, "\xff\xfe\x00\x01garbage", nil, MalformedRequest},
		{"NUL", "SCRAM-SHA-256", cb, "n,,n=us\x00er,r=" + cn, nil, MalformedRequest},
		{"too long", "SCRAM-SHA-256", cb, "n,,n=user,r=" + strings.Repeat("a", maxInput), nil, MalformedRequest},
		{"storage down", "SCRAM-SHA-256", cb, "n,,n=broken,r=" + cn, nil, TemporaryAuthFailure},

		{"wrong password", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, func(c *scramClient, sf []byte) []byte {
			c.password = "wrong"
			return good("n,,", nil, nil)(c, sf)
		}, NotAuthorized},
		{"wrong cb data", "SCRAM-SHA-256-PLUS", cb, "p=tls-exporter,,n=user,r=" + cn, good("p=tls-exporter,,", cb.EndPoint, nil), NotAuthorized},
		{"cb data missing", "SCRAM-SHA-256-PLUS", cb, "p=tls-exporter,,n=user,r=" + cn, good("p=tls-exporter,,", nil, nil), NotAuthorized},
		{"c= of other header", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("y,,", nil, nil), NotAuthorized},
		{"c= without authzid", "SCRAM-SHA-256", cb, "n,a=user@example.org,n=user,r=" + cn, good("n,,", nil, nil), NotAuthorized},
		{"nonce mismatch", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			return strings.Replace(s, ",r="+cn, ",r="+cn+"x", 1)
		}), NotAuthorized},
		{"client nonce only", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, func(c *scramClient, sf []byte) []byte {
			return []byte("c=biws,r=" + cn + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
		}, NotAuthorized},
		{"short proof", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			return s[:strings.LastIndex(s, ",p=")] + ",p=AAAA"
		}), NotAuthorized},
		{"proof not base64", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string { return s + "!" }), MalformedRequest},
		{"cb not base64", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			return strings.Replace(s, "c=biws", "c=biw", 1)
		}), MalformedRequest},
		{"no proof", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			return s[:strings.LastIndex(s, ",p=")]
		}), MalformedRequest},
		{"proof not last", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string { return s + ",x=1" }), MalformedRequest},
		{"r before c", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			i, j := strings.Index(s, ",r="), strings.LastIndex(s, ",p=")
			return s[i+1:j] + "," + s[:i] + s[j:]
		}), MalformedRequest},
		{"final m", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, good("n,,", nil, func(s string) string {
			return strings.Replace(s, ",p=", ",m=x,p=", 1)
		}), MalformedRequest},
		{"final garbage", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, func(*scramClient, []byte) []byte { return []byte("\x80\x81\x82") }, MalformedRequest},
		{"final empty", "SCRAM-SHA-256", cb, "n,,n=user,r=" + cn, func(*scramClient, []byte) []byte { return nil }, MalformedRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(tc.mech, tc.cb, true, testLookup)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sf, done, err := s.Step(ctx, []byte(tc.first))
			if tc.final == nil {
				if done {
					t.Fatal("done after a bad client-first")
				}
				if f := failureOf(t, err); f.Condition != tc.want {
					t.Fatalf("got %v, want %s", f, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("client-first failed: %v", err)
			}
			c := &scramClient{h: sha256.New, user: "user", password: testPassword, cnonce: cn}
			c.first = tc.first[strings.Index(tc.first, ",n=")+1:]
			out, done, err := s.Step(ctx, tc.final(c, sf))
			if done || out != nil {
				t.Fatalf("bad client-final accepted: %q", out)
			}
			if f := failureOf(t, err); f.Condition != tc.want {
				t.Fatalf("got %v, want %s", f, tc.want)
			}
		})
	}
}

// TestSCRAMExtensionIgnored: unknown optional extensions are ignored
// (RFC 5802 §5.1).
func TestSCRAMExtensionIgnored(t *testing.T) {
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	c := &scramClient{h: sha256.New, user: "user", password: testPassword, gs2: "n,,", cnonce: "abc"}
	ctx := context.Background()
	c.first = "n=user,r=abc,x=ext"
	sf, _, err := s.Step(ctx, []byte("n,,"+c.first))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := c.clientFinal(sf)
	if _, done, err := s.Step(ctx, cf); err != nil || !done {
		t.Fatal(done, err)
	}
}

// TestSCRAMNoInitialResponse: without an initial response the server sends
// an empty challenge once (RFC 6120 §6.4.2); a second empty message fails.
func TestSCRAMNoInitialResponse(t *testing.T) {
	ctx := context.Background()
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	out, done, err := s.Step(ctx, nil)
	if err != nil || done || len(out) != 0 {
		t.Fatalf("first empty step = %q, %v, %v", out, done, err)
	}
	if _, _, err := s.Step(ctx, []byte{}); failureOf(t, err).Condition != MalformedRequest {
		t.Fatalf("second empty step: %v", err)
	}

	s, _ = NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	s.Step(ctx, nil)
	c := &scramClient{h: sha256.New, user: "user", password: testPassword, gs2: "n,,"}
	if err := c.run(s); err != nil {
		t.Fatal(err)
	}
}

func TestStepAfterEnd(t *testing.T) {
	ctx := context.Background()
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	c := &scramClient{h: sha256.New, user: "user", password: testPassword, gs2: "n,,"}
	if err := c.run(s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Step(ctx, []byte("n,,n=user,r=x")); failureOf(t, err).Condition != MalformedRequest {
		t.Fatal(err)
	}
	s, _ = NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	s.Step(ctx, []byte("garbage"))
	if _, _, err := s.Step(ctx, []byte("n,,n=user,r=x")); failureOf(t, err).Condition != MalformedRequest {
		t.Fatal(err)
	}
}

// TestUnknownUserIndistinguishable: an unknown user, an account without
// keys of the family and a wrong password look the same on the wire
// (RFC 5802 §9): same server-first shape, a stable salt, identical failure.
func TestUnknownUserIndistinguishable(t *testing.T) {
	ctx := context.Background()
	exchange := func(mech, user, pass string) (sf string, failure []byte) {
		s, _ := NewServer(mech, ChannelBinding{}, false, testLookup)
		c := &scramClient{h: sha256.New, user: user, password: pass, gs2: "n,,"}
		out, _, err := s.Step(ctx, c.clientFirst())
		if err != nil {
			t.Fatalf("%s: client-first: %v", user, err)
		}
		cf, err := c.clientFinal(out)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Step(ctx, cf)
		if s.Username() != user {
			t.Errorf("Username = %q, want %q", s.Username(), user)
		}
		return string(out), failureOf(t, err).Bytes()
	}
	shape := func(sf string) (int, int) {
		_, salt, iter, err := parseServerFirst(sf)
		if err != nil {
			t.Fatal(err)
		}
		return len(salt), iter
	}
	wrongSF, wrong := exchange("SCRAM-SHA-256", "user", "wrong")
	for _, user := range []string{"nobody", "only1", "nokeys"} {
		sf, got := exchange("SCRAM-SHA-256", user, testPassword)
		if !bytes.Equal(got, wrong) {
			t.Errorf("%s: failure %s differs from wrong password's %s", user, got, wrong)
		}
		gl, gi := shape(sf)
		wl, wi := shape(wrongSF)
		if gl != wl || gi != wi {
			t.Errorf("%s: salt length/iterations %d/%d, real user %d/%d", user, gl, gi, wl, wi)
		}
		sf2, _ := exchange("SCRAM-SHA-256", user, testPassword)
		_, s1, _, _ := parseServerFirst(sf)
		_, s2, _, _ := parseServerFirst(sf2)
		if !bytes.Equal(s1, s2) {
			t.Errorf("%s: fake salt changes between attempts", user)
		}
	}
	_, other := exchange("SCRAM-SHA-256", "nobody2", testPassword)
	_, o1, _, _ := parseServerFirst(exchangeFirst(t, "nobody"))
	_, o2, _, _ := parseServerFirst(exchangeFirst(t, "nobody2"))
	if bytes.Equal(o1, o2) {
		t.Error("two unknown users share a salt")
	}
	if !bytes.Equal(other, wrong) {
		t.Error("failures differ")
	}

	// PLAIN: same bytes for unknown user, keyless account and wrong password.
	plain := func(user, pass string) []byte {
		s, _ := NewServer("PLAIN", ChannelBinding{}, true, testLookup)
		_, _, err := s.Step(ctx, []byte("\x00"+user+"\x00"+pass))
		return failureOf(t, err).Bytes()
	}
	pw := plain("user", "wrong")
	for _, u := range []string{"nobody", "nokeys"} {
		if got := plain(u, testPassword); !bytes.Equal(got, pw) {
			t.Errorf("PLAIN %s: %s, wrong password: %s", u, got, pw)
		}
	}
	if !bytes.Equal(pw, wrong) {
		t.Errorf("PLAIN failure %s differs from SCRAM's %s", pw, wrong)
	}
}

func exchangeFirst(t *testing.T, user string) string {
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	out, _, err := s.Step(context.Background(), []byte("n,,n="+user+",r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDecodeSaslname(t *testing.T) {
	for in, want := range map[string]string{
		"user": "user", "a=2Cb": "a,b", "a=3Db": "a=b", "=2C=3D": ",=",
	} {
		if got, ok := decodeSaslname(in); !ok || got != want {
			t.Errorf("decodeSaslname(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "=", "a=", "a=2", "a=2c", "a=41", "=3d"} {
		if got, ok := decodeSaslname(in); ok {
			t.Errorf("decodeSaslname(%q) = %q, want error", in, got)
		}
	}
}

// TestSCRAMEscapedUsername: "=2C" in n= is a comma before PRECIS.
func TestSCRAMEscapedUsername(t *testing.T) {
	s, _ := NewServer("SCRAM-SHA-256", ChannelBinding{}, false, testLookup)
	if _, _, err := s.Step(context.Background(), []byte("n,,n=A=2Cb,r=abc")); err != nil {
		t.Fatal(err)
	}
	if s.Username() != "a,b" {
		t.Errorf("Username = %q, want %q", s.Username(), "a,b")
	}
}

// BenchmarkSCRAMSHA256 measures the server side of a full SCRAM-SHA-256
// exchange; the client's salted password is cached so that the client's
// PBKDF2 is not measured.
func BenchmarkSCRAMSHA256(b *testing.B) {
	keys := testKeys()
	lookup := func(context.Context, string) (map[storage.Hash]storage.SCRAMKeys, error) { return keys, nil }
	c := &scramClient{h: sha256.New, user: "user", password: testPassword, gs2: "n,,", cnonce: "rOprNGfwEbeRWgbNEkqO"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := NewServer("SCRAM-SHA-256", ChannelBinding{}, true, lookup)
		if err != nil {
			b.Fatal(err)
		}
		sf, _, err := s.Step(ctx, c.clientFirst())
		if err != nil {
			b.Fatal(err)
		}
		cf, err := c.clientFinal(sf)
		if err != nil {
			b.Fatal(err)
		}
		out, done, err := s.Step(ctx, cf)
		if err != nil || !done {
			b.Fatal(err)
		}
		if err := c.checkServerFinal(out); err != nil {
			b.Fatal(err)
		}
	}
}
