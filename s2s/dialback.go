package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// dialbackKey is the key of XEP-0220 §2.2.2 (and XEP-0185): HMAC-SHA256,
// keyed with the SHA-256 of the secret in hex, of "Receiving Server ' '
// Originating Server ' ' Stream ID", in hex; the hash in hex, not its
// bytes, is what gives the specification's example key. Only the
// authoritative server, which knows the secret, can compute it; the
// stream ID binds it to one stream.
func dialbackKey(secret []byte, receiving, originating, id string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// validKey compares a received key with the expected one in constant
// time.
func validKey(secret []byte, receiving, originating, id, key string) bool {
	want := dialbackKey(secret, receiving, originating, id)
	return hmac.Equal([]byte(want), []byte(key))
}
