package realclients

// Anchors: the same checks against a server this test did not start, such
// as Prosody or ejabberd (issue 3 part 3; `make conformance-anchors`, which
// sets these variables, see conformance/anchors). When STARLING_ANCHOR is
// set, TestRealClients runs every check against that server only, as the
// subtest named after it, instead of starting Starling:
//
//	STARLING_ANCHOR                 a name for the server, e.g. prosody or ejabberd
//	STARLING_ANCHOR_HOST            the IP address to connect to, e.g. 127.0.0.2
//	STARLING_ANCHOR_DOMAIN          the accounts' domain (default localhost)
//	STARLING_ANCHOR_STARTTLS_PORT   STARTTLS port (default 5222)
//	STARLING_ANCHOR_DIRECTTLS_PORT  direct TLS port (default 5223)
//	STARLING_ANCHOR_CA              the server's self-signed certificate (PEM), which the clients trust
//	STARLING_ANCHOR_ACCOUNTS        alice:PASSWORD,bob:PASSWORD (existing accounts)
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
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/xmpptest"
)

const envAnchor = "STARLING_ANCHOR"

// anchorFromEnv describes the anchor the STARLING_ANCHOR_* variables name
// and reads the mechanisms it offers. Anything missing or unreachable fails
// the test: the variables say the server is there.
func anchorFromEnv(t *testing.T, name string) *server {
	t.Helper()
	env := func(key, def string) string {
		v := os.Getenv(envAnchor + "_" + key)
		if v == "" {
			v = def
		}
		if v == "" {
			t.Fatalf("%s=%s needs %s_%s", envAnchor, name, envAnchor, key)
		}
		return v
	}
	port := func(key, def string) int {
		p, err := strconv.Atoi(env(key, def))
		if err != nil {
			t.Fatalf("%s_%s: %v", envAnchor, key, err)
		}
		return p
	}
	s := &server{
		anchor:    name,
		host:      env("HOST", ""),
		domain:    env("DOMAIN", "localhost"),
		cert:      env("CA", ""),
		starttls:  port("STARTTLS_PORT", "5222"),
		directTLS: port("DIRECTTLS_PORT", "5223"),
		passwords: map[string]string{},
		offered:   map[string][]string{},
	}
	for _, acct := range strings.Split(env("ACCOUNTS", ""), ",") {
		user, pass, ok := strings.Cut(acct, ":")
		if !ok {
			t.Fatalf("%s_ACCOUNTS: %q is not USER:PASSWORD", envAnchor, acct)
		}
		s.passwords[user] = pass
	}
	for _, user := range []string{"alice", "bob"} {
		if s.passwords[user] == "" {
			t.Fatalf("%s_ACCOUNTS has no password for %s", envAnchor, user)
		}
	}
	if _, err := os.Stat(s.cert); err != nil {
		t.Fatalf("%s_CA: %v", envAnchor, err)
	}
	for _, transport := range transports {
		s.offered[transport] = probeMechanisms(t, s, transport)
		t.Logf("%s at %s:%d offers over %s: %v", name, s.host, s.port(transport), transport, s.offered[transport])
	}
	return s
}

// probeMechanisms opens a stream over transport, encrypts it and returns
// the SASL mechanisms in the features.
func probeMechanisms(t *testing.T, s *server, transport string) []string {
	t.Helper()
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port(transport)))
	var c *xmpptest.Client
	if transport == "directtls" {
		c = xmpptest.DialTLS(t, addr, s.domain)
		c.OpenStream()
	} else {
		c = xmpptest.Dial(t, addr, s.domain)
		c.OpenStream()
		c.StartTLS(0)
	}
	defer c.Conn.Close()
	ms := offeredMechanisms(string(c.Features.Raw))
	if len(ms) == 0 {
		t.Fatalf("%s offers no SASL mechanism over %s: %s", s.anchor, transport, c.Features.Raw)
	}
	return ms
}

// requireOffered skips a case whose mechanism an anchor does not offer.
func (s *server) requireOffered(t *testing.T, transport, mech string) {
	t.Helper()
	if s.offered != nil && !slices.Contains(s.offered[transport], mech) {
		t.Skipf("%s does not offer %s over %s (it offers %s)", s.anchor, mech, transport, strings.Join(s.offered[transport], " "))
	}
}

// scram is the mechanism of the clients that are not the subject of a
// check: SCRAM-SHA-256 on Starling, the strongest plain SCRAM an anchor
// offers.
func (s *server) scram(t *testing.T, transport string) string {
	t.Helper()
	if s.offered == nil {
		return "SCRAM-SHA-256"
	}
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if slices.Contains(s.offered[transport], m) {
			return m
		}
	}
	t.Skipf("%s offers no plain SCRAM over %s (it offers %s)", s.anchor, transport, strings.Join(s.offered[transport], " "))
	return ""
}
