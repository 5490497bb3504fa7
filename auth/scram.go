package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/starling-xmpp/starling/storage"
)

// serverNonceLen is the number of random bytes in the server's part of the
// SCRAM nonce (RFC 5802 §5.1 "r").
const serverNonceLen = 24

// scramState is what a SCRAM exchange keeps between its two steps.
type scramState struct {
	asked       bool // an empty challenge was sent for a missing initial response
	known       bool // the user exists and has keys of this family
	keys        storage.SCRAMKeys
	nonce       string // client nonce + server nonce
	cbInput     []byte // the GS2 header plus channel-binding data: what c= must carry (RFC 5802 §7)
	first       string // client-first-message-bare
	serverFirst string
}

// newNonce returns the server's random part of a SCRAM nonce: printable
// characters without a comma (RFC 5802 §7 "c-nonce"/"s-nonce").
func newNonce() string {
	b := make([]byte, serverNonceLen)
	rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

var b64 = base64.StdEncoding.Strict()

// stepSCRAM runs SCRAM-SHA-* and their -PLUS variants (RFC 5802 §5,
// RFC 7677): the client-first message gets the server-first message, the
// client-final message gets the server-final message "v=…" on success.
func (s *Server) stepSCRAM(ctx context.Context, in []byte) ([]byte, bool, error) {
	switch s.state {
	case stateStart:
		if len(in) == 0 {
			// No initial response: ask for it with an empty challenge
			// (RFC 6120 §6.4.2, RFC 4422 §5). Only once.
			if s.scram.asked {
				return nil, false, fail(MalformedRequest, "empty SCRAM client-first message")
			}
			s.scram.asked = true
			return nil, false, nil
		}
		out, err := s.scramFirst(ctx, string(in))
		if err != nil {
			return nil, false, err
		}
		s.state = stateFirst
		return out, false, nil
	default:
		out, err := s.scramFinal(string(in))
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
}

// scramFirst parses the client-first message and answers with the
// server-first message (RFC 5802 §7):
//
//	client-first-message = gs2-header client-first-message-bare
//	gs2-header   = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//
// An unknown user, or one without keys of this hash family, gets a
// server-first message built from fakeSalt and the Server's Iterations, and
// fails only at the proof, exactly like a wrong password (RFC 5802 §9).
func (s *Server) scramFirst(ctx context.Context, msg string) ([]byte, error) {
	if !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
		return nil, fail(MalformedRequest, "SCRAM message is not UTF-8 text")
	}
	// GS2 header (RFC 5802 §7, RFC 5801 §4).
	var flag byte
	var cbName string
	rest := msg
	switch {
	case strings.HasPrefix(rest, "n,"), strings.HasPrefix(rest, "y,"):
		flag, rest = rest[0], rest[2:]
	case strings.HasPrefix(rest, "p="):
		i := strings.IndexByte(rest, ',')
		if i < 0 || !validCBName(rest[2:i]) {
			return nil, fail(MalformedRequest, "bad GS2 header")
		}
		flag, cbName, rest = 'p', rest[2:i], rest[i+1:]
	default:
		return nil, fail(MalformedRequest, "bad GS2 header")
	}
	i := strings.IndexByte(rest, ',')
	if i < 0 {
		return nil, fail(MalformedRequest, "bad GS2 header")
	}
	if i > 0 {
		az, ok := strings.CutPrefix(rest[:i], "a=")
		if !ok {
			return nil, fail(MalformedRequest, "bad GS2 header")
		}
		if az, ok = decodeSaslname(az); !ok {
			return nil, fail(MalformedRequest, "bad authzid")
		}
		s.authzid = az
	}
	rest = rest[i+1:]
	gs2Header := msg[:len(msg)-len(rest)]
	bare := rest

	// client-first-message-bare, attributes in their fixed order (RFC 5802 §5.1).
	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, fail(MalformedRequest, "unsupported mandatory SCRAM extension")
	}
	if len(attrs) < 2 {
		return nil, fail(MalformedRequest, "bad SCRAM client-first message")
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return nil, fail(MalformedRequest, "SCRAM username missing")
	}
	if name, ok = decodeSaslname(name); !ok {
		return nil, fail(MalformedRequest, "bad SCRAM username")
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(cnonce) {
		return nil, fail(MalformedRequest, "bad SCRAM nonce")
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return nil, err
	}
	user, ok := prepareUsername(name)
	if !ok {
		return nil, errNotAuthorized()
	}
	s.username = user

	// Channel binding negotiation (RFC 5802 §6, RFC 9266, RFC 5929 §4).
	var cbData []byte
	switch {
	case s.plus && flag != 'p':
		return nil, fail(MalformedRequest, "a -PLUS mechanism requires channel binding")
	case !s.plus && flag == 'p':
		return nil, fail(MalformedRequest, "channel binding requires a -PLUS mechanism")
	case flag == 'y' && s.cb.any():
		// The client supports channel binding but believes we do not,
		// although we offered -PLUS: a downgrade (RFC 5802 §6).
		return nil, fail(MalformedRequest, "channel binding downgrade detected")
	case flag == 'p':
		if cbData = s.cb.data(cbName); cbData == nil {
			return nil, fail(MalformedRequest, "unsupported channel-binding type")
		}
	}
	s.scram.cbInput = append([]byte(gs2Header), cbData...)

	keys, found, err := s.lookupKeys(ctx, user)
	if err != nil {
		return nil, err
	}
	k, have := keys[s.fam.id]
	if found && have && usable(s.fam, k) {
		s.scram.keys, s.scram.known = k, true
	} else {
		s.scram.keys = fakeKeys(s.fam, user, s.iterations())
	}

	s.scram.first = bare
	s.scram.nonce = cnonce + s.genNonce()
	s.scram.serverFirst = "r=" + s.scram.nonce +
		",s=" + base64.StdEncoding.EncodeToString(s.scram.keys.Salt) +
		",i=" + strconv.Itoa(s.scram.keys.Iterations)
	return []byte(s.scram.serverFirst), nil
}

// scramFinal checks the client-final message and returns the server-final
// message (RFC 5802 §3, §7):
//
//	client-final-message = channel-binding "," nonce ["," extensions] "," proof
//	AuthMessage     := client-first-message-bare + "," + server-first-message + "," + client-final-message-without-proof
//	ClientSignature := HMAC(StoredKey, AuthMessage)
//	ClientKey       := ClientProof XOR ClientSignature, valid if H(ClientKey) = StoredKey
//	ServerSignature := HMAC(ServerKey, AuthMessage)
func (s *Server) scramFinal(msg string) ([]byte, error) {
	if len(msg) == 0 || !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
		return nil, fail(MalformedRequest, "bad SCRAM client-final message")
	}
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, fail(MalformedRequest, "SCRAM proof missing")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 {
		return nil, fail(MalformedRequest, "bad SCRAM client-final message")
	}
	cbB64, ok1 := strings.CutPrefix(attrs[0], "c=")
	nonce, ok2 := strings.CutPrefix(attrs[1], "r=")
	if !ok1 || !ok2 {
		return nil, fail(MalformedRequest, "bad SCRAM client-final message")
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return nil, err
	}
	cbInput, err := b64.DecodeString(cbB64)
	if err != nil {
		return nil, fail(MalformedRequest, "bad SCRAM channel-binding encoding")
	}
	proof, err := b64.DecodeString(proofB64)
	if err != nil {
		return nil, fail(MalformedRequest, "bad SCRAM proof encoding")
	}
	if subtle.ConstantTimeCompare(cbInput, s.scram.cbInput) != 1 {
		return nil, fail(NotAuthorized, "channel binding mismatch")
	}
	if nonce != s.scram.nonce {
		return nil, fail(NotAuthorized, "SCRAM nonce mismatch")
	}
	f, k := s.fam, s.scram.keys
	authMessage := []byte(s.scram.first + "," + s.scram.serverFirst + "," + withoutProof)
	sig := hmacSum(f.new, k.StoredKey, authMessage)
	valid := 0
	if len(proof) == len(sig) {
		clientKey := make([]byte, len(sig))
		subtle.XORBytes(clientKey, proof, sig)
		h := f.new()
		h.Write(clientKey)
		valid = subtle.ConstantTimeCompare(h.Sum(nil), k.StoredKey)
	}
	known := 0
	if s.scram.known {
		known = 1
	}
	if valid&known != 1 {
		return nil, errNotAuthorized()
	}
	serverSig := hmacSum(f.new, k.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), nil
}

// fakeKeys returns a verifier for a user that does not exist or has no keys
// of family f: stable salt, the iteration count of passwords set now, keys
// nobody can match.
func fakeKeys(f family, username string, iterations int) storage.SCRAMKeys {
	return storage.SCRAMKeys{
		Salt:       fakeSalt(f, username),
		Iterations: iterations,
		StoredKey:  hmacSum(f.new, fakeSecret, []byte("stored"), []byte(username)),
		ServerKey:  hmacSum(f.new, fakeSecret, []byte("server"), []byte(username)),
	}
}

// decodeSaslname decodes a SCRAM saslname: "=2C" is ',' and "=3D" is '=';
// any other '=' and an empty name are errors (RFC 5802 §5.1 "n", §7).
func decodeSaslname(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// validNonce reports whether n is a c-nonce: printable ASCII but ','
// (RFC 5802 §7).
func validNonce(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName reports whether n is a cb-name: 1*(ALPHA / DIGIT / "." / "-")
// (RFC 5802 §7).
func validCBName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkExtensions validates optional extension attributes (attr-val =
// ALPHA "=" value), which are ignored, except that "m" must fail
// (RFC 5802 §5.1).
func checkExtensions(attrs []string) error {
	for _, a := range attrs {
		if len(a) < 3 || a[1] != '=' || !('a' <= a[0] && a[0] <= 'z' || 'A' <= a[0] && a[0] <= 'Z') {
			return fail(MalformedRequest, "bad SCRAM attribute")
		}
		if a[0] == 'm' {
			return fail(MalformedRequest, "unsupported mandatory SCRAM extension")
		}
	}
	return nil
}
