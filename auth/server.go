package auth

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/starling-xmpp/starling/storage"
)

// Mechanism names (RFC 4616, RFC 5802 §4, RFC 7677 §2).
const (
	mechPlain  = "PLAIN"
	plusSuffix = "-PLUS"
)

// maxInput caps one decoded SASL message. Usernames and authzids are JID
// parts of at most 1023 and 3071 bytes (RFC 7622 §3.1), so honest messages
// stay far below it.
const maxInput = 16 << 10

// Lookup returns the stored SCRAM keys of a user of the stream's host, by
// PRECIS-prepared username; storage.ErrNotFound if there is no such user.
// It is called once per exchange, as soon as the username is known and
// before anything depends on the password (SCRAM's client-first message,
// PLAIN's only one), so a *Failure it returns, such as a throttled
// account's temporary-auth-failure (RFC 6120 §6.5.11), ends the exchange
// with an answer the password cannot change.
type Lookup func(ctx context.Context, username string) (map[storage.Hash]storage.SCRAMKeys, error)

// Mechanisms lists the SASL mechanisms to advertise (RFC 6120 §6.4.1),
// strongest first: the SCRAM -PLUS variants only when the connection has a
// channel binding (RFC 5802 §6, XEP-0440), and PLAIN only on an encrypted
// stream (RFC 6120 §6.4.5 and §13.8.3).
func Mechanisms(cb ChannelBinding, encrypted bool) []string {
	m := make([]string, 0, 2*len(families)+1)
	if cb.any() {
		for _, f := range families {
			m = append(m, f.mech+plusSuffix)
		}
	}
	for _, f := range families {
		m = append(m, f.mech)
	}
	if encrypted {
		m = append(m, mechPlain)
	}
	return m
}

// MechanismHash returns the hash family of a SCRAM mechanism, with or
// without -PLUS; false for any other mechanism.
func MechanismHash(mechanism string) (storage.Hash, bool) {
	name, _ := strings.CutSuffix(mechanism, plusSuffix)
	for _, f := range families {
		if f.mech == name {
			return f.id, true
		}
	}
	return "", false
}

// Server is the server side of one SASL exchange (RFC 4422 §3, RFC 6120
// §6.4). It is not safe for concurrent use; a stream runs one at a time.
type Server struct {
	// Iterations is the PBKDF2 iteration count of passwords set now
	// (config auth.scram_iterations); zero means DefaultIterations. Set it
	// before the first Step. An unknown user, or one without keys of the
	// family asked for, gets a SCRAM server-first message with this count
	// and a PLAIN check that costs this count, so that it looks and costs
	// like an account whose password was set under the current setting
	// (RFC 5802 §9).
	Iterations int

	lookup   Lookup
	cb       ChannelBinding
	plain    bool
	plus     bool   // a SCRAM -PLUS mechanism
	fam      family // the SCRAM hash family
	state    int
	username string
	authzid  string
	genNonce func() string // test hook: the server part of the SCRAM nonce
	scram    scramState
}

// Exchange states.
const (
	stateStart    = iota // nothing received yet
	stateFirst           // SCRAM: server-first sent; PLAIN: empty challenge sent
	stateFinished        // succeeded or failed: no more steps
)

// NewServer starts the server side of an exchange with the mechanism the
// client chose in <auth/> (RFC 6120 §6.4.2). A mechanism that is unknown or
// was not offered on this stream fails with invalid-mechanism (§6.5.7);
// PLAIN on an unencrypted stream fails with encryption-required (§6.5.4),
// since it is exactly the case §6.5.4 describes.
func NewServer(mechanism string, cb ChannelBinding, encrypted bool, lookup Lookup) (*Server, error) {
	if lookup == nil {
		return nil, errors.New("auth: NewServer needs a Lookup")
	}
	s := &Server{lookup: lookup, cb: cb, genNonce: newNonce}
	if mechanism == mechPlain {
		if !encrypted {
			return nil, fail(EncryptionRequired, "PLAIN requires TLS")
		}
		s.plain = true
		return s, nil
	}
	name, plus := strings.CutSuffix(mechanism, plusSuffix)
	if plus && !cb.any() {
		return nil, fail(InvalidMechanism, "")
	}
	for _, f := range families {
		if f.mech == name {
			s.fam, s.plus = f, plus
			return s, nil
		}
	}
	return nil, fail(InvalidMechanism, "")
}

// Step runs one step of the exchange. in is the decoded initial response or
// response (nil or empty if the client sent none); out is the challenge to
// send or, when done, the additional data of <success/> (RFC 6120 §6.3.10).
// Every error is a *Failure (RFC 6120 §6.5); after one, or after done, the
// exchange is over and further steps fail.
func (s *Server) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if s.state == stateFinished {
		return nil, false, fail(MalformedRequest, "SASL exchange already finished")
	}
	if len(in) > maxInput {
		s.state = stateFinished
		return nil, false, fail(MalformedRequest, "SASL message too long")
	}
	if s.plain {
		out, done, err = s.stepPlain(ctx, in)
	} else {
		out, done, err = s.stepSCRAM(ctx, in)
	}
	if err != nil || done {
		s.state = stateFinished
	}
	return out, done, err
}

// iterations is the count fake credentials use: Iterations or its default.
func (s *Server) iterations() int {
	if s.Iterations > 0 {
		return s.Iterations
	}
	return DefaultIterations
}

// Username returns the PRECIS UsernameCaseMapped form (RFC 8265 §3.3) of the
// authentication identity once the client has sent it, also after a failure,
// so that the caller can throttle per account; "" before that or if the name
// was not a valid username.
func (s *Server) Username() string { return s.username }

// Authzid returns the authorization identity the client asked for (RFC 6120
// §6.3.8), decoded but otherwise as sent; "" if none. The caller decides
// whether the authenticated user may act as it.
func (s *Server) Authzid() string { return s.authzid }

// prepareUsername applies PRECIS UsernameCaseMapped (RFC 8265 §3.3) to an
// authentication identity, which in XMPP is a localpart (RFC 6120 §6.3.8).
func prepareUsername(u string) (string, bool) {
	if u == "" || !utf8.ValidString(u) {
		return "", false
	}
	p, err := precis.UsernameCaseMapped.String(u)
	if err != nil || p == "" || len(p) > 1023 {
		return "", false
	}
	return p, true
}

// lookupKeys fetches a user's keys. ok is false for an unknown user; a
// storage outage becomes temporary-auth-failure (RFC 6120 §6.5.11); a
// *Failure of the Lookup is the answer as it is.
func (s *Server) lookupKeys(ctx context.Context, username string) (keys map[storage.Hash]storage.SCRAMKeys, ok bool, err error) {
	keys, err = s.lookup(ctx, username)
	if err == nil {
		return keys, true, nil
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if f, isFailure := errors.AsType[*Failure](err); isFailure {
		return nil, false, f
	}
	return nil, false, fail(TemporaryAuthFailure, "")
}

// errNotAuthorized is the one failure of a wrong password, an unknown user
// and an account without keys alike, so they cannot be told apart
// (RFC 5802 §9, RFC 6120 §6.5.10).
func errNotAuthorized() *Failure { return fail(NotAuthorized, "") }
