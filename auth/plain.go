package auth

import (
	"bytes"
	"context"
	"unicode/utf8"

	"github.com/starling-xmpp/starling/storage"
)

// stepPlain runs PLAIN (RFC 4616 §2): message = [authzid] NUL authcid NUL
// passwd, authcid and passwd not empty. The password is checked against the
// stored SCRAM keys with CheckPassword, at their own iteration count. An
// unknown user pays for the key derivation of an account whose password was
// set under the current setting (the Server's Iterations) and gets the same
// not-authorized.
func (s *Server) stepPlain(ctx context.Context, in []byte) ([]byte, bool, error) {
	if len(in) == 0 {
		if s.state == stateStart {
			// No initial response: empty challenge (RFC 6120 §6.4.2).
			s.state = stateFirst
			return nil, false, nil
		}
		return nil, false, fail(MalformedRequest, "empty PLAIN message")
	}
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, fail(MalformedRequest, "bad PLAIN message")
	}
	for _, p := range parts {
		if !utf8.Valid(p) {
			return nil, false, fail(MalformedRequest, "PLAIN message is not UTF-8")
		}
	}
	authzid, authcid, passwd := string(parts[0]), string(parts[1]), string(parts[2])
	if authcid == "" {
		return nil, false, fail(MalformedRequest, "empty PLAIN authcid")
	}
	user, ok := prepareUsername(authcid)
	if !ok {
		return nil, false, errNotAuthorized()
	}
	s.username, s.authzid = user, authzid
	if passwd == "" {
		return nil, false, fail(MalformedRequest, "empty PLAIN password")
	}
	keys, found, err := s.lookupKeys(ctx, user)
	if err != nil {
		return nil, false, err
	}
	if !found || !anyUsable(keys) {
		found, keys = false, dummyKeys(user, s.iterations())
	}
	if !CheckPassword(keys, passwd) || !found {
		return nil, false, errNotAuthorized()
	}
	return nil, true, nil
}

// anyUsable reports whether keys hold a complete verifier of some family.
func anyUsable(keys map[storage.Hash]storage.SCRAMKeys) bool {
	for _, f := range families {
		if k, ok := keys[f.id]; ok && usable(f, k) {
			return true
		}
	}
	return false
}

// dummyKeys is what CheckPassword runs against for an unknown user, so that
// PLAIN costs the same PBKDF2 work as for an account created now: the
// family CheckPassword tries first, which DeriveKeys always stores, at
// iterations.
func dummyKeys(username string, iterations int) map[storage.Hash]storage.SCRAMKeys {
	f := checkOrder[0]
	return map[storage.Hash]storage.SCRAMKeys{f.id: fakeKeys(f, username, iterations)}
}
