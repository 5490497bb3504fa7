// Package anchorenv reads the variables that point the real-client checks
// (conformance/realclients, conformance/xmppjs, conformance/profanity,
// conformance/browser) at a server the test did not start, an "anchor"
// such as Prosody or ejabberd (issue 3 part 3; `make conformance-anchors`,
// whose conformance/anchors sets them). When STARLING_ANCHOR is set, each
// of those tests runs its checks against that server only, as the subtest
// named after it, instead of starting Starling:
//
//	STARLING_ANCHOR                 a name for the server, e.g. prosody or ejabberd
//	STARLING_ANCHOR_HOST            the IP address to connect to, e.g. 127.0.0.2
//	STARLING_ANCHOR_DOMAIN          the accounts' domain (default localhost)
//	STARLING_ANCHOR_STARTTLS_PORT   STARTTLS port (default 5222)
//	STARLING_ANCHOR_DIRECTTLS_PORT  direct TLS port (default 5223)
//	STARLING_ANCHOR_CA              the server's self-signed certificate (PEM), which the clients trust
//	STARLING_ANCHOR_ACCOUNTS        alice:PASSWORD,bob:PASSWORD (existing accounts)
//	STARLING_ANCHOR_WEBSOCKET_URL   its XMPP over WebSocket endpoint, ws[s]://… (optional: for the web clients)
//	STARLING_ANCHOR_BOSH_URL        its BOSH endpoint, http[s]://… (optional: for the web clients)
//
// It also reads, once, which SASL mechanisms the anchor offers on each
// transport, so that a check of a mechanism the anchor does not offer is
// skipped with the list it does offer (Starling must offer them all).
package anchorenv

import (
	"encoding/xml"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// Var names the variable that selects an anchor; the others are Var_KEY.
const Var = "STARLING_ANCHOR"

// Transports are the names of the two ways to connect, as the checks use
// them.
var Transports = []string{"starttls", "directtls"}

// Name returns the anchor STARLING_ANCHOR names, or "" when the checks are
// to run against a Starling the test starts.
func Name() string { return os.Getenv(Var) }

// Server is an anchor as the variables describe it.
type Server struct {
	Name                string
	Host                string // IP address
	Domain              string
	CA                  string // PEM file: the server's self-signed certificate
	StartTLS, DirectTLS int    // ports
	Passwords           map[string]string
	// WebSocketURL and BOSHURL are the web transports' endpoints, "" when
	// the variables do not give them (the suites that use them say so).
	WebSocketURL, BOSHURL string
	// Offered lists, per transport, the SASL mechanisms the server offers
	// once the stream is encrypted.
	Offered map[string][]string
}

// FromEnv describes the anchor the variables name and reads the mechanisms
// it offers. Anything missing or unreachable fails t: the variables say the
// server is there.
func FromEnv(t *testing.T) *Server {
	t.Helper()
	name := Name()
	env := func(key, def string) string {
		t.Helper()
		v := os.Getenv(Var + "_" + key)
		if v == "" {
			v = def
		}
		if v == "" {
			t.Fatalf("%s=%s needs %s_%s", Var, name, Var, key)
		}
		return v
	}
	port := func(key, def string) int {
		t.Helper()
		p, err := strconv.Atoi(env(key, def))
		if err != nil {
			t.Fatalf("%s_%s: %v", Var, key, err)
		}
		return p
	}
	s := &Server{
		Name:      name,
		Host:      env("HOST", ""),
		Domain:    env("DOMAIN", "localhost"),
		CA:        env("CA", ""),
		StartTLS:  port("STARTTLS_PORT", "5222"),
		DirectTLS: port("DIRECTTLS_PORT", "5223"),
		Passwords: map[string]string{},
		Offered:   map[string][]string{},
	}
	s.WebSocketURL, s.BOSHURL = os.Getenv(Var+"_WEBSOCKET_URL"), os.Getenv(Var+"_BOSH_URL")
	for _, acct := range strings.Split(env("ACCOUNTS", ""), ",") {
		user, pass, ok := strings.Cut(acct, ":")
		if !ok {
			t.Fatalf("%s_ACCOUNTS: %q is not USER:PASSWORD", Var, acct)
		}
		s.Passwords[user] = pass
	}
	for _, user := range []string{"alice", "bob"} {
		if s.Passwords[user] == "" {
			t.Fatalf("%s_ACCOUNTS has no password for %s", Var, user)
		}
	}
	if _, err := os.Stat(s.CA); err != nil {
		t.Fatalf("%s_CA: %v", Var, err)
	}
	for _, transport := range Transports {
		s.Offered[transport] = s.probe(t, transport)
		// conformance/anchors reads this line for its table.
		t.Logf("%s at %s offers over %s: %v", name, s.Addr(transport), transport, s.Offered[transport])
	}
	return s
}

// Port returns the port of transport ("starttls" or "directtls").
func (s *Server) Port(transport string) int {
	if transport == "directtls" {
		return s.DirectTLS
	}
	return s.StartTLS
}

// Addr returns host:port of transport.
func (s *Server) Addr(transport string) string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port(transport)))
}

// probe opens a stream over transport, encrypts it and returns the SASL
// mechanisms in the features.
func (s *Server) probe(t *testing.T, transport string) []string {
	t.Helper()
	var c *xmpptest.Client
	if transport == "directtls" {
		c = xmpptest.DialTLS(t, s.Addr(transport), s.Domain)
		c.OpenStream()
	} else {
		c = xmpptest.Dial(t, s.Addr(transport), s.Domain)
		c.OpenStream()
		c.StartTLS(0)
	}
	defer c.Conn.Close()
	var f struct {
		Mechanisms []string `xml:"mechanisms>mechanism"`
	}
	if err := xml.Unmarshal(c.Features.Raw, &f); err != nil || len(f.Mechanisms) == 0 {
		t.Fatalf("%s offers no SASL mechanism over %s (%v): %s", s.Name, transport, err, c.Features.Raw)
	}
	return f.Mechanisms
}

// RequireOffered skips a check of mech over transport when the anchor does
// not offer it.
func (s *Server) RequireOffered(t *testing.T, transport, mech string) {
	t.Helper()
	if !slices.Contains(s.Offered[transport], mech) {
		t.Skipf("%s does not offer %s over %s (it offers %s)", s.Name, mech, transport, strings.Join(s.Offered[transport], " "))
	}
}

// SCRAM returns the strongest plain SCRAM the anchor offers over transport,
// SCRAM-SHA-256 or else SCRAM-SHA-1, for the clients that are not the
// subject of a check; it skips the check when there is none.
func (s *Server) SCRAM(t *testing.T, transport string) string {
	t.Helper()
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if slices.Contains(s.Offered[transport], m) {
			return m
		}
	}
	t.Skipf("%s offers no plain SCRAM over %s (it offers %s)", s.Name, transport, strings.Join(s.Offered[transport], " "))
	return ""
}
