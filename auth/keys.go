package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"

	"github.com/starling-xmpp/starling/storage"
)

// MinIterations is the smallest PBKDF2 iteration count DeriveKeys accepts:
// RFC 5802 §5.1 and RFC 7677 §4 ask for at least 4096.
const MinIterations = 4096

// DefaultIterations is the PBKDF2 iteration count of new credentials when
// none is configured: the default of config auth.scram_iterations, chosen
// by measuring what clients pay for it (docs/scram-iterations.md). Prosody
// uses the same since 0.12.
const DefaultIterations = 10000

// saltLen is the length of a new random salt, in bytes.
const saltLen = 16

// ErrInvalidPassword is returned by DeriveKeys for a password that is empty
// or not allowed by PRECIS OpaqueString (RFC 8265 §4.2).
var ErrInvalidPassword = errors.New("auth: password is empty or contains characters PRECIS OpaqueString disallows")

// family is one SCRAM hash family.
type family struct {
	id   storage.Hash
	mech string // SCRAM mechanism name without -PLUS
	new  func() hash.Hash
	size int
}

// families lists the supported hash families, strongest first, matching
// storage.Hashes.
var families = []family{
	{storage.SHA512, "SCRAM-SHA-512", sha512.New, sha512.Size},
	{storage.SHA256, "SCRAM-SHA-256", sha256.New, sha256.Size},
	{storage.SHA1, "SCRAM-SHA-1", sha1.New, sha1.Size},
}

func familyOf(h storage.Hash) (family, bool) {
	for _, f := range families {
		if f.id == h {
			return f, true
		}
	}
	return family{}, false
}

var (
	clientKeyLabel = []byte("Client Key")
	serverKeyLabel = []byte("Server Key")
)

// DeriveKeys computes salt, iterations, StoredKey and ServerKey for every
// storage.Hashes family from a password (RFC 5802 §3). The password is
// prepared with PRECIS OpaqueString (RFC 8265 §4.2); each family gets its own
// random 16-byte salt and the PBKDF2 iteration count given, which is stored
// with the keys: a later change of the setting leaves these keys as they are
// (RFC 5802 §5.1 "i"). A count below MinIterations is an error.
func DeriveKeys(password string, iterations int) (map[storage.Hash]storage.SCRAMKeys, error) {
	if iterations < MinIterations {
		return nil, fmt.Errorf("auth: %d PBKDF2 iterations, fewer than the %d RFC 7677 §4 asks for", iterations, MinIterations)
	}
	pw, err := precis.OpaqueString.String(password)
	if err != nil || pw == "" {
		return nil, ErrInvalidPassword
	}
	keys := make(map[storage.Hash]storage.SCRAMKeys, len(storage.Hashes))
	for _, h := range storage.Hashes {
		f, ok := familyOf(h)
		if !ok {
			return nil, errors.New("auth: unsupported hash family " + string(h))
		}
		salt := make([]byte, saltLen)
		rand.Read(salt)
		k, err := deriveKeys(f, pw, salt, iterations)
		if err != nil {
			return nil, err
		}
		keys[h] = k
	}
	return keys, nil
}

// deriveKeys computes one family's verifier from a prepared password
// (RFC 5802 §3):
//
//	SaltedPassword := Hi(Normalize(password), salt, i)
//	ClientKey      := HMAC(SaltedPassword, "Client Key")
//	StoredKey      := H(ClientKey)
//	ServerKey      := HMAC(SaltedPassword, "Server Key")
func deriveKeys(f family, password string, salt []byte, iterations int) (storage.SCRAMKeys, error) {
	salted, err := pbkdf2.Key(f.new, password, salt, iterations, f.size)
	if err != nil {
		return storage.SCRAMKeys{}, errors.New("auth: PBKDF2 failed") // no key material in the text
	}
	clientKey := hmacSum(f.new, salted, clientKeyLabel)
	stored := f.new()
	stored.Write(clientKey)
	return storage.SCRAMKeys{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(f.new, salted, serverKeyLabel),
	}, nil
}

func hmacSum(h func() hash.Hash, key []byte, msgs ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, b := range msgs {
		m.Write(b)
	}
	return m.Sum(nil)
}

// usable reports whether k is a complete verifier of family f.
func usable(f family, k storage.SCRAMKeys) bool {
	return len(k.Salt) > 0 && k.Iterations > 0 &&
		len(k.StoredKey) == f.size && len(k.ServerKey) == f.size
}

// CheckPassword reports whether password matches keys: it re-derives
// StoredKey with the salt and iteration count of the cheapest family present
// (checkOrder) and compares in constant time. PLAIN (RFC 4616) uses it. Any
// family's verifier proves the password as well as another, so the server
// pays the least PBKDF2 work per PLAIN login.
func CheckPassword(keys map[storage.Hash]storage.SCRAMKeys, password string) bool {
	pw, err := precis.OpaqueString.String(password)
	if err != nil || pw == "" {
		return false
	}
	for _, f := range checkOrder {
		k, ok := keys[f.id]
		if !ok || !usable(f, k) {
			continue
		}
		got, err := deriveKeys(f, pw, k.Salt, k.Iterations)
		if err != nil {
			return false
		}
		return subtle.ConstantTimeCompare(got.StoredKey, k.StoredKey) == 1
	}
	return false
}

// checkOrder is the order in which CheckPassword tries the families:
// cheapest PBKDF2 first, as measured in docs/scram-iterations.md (per
// iteration, HMAC-SHA-256 costs 0.8 times HMAC-SHA-1 and 0.3 times
// HMAC-SHA-512 in Go on amd64).
var checkOrder = []family{families[1], families[2], families[0]}

// fakeSecret keys the fake salts shown for unknown users; random per process.
var fakeSecret = func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}()

// fakeSalt returns a salt for a user that does not exist, stable for the
// life of the process, so that a SCRAM server-first message does not reveal
// whether an account exists (RFC 5802 §9, RFC 7677 §4).
func fakeSalt(f family, username string) []byte {
	return hmacSum(sha256.New, fakeSecret, []byte(f.id), []byte{0}, []byte(username))[:saltLen]
}
