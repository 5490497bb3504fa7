package realclients

// Anchors: the same checks against a server this test did not start, such
// as Prosody or ejabberd (issue 3 part 3; `make conformance-anchors`, see
// conformance/anchors). When STARLING_ANCHOR is set, TestRealClients runs
// every check against that server only, as the subtest named after it,
// instead of starting Starling; internal/anchorenv lists the variables.
//
// What differs from a run against Starling:
//   - A case whose SASL mechanism the anchor does not offer on that
//     transport is skipped with the list it does offer (Starling must offer
//     them all). The mechanisms are read off the stream features once, at
//     the start.
//   - The receivers and senders that are not the subject of a case use the
//     strongest plain SCRAM the anchor offers, SCRAM-SHA-256 or else
//     SCRAM-SHA-1, instead of SCRAM-SHA-256.
//   - The cross-checks against Starling's log (the "server-log" subtests)
//     are skipped, saying so.
//   - go-sendxmpp-receives learns that go-sendxmpp is bound from
//     go-sendxmpp's own --debug output instead of Starling's log.

import (
	"testing"

	"github.com/starling-xmpp/starling/internal/anchorenv"
)

// anchorServer is the server under test for the anchor the STARLING_ANCHOR*
// variables name.
func anchorServer(t *testing.T) *server {
	t.Helper()
	a := anchorenv.FromEnv(t)
	return &server{
		anchor:    a,
		host:      a.Host,
		domain:    a.Domain,
		cert:      a.CA,
		starttls:  a.StartTLS,
		directTLS: a.DirectTLS,
		passwords: a.Passwords,
	}
}

// requireOffered skips a case whose mechanism an anchor does not offer.
func (s *server) requireOffered(t *testing.T, transport, mech string) {
	t.Helper()
	if s.anchor != nil {
		s.anchor.RequireOffered(t, transport, mech)
	}
}

// scram is the mechanism of the clients that are not the subject of a
// check: SCRAM-SHA-256 on Starling, the strongest plain SCRAM an anchor
// offers.
func (s *server) scram(t *testing.T, transport string) string {
	t.Helper()
	if s.anchor == nil {
		return "SCRAM-SHA-256"
	}
	return s.anchor.SCRAM(t, transport)
}
