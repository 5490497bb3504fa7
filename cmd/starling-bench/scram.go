package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// scramClient is a SCRAM client (RFC 5802, RFC 7677) without channel
// binding that keeps ClientKey and ServerKey per account, salt and
// iteration count, as clients that store them do (XEP-0438 §2): a load
// generator that ran PBKDF2 on every login would spend most of its CPU
// there, taking it from the server under test. The first login of each
// account still derives the keys. -PLUS mechanisms and --scram-cache=false
// use mellium.im/sasl instead.
type scramClient struct {
	mech            string
	newHash         func() hash.Hash
	user, password  string
	nonce, first    string // client nonce, client-first-message-bare
	serverSignature []byte
}

type scramKeys struct{ clientKey, storedKey, serverKey []byte }

// scramCache maps hash name, user, password, salt and iterations to keys.
var scramCache sync.Map

func newScram(mech, user, password string) (*scramClient, bool) {
	var h func() hash.Hash
	switch mech {
	case "SCRAM-SHA-1":
		h = sha1.New
	case "SCRAM-SHA-256":
		h = sha256.New
	default:
		return nil, false
	}
	var n [18]byte
	rand.Read(n[:])
	s := &scramClient{mech: mech, newHash: h, user: user, password: password, nonce: base64.RawStdEncoding.EncodeToString(n[:])}
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	s.first = "n=" + name + ",r=" + s.nonce
	return s, true
}

// start is the client-first-message: no channel binding ("n,,").
func (s *scramClient) start() []byte { return []byte("n,," + s.first) }

// step answers the server-first-message with the client-final-message.
func (s *scramClient) step(serverFirst []byte) ([]byte, error) {
	var nonce, salt64 string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		if len(f) < 2 || f[1] != '=' {
			continue
		}
		switch f[0] {
		case 'r':
			nonce = f[2:]
		case 's':
			salt64 = f[2:]
		case 'i':
			iter, _ = strconv.Atoi(f[2:])
		case 'm':
			return nil, errors.New("scram: mandatory extension")
		}
	}
	if !strings.HasPrefix(nonce, s.nonce) || len(nonce) == len(s.nonce) || iter < 1 {
		return nil, fmt.Errorf("scram: bad server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, fmt.Errorf("scram: salt: %w", err)
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d", s.mech, s.user, s.password, salt64, iter)
	var k *scramKeys
	if v, ok := scramCache.Load(key); ok {
		k = v.(*scramKeys)
	} else {
		salted, err := pbkdf2.Key(s.newHash, s.password, salt, iter, s.newHash().Size())
		if err != nil {
			return nil, err
		}
		k = &scramKeys{clientKey: s.hmac(salted, "Client Key"), serverKey: s.hmac(salted, "Server Key")}
		h := s.newHash()
		h.Write(k.clientKey)
		k.storedKey = h.Sum(nil)
		scramCache.Store(key, k)
	}
	final := "c=biws,r=" + nonce // biws = base64("n,,")
	authMessage := s.first + "," + string(serverFirst) + "," + final
	sig := s.hmac(k.storedKey, authMessage)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = k.clientKey[i] ^ sig[i]
	}
	s.serverSignature = s.hmac(k.serverKey, authMessage)
	return []byte(final + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server's signature in the server-final-message.
func (s *scramClient) verify(serverFinal []byte) error {
	if e, ok := bytes.CutPrefix(serverFinal, []byte("e=")); ok {
		return fmt.Errorf("scram: server error %s", e)
	}
	v, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	if !ok {
		return fmt.Errorf("scram: bad server-final-message %q", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || !hmac.Equal(got, s.serverSignature) {
		return errors.New("scram: wrong server signature")
	}
	return nil
}

func (s *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(s.newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
