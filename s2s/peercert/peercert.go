// Package peercert verifies the certificate a peer server presents on a
// server-to-server stream for an XMPP domain (RFC 6120 §13.7.2, RFC
// 7590): the chain to trusted roots (RFC 5280 §6), and the domain among
// the identities the leaf claims (RFC 6120 §13.7.1.2, RFC 6125 §6):
// DNS-IDs, SRV-IDs for _xmpp-server (RFC 4985), XmppAddrs
// (id-on-xmppAddr, RFC 6120 §13.7.1.4) and, only when the leaf has none
// of those nor a URI-ID, its CN-ID. The result decides SASL EXTERNAL
// between servers (XEP-0178 §3) and whether dialback (XEP-0220) is
// needed.
//
// Verify is called for certificates from both directions: the server
// certificate of a stream we open, and the client certificate the peer
// sends on a stream it opens. Any extended key usage is accepted, so a
// certificate issued for serverAuth only (Let's Encrypt's since 2026)
// still authenticates an incoming stream; the caller's tls.Config only
// requests the client certificate (tls.RequestClientCert) and hands the
// chain to Verify.
//
// Name constraints of the issuing CAs (RFC 5280 §4.2.1.10) are applied to
// the domain matched, whatever identifier matched it: crypto/x509 applies
// them to DNS-IDs only, not to the otherName identifiers nor to a CN.
package peercert

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of Verify, each matched with errors.Is; the error itself says in
// words what is wrong.
var (
	// ErrNoCertificate: the peer sent no certificate.
	ErrNoCertificate = errors.New("no certificate")
	// ErrUntrusted: the chain does not lead to a trusted root at the
	// time given, or its CAs may not certify the domain.
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrNameMismatch: the chain is trusted but the leaf does not name
	// the domain; XEP-0178 §3 lets the receiver go on with dialback.
	ErrNameMismatch = errors.New("certificate does not name the domain")
)

// maxNamesShown caps the names an error lists; a hosting provider's
// certificate can carry hundreds.
const maxNamesShown = 10

// Verify reports whether chain — the peer's certificates as received,
// leaf first (tls.ConnectionState.PeerCertificates) — chains to roots at
// now and names domain as an XMPP server (RFC 6120 §13.7.2, RFC 6125 §6).
// nil roots: the system roots.
//
// Any extended key usage is accepted (x509.ExtKeyUsageAny): a certificate
// with serverAuth only must be accepted when the peer presents it as a TLS
// client certificate on an incoming stream (XEP-0178 §3); hence the
// caller asks crypto/tls only to request the client certificate and calls
// Verify itself.
//
// The error says in words what is wrong, for operators' logs, and matches
// ErrNoCertificate, ErrUntrusted or ErrNameMismatch with errors.Is.
func Verify(chain []*x509.Certificate, domain string, roots *x509.CertPool, now time.Time) error {
	if len(chain) == 0 || chain[0] == nil {
		return ErrNoCertificate
	}
	if now.IsZero() {
		now = time.Now()
	}
	leaf := chain[0]
	ref, ok := normReference(domain)
	if !ok {
		return &verifyError{msg: fmt.Sprintf("invalid domain %q", domain), kind: ErrNameMismatch}
	}

	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != nil {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return &verifyError{msg: chainProblem(err, chain, now), kind: ErrUntrusted, err: err}
	}

	ids := identities(leaf)
	if !ids.match(ref) {
		names := ids.list()
		var msg string
		if len(names) == 0 {
			msg = fmt.Sprintf("certificate names no XMPP server, so it does not cover %s", clean(domain))
		} else {
			msg = fmt.Sprintf("certificate for %s does not cover %s", shortList(names), clean(domain))
		}
		return &verifyError{msg: msg, kind: ErrNameMismatch}
	}
	if ca := outsideConstraints(chains, ref); ca != nil {
		return &verifyError{
			msg:  fmt.Sprintf("certificate for %s: its issuer %s may not certify that name (name constraints)", clean(domain), clean(ca.Subject.String())),
			kind: ErrUntrusted,
		}
	}
	return nil
}

// verifyError is an error of Verify: its message, the sentinel it
// matches and the crypto/x509 error behind it, if any.
type verifyError struct {
	msg  string
	kind error
	err  error
}

func (e *verifyError) Error() string { return e.msg }

func (e *verifyError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

// chainProblem says in words why crypto/x509 refused chain.
func chainProblem(err error, chain []*x509.Certificate, now time.Time) string {
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		roots   x509.SystemRootsError
	)
	switch {
	case errors.As(err, &unknown):
		c := unknown.Cert
		if c == nil {
			return "certificate signed by an unknown authority"
		}
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c == chain[0] {
			return fmt.Sprintf("certificate signed by an unknown authority (self-signed: %s)", clean(c.Subject.String()))
		}
		msg := fmt.Sprintf("certificate signed by an unknown authority (issuer: %s)", clean(c.Issuer.String()))
		// A certificate the peer sent under the issuer's name that
		// could not serve: crypto/x509 keeps why to itself.
		for _, p := range chain[1:] {
			if p == nil || p == c || !bytes.Equal(p.RawSubject, c.RawIssuer) {
				continue
			}
			if err := c.CheckSignatureFrom(p); err != nil {
				if p.BasicConstraintsValid && !p.IsCA {
					return msg + "; the certificate sent for that issuer is not a CA"
				}
				return msg + "; the certificate sent for that issuer did not sign it: " + trimX509(err.Error())
			}
		}
		return msg
	case errors.As(err, &invalid):
		// The leaf's own problem, or that of an issuer crypto/x509
		// found for it (an expired intermediate, one that is no CA).
		subject := "certificate"
		if invalid.Cert != nil && invalid.Cert != chain[0] {
			subject = fmt.Sprintf("certificate %s in the chain", clean(invalid.Cert.Subject.String()))
		}
		switch invalid.Reason {
		case x509.Expired:
			if invalid.Cert != nil {
				if v := validity(invalid.Cert, now); v != "" {
					return subject + " " + v
				}
			}
			return subject + " is outside its validity period"
		case x509.CANotAuthorizedForThisName:
			return "certificate names something its issuer may not certify (" + clean(trimX509(invalid.Detail)) + ")"
		}
		return subject + ": " + clean(trimX509(invalid.Error()))
	case errors.As(err, &roots):
		return "no system root certificates to verify with: " + trimX509(roots.Error())
	}
	var crit x509.UnhandledCriticalExtension
	if errors.As(err, &crit) {
		return "certificate has a critical extension this server does not understand"
	}
	return "certificate not trusted: " + clean(trimX509(err.Error()))
}

// clean replaces the control characters of s, which comes from the peer,
// so that a message is one line whatever the peer put in its certificate.
func clean(s string) string {
	if printable(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if printable(string(r)) {
			return r
		}
		return '?'
	}, s)
}

// validity says how c is out of its validity period at now, or "".
func validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "is not valid until " + c.NotBefore.UTC().Format(time.DateTime) + " UTC"
	case now.After(c.NotAfter):
		return "expired on " + c.NotAfter.UTC().Format(time.DateOnly)
	}
	return ""
}

func trimX509(s string) string {
	s = strings.TrimPrefix(s, "x509: ")
	return strings.TrimPrefix(s, "crypto/x509: ")
}

// shortList joins names for a message, at most maxNamesShown of them.
func shortList(names []string) string {
	if len(names) <= maxNamesShown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNamesShown], ", "), len(names)-maxNamesShown)
}

// outsideConstraints returns the CA whose DNS name constraints (RFC 5280
// §4.2.1.10) exclude domain in every one of chains, or nil when one chain
// allows it. domain is in A-labels, lowercase.
func outsideConstraints(chains [][]*x509.Certificate, domain string) *x509.Certificate {
	var first *x509.Certificate
	for _, chain := range chains {
		bad := (*x509.Certificate)(nil)
		for _, ca := range chain[1:] {
			if !dnsPermitted(ca, domain) {
				bad = ca
				break
			}
		}
		if bad == nil {
			return nil
		}
		if first == nil {
			first = bad
		}
	}
	return first
}

// dnsPermitted applies ca's DNS name constraints to domain, as crypto/x509
// does to DNS-IDs: a constraint covers the name and its subdomains, or
// only subdomains when it starts with a dot.
func dnsPermitted(ca *x509.Certificate, domain string) bool {
	if len(ca.PermittedDNSDomains) > 0 && !anyConstraint(ca.PermittedDNSDomains, domain) {
		return false
	}
	return !anyConstraint(ca.ExcludedDNSDomains, domain)
}

func anyConstraint(constraints []string, domain string) bool {
	for _, c := range constraints {
		c = strings.ToLower(strings.TrimSuffix(c, "."))
		switch {
		case c == "":
			return true
		case c[0] == '.':
			if strings.HasSuffix(domain, c) {
				return true
			}
		case domain == c || strings.HasSuffix(domain, "."+c):
			return true
		}
	}
	return false
}
