package peercert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	root := newCA(t, "Test CA", nil)
	other := newCA(t, "Other CA", nil)
	newline := newCA(t, "Evil\nCA", nil)
	inter := root.sub(t, "Test Intermediate", nil)
	oldInter := root.sub(t, "Old Intermediate", func(c *x509.Certificate) {
		c.NotAfter = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	})
	twin := root.sub(t, "Test Intermediate", nil) // same name, another key
	notCA := root.sub(t, "Not A CA", func(c *x509.Certificate) { c.IsCA = false })
	permitted := root.sub(t, "Constrained CA", func(c *x509.Certificate) {
		c.PermittedDNSDomains = []string{"allowed.example"}
	})
	excluded := root.sub(t, "Excluding CA", func(c *x509.Certificate) {
		c.ExcludedDNSDomains = []string{"evil.example"}
	})
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	trustedSelf := selfSigned(t, withDNS("self.example"))
	roots.AddCert(trustedSelf)

	leaf := func(mod ...func(*x509.Certificate)) []*x509.Certificate {
		return []*x509.Certificate{root.issue(t, all(mod...))}
	}
	twoCNs := func(c *x509.Certificate) {
		c.Subject.ExtraNames = []pkix.AttributeTypeAndValue{
			{Type: oidCommonName, Value: "prosody.example"},
			{Type: oidCommonName, Value: "other.example"},
		}
	}

	tests := []struct {
		name   string
		chain  []*x509.Certificate
		domain string
		want   string // the error's text; "" for none
		kind   error
	}{
		// DNS-ID (RFC 6125 §6.4.1, §6.4.2)
		{"dns exact", leaf(withDNS("prosody.example")), "prosody.example", "", nil},
		{"dns case", leaf(withDNS("Prosody.EXAMPLE")), "PROSODY.example", "", nil},
		{"dns trailing dot", leaf(withDNS("prosody.example")), "prosody.example.", "", nil},
		{"dns among several", leaf(withDNS("a.example", "prosody.example")), "prosody.example", "", nil},
		{"dns other", leaf(withDNS("bob.example", "*.bob.example")), "prosody.example",
			"certificate for bob.example, *.bob.example does not cover prosody.example", ErrNameMismatch},
		{"dns IDN A-label vs U-label", leaf(withDNS("xn--bcher-kva.example")), "bücher.example", "", nil},
		{"dns IDN upper U-label", leaf(withDNS("xn--bcher-kva.example")), "BÜCHER.example", "", nil},

		// Wildcards (RFC 6125 §6.4.3)
		{"wildcard one label", leaf(withDNS("*.example")), "a.example", "", nil},
		{"wildcard case", leaf(withDNS("*.Example")), "A.EXAMPLE", "", nil},
		{"wildcard not two labels", leaf(withDNS("*.example")), "a.b.example",
			"certificate for *.example does not cover a.b.example", ErrNameMismatch},
		{"wildcard not the parent", leaf(withDNS("*.example")), "example",
			"certificate for *.example does not cover example", ErrNameMismatch},
		{"wildcard not left-most", leaf(withSAN(dnsName("a.*.example"))), "a.b.example",
			"certificate for a.*.example does not cover a.b.example", ErrNameMismatch},
		{"wildcard partial label", leaf(withSAN(dnsName("f*.example"))), "foo.example",
			"certificate for f*.example does not cover foo.example", ErrNameMismatch},
		{"wildcard over IDN", leaf(withDNS("*.example")), "bücher.example", "", nil},

		// SRV-ID (RFC 6125 §6.5.1, RFC 4985)
		{"srv xmpp-server", leaf(withSAN(srvName("_xmpp-server.prosody.example"))), "prosody.example", "", nil},
		{"srv case", leaf(withSAN(srvName("_XMPP-Server.Prosody.Example"))), "prosody.example", "", nil},
		{"srv wildcard", leaf(withSAN(srvName("_xmpp-server.*.example"))), "prosody.example", "", nil},
		{"srv xmpp-client", leaf(withSAN(srvName("_xmpp-client.prosody.example"))), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},
		{"srv other domain", leaf(withSAN(srvName("_xmpp-server.other.example"))), "prosody.example",
			"certificate for _xmpp-server.other.example does not cover prosody.example", ErrNameMismatch},

		// XmppAddr (RFC 6120 §13.7.1.4)
		{"xmppaddr", leaf(withSAN(xmppAddr("prosody.example"))), "prosody.example", "", nil},
		{"xmppaddr case", leaf(withSAN(xmppAddr("Prosody.Example"))), "prosody.example", "", nil},
		{"xmppaddr U-label", leaf(withSAN(xmppAddr("bücher.example"))), "xn--bcher-kva.example", "", nil},
		{"xmppaddr U-label upper", leaf(withSAN(xmppAddr("bücher.example"))), "BÜCHER.EXAMPLE.", "", nil},
		{"xmppaddr JID not a domain", leaf(withSAN(xmppAddr("admin@prosody.example"))), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},
		{"xmppaddr no wildcard", leaf(withSAN(xmppAddr("*.example"))), "prosody.example",
			"certificate for *.example does not cover prosody.example", ErrNameMismatch},
		{"xmppaddr beside dns", leaf(withSAN(dnsName("www.example"), xmppAddr("prosody.example"))), "prosody.example", "", nil},

		// CN-ID only without identifiers of those types (RFC 6125 §6.4.4)
		{"cn without san", leaf(withCN("prosody.example")), "prosody.example", "", nil},
		{"cn wildcard without san", leaf(withCN("*.example")), "prosody.example", "", nil},
		{"cn with dns san", leaf(withCN("prosody.example"), withDNS("other.example")), "prosody.example",
			"certificate for other.example does not cover prosody.example", ErrNameMismatch},
		{"cn with srv-id of another service", leaf(withCN("prosody.example"), withSAN(srvName("_xmpp-client.prosody.example"))), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},
		{"cn with xmppaddr", leaf(withCN("prosody.example"), withSAN(xmppAddr("other.example"))), "prosody.example",
			"certificate for other.example does not cover prosody.example", ErrNameMismatch},
		{"cn with uri-id", leaf(withCN("prosody.example"), withSAN(uriName("xmpp:other.example"))), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},
		{"cn with email only", leaf(withCN("prosody.example"), withSAN(emailName("admin@prosody.example"))), "prosody.example", "", nil},
		{"two cns", leaf(twoCNs), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},
		{"no names", leaf(), "prosody.example",
			"certificate names no XMPP server, so it does not cover prosody.example", ErrNameMismatch},

		// Extended key usage: any (XEP-0178 §3; ejabberd #4392)
		{"serverAuth only", leaf(withDNS("prosody.example"), withEKU(x509.ExtKeyUsageServerAuth)), "prosody.example", "", nil},
		{"clientAuth only", leaf(withDNS("prosody.example"), withEKU(x509.ExtKeyUsageClientAuth)), "prosody.example", "", nil},
		{"both", leaf(withDNS("prosody.example"), withEKU(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)), "prosody.example", "", nil},
		{"no eku", leaf(withDNS("prosody.example"), withEKU()), "prosody.example", "", nil},

		// Validity
		{"expired", leaf(withDNS("prosody.example"), valid(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))),
			"prosody.example", "certificate expired on 2026-01-02", ErrUntrusted},
		{"not yet valid", leaf(withDNS("prosody.example"), valid(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))),
			"prosody.example", "certificate is not valid until 2026-07-01 00:00:00 UTC", ErrUntrusted},

		// Chain
		{"unknown authority", []*x509.Certificate{other.issue(t, withDNS("prosody.example"))}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Other CA)", ErrUntrusted},
		{"unknown authority with its CA sent", []*x509.Certificate{other.issue(t, withDNS("prosody.example")), other.cert}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Other CA)", ErrUntrusted},
		{"self-signed", []*x509.Certificate{selfSigned(t, all(withCN("prosody.example"), withDNS("prosody.example")))}, "prosody.example",
			"certificate signed by an unknown authority (self-signed: CN=prosody.example)", ErrUntrusted},
		{"self-signed among the roots", []*x509.Certificate{trustedSelf}, "self.example", "", nil},
		{"intermediate sent", []*x509.Certificate{inter.issue(t, withDNS("prosody.example")), inter.cert}, "prosody.example", "", nil},
		{"intermediate and root sent", []*x509.Certificate{inter.issue(t, withDNS("prosody.example")), inter.cert, root.cert}, "prosody.example", "", nil},
		{"intermediate missing", []*x509.Certificate{inter.issue(t, withDNS("prosody.example"))}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Test Intermediate)", ErrUntrusted},
		{"intermediate expired", []*x509.Certificate{oldInter.issue(t, withDNS("prosody.example")), oldInter.cert}, "prosody.example",
			"certificate CN=Old Intermediate in the chain expired on 2026-01-02", ErrUntrusted},
		{"intermediate not a CA", []*x509.Certificate{notCA.issue(t, withDNS("prosody.example")), notCA.cert}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Not A CA); the certificate sent for that issuer is not a CA", ErrUntrusted},
		{"wrong intermediate sent", []*x509.Certificate{inter.issue(t, withDNS("prosody.example")), twin.cert}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Test Intermediate); the certificate sent for that issuer did not sign it: ECDSA verification failure", ErrUntrusted},
		{"unknown critical extension", leaf(withDNS("prosody.example"), func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}})
		}), "prosody.example", "certificate has a critical extension this server does not understand", ErrUntrusted},
		{"trusted chain, wrong name", []*x509.Certificate{inter.issue(t, withDNS("bob.example")), inter.cert}, "prosody.example",
			"certificate for bob.example does not cover prosody.example", ErrNameMismatch},

		// Name constraints (RFC 5280 §4.2.1.10), for every identifier type
		{"constraint permits dns", []*x509.Certificate{permitted.issue(t, withDNS("a.allowed.example")), permitted.cert}, "a.allowed.example", "", nil},
		{"constraint permits xmppaddr", []*x509.Certificate{permitted.issue(t, withSAN(xmppAddr("allowed.example"))), permitted.cert}, "allowed.example", "", nil},
		{"constraint refuses xmppaddr", []*x509.Certificate{permitted.issue(t, withSAN(xmppAddr("evil.example"))), permitted.cert}, "evil.example",
			"certificate for evil.example: its issuer CN=Constrained CA may not certify that name (name constraints)", ErrUntrusted},
		{"constraint refuses cn", []*x509.Certificate{permitted.issue(t, withCN("evil.example")), permitted.cert}, "evil.example",
			"certificate for evil.example: its issuer CN=Constrained CA may not certify that name (name constraints)", ErrUntrusted},
		{"constraint refuses srv-id", []*x509.Certificate{excluded.issue(t, withSAN(srvName("_xmpp-server.evil.example"))), excluded.cert}, "evil.example",
			"certificate for evil.example: its issuer CN=Excluding CA may not certify that name (name constraints)", ErrUntrusted},
		{"constraint refuses srv-id subdomain", []*x509.Certificate{excluded.issue(t, withSAN(srvName("_xmpp-server.a.evil.example"))), excluded.cert}, "a.evil.example",
			"certificate for a.evil.example: its issuer CN=Excluding CA may not certify that name (name constraints)", ErrUntrusted},
		{"constraint refuses dns", []*x509.Certificate{permitted.issue(t, withDNS("evil.example")), permitted.cert}, "evil.example",
			`certificate names something its issuer may not certify (DNS name "evil.example" is not permitted by any constraint)`, ErrUntrusted},

		// No certificate, no domain
		{"nil chain", nil, "prosody.example", "no certificate", ErrNoCertificate},
		{"empty chain", []*x509.Certificate{}, "prosody.example", "no certificate", ErrNoCertificate},
		{"nil leaf", []*x509.Certificate{nil}, "prosody.example", "no certificate", ErrNoCertificate},
		{"empty domain", leaf(withDNS("prosody.example")), "", `invalid domain ""`, ErrNameMismatch},
		{"wildcard domain", leaf(withDNS("*.example")), "*.example", `invalid domain "*.example"`, ErrNameMismatch},
		{"control characters in domain", leaf(withDNS("a.example")), "a.example\nforged", `invalid domain "a.example\nforged"`, ErrNameMismatch},
		{"control characters in issuer", []*x509.Certificate{newline.issue(t, withDNS("prosody.example"))}, "prosody.example",
			"certificate signed by an unknown authority (issuer: CN=Evil?CA)", ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.chain, tt.domain, roots, now)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Verify: %v, want no error", err)
			case tt.want == "":
				return
			case err == nil:
				t.Fatalf("Verify: no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Verify: %q\nwant        %q", err, tt.want)
			}
			for _, kind := range []error{ErrNoCertificate, ErrUntrusted, ErrNameMismatch} {
				if got := errors.Is(err, kind); got != (kind == tt.kind) {
					t.Errorf("errors.Is(err, %v) = %v", kind, got)
				}
			}
		})
	}
}

// TestVerifyUnwrap: the crypto/x509 error stays reachable for callers.
func TestVerifyUnwrap(t *testing.T) {
	root := newCA(t, "Test CA", nil)
	other := newCA(t, "Other CA", nil)
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	err := Verify([]*x509.Certificate{other.issue(t, withDNS("a.example"))}, "a.example", roots, now)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("Verify: %v, want an x509.UnknownAuthorityError inside", err)
	}
}

// TestVerifySystemRoots: nil roots are the system's, which do not
// include a throwaway CA.
func TestVerifySystemRoots(t *testing.T) {
	if _, err := x509.SystemCertPool(); err != nil {
		t.Skipf("no system roots: %v", err)
	}
	root := newCA(t, "Test CA", nil)
	err := Verify([]*x509.Certificate{root.issue(t, withDNS("a.example"))}, "a.example", nil, now)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "unknown authority (issuer: CN=Test CA)") {
		t.Fatalf("Verify with system roots: %v, want unknown authority", err)
	}
}

// TestVerifyLongNameList: an error lists ten names at most.
func TestVerifyLongNameList(t *testing.T) {
	root := newCA(t, "Test CA", nil)
	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	var names []string
	for _, c := range "abcdefghijkl" {
		names = append(names, string(c)+".example")
	}
	err := Verify([]*x509.Certificate{root.issue(t, withDNS(names...))}, "z.example", roots, now)
	want := "certificate for a.example, b.example, c.example, d.example, e.example, f.example, g.example, h.example, i.example, j.example and 2 more does not cover z.example"
	if err == nil || err.Error() != want {
		t.Fatalf("Verify: %v\nwant %s", err, want)
	}
}

func TestDNSPermitted(t *testing.T) {
	tests := []struct {
		permitted, excluded []string
		domain              string
		want                bool
	}{
		{nil, nil, "a.example", true},
		{[]string{"example"}, nil, "example", true},
		{[]string{"Example."}, nil, "a.b.example", true},
		{[]string{"example"}, nil, "badexample", false},
		{[]string{".example"}, nil, "example", false},
		{[]string{".example"}, nil, "a.example", true},
		{[]string{"other", "example"}, nil, "a.example", true},
		{[]string{""}, nil, "anything", true},
		{nil, []string{"evil.example"}, "evil.example", false},
		{nil, []string{"evil.example"}, "a.evil.example", false},
		{nil, []string{"evil.example"}, "notevil.example", true},
		{nil, []string{".evil.example"}, "evil.example", true},
		{nil, []string{""}, "anything", false},
		{[]string{"example"}, []string{"evil.example"}, "evil.example", false},
	}
	for _, tt := range tests {
		ca := &x509.Certificate{PermittedDNSDomains: tt.permitted, ExcludedDNSDomains: tt.excluded}
		if got := dnsPermitted(ca, tt.domain); got != tt.want {
			t.Errorf("permitted %q, excluded %q: dnsPermitted(%q) = %v, want %v", tt.permitted, tt.excluded, tt.domain, got, tt.want)
		}
	}
}
