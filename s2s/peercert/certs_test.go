package peercert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

// now is the time every test verifies at.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newCA makes a self-signed root named cn, valid around now; mod, if
// not nil, changes its template before signing.
func newCA(t testing.TB, cn string, mod func(*x509.Certificate)) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(t, cn)
	if mod != nil {
		mod(tmpl)
	}
	return &testCA{cert: create(t, tmpl, tmpl, key.Public(), key), key: key}
}

// sub makes an intermediate CA named cn, signed by ca.
func (ca *testCA) sub(t testing.TB, cn string, mod func(*x509.Certificate)) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(t, cn)
	if mod != nil {
		mod(tmpl)
	}
	return &testCA{cert: create(t, tmpl, ca.cert, key.Public(), ca.key), key: key}
}

// issue signs a leaf: no subject, no names, serverAuth, valid around now,
// until mod says otherwise.
func (ca *testCA) issue(t testing.TB, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		NotBefore:    now.Add(-30 * 24 * time.Hour),
		NotAfter:     now.Add(60 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if mod != nil {
		mod(tmpl)
	}
	return create(t, tmpl, ca.cert, newKey(t).Public(), ca.key)
}

// selfSigned makes a self-signed leaf (no CA), as servers generate.
func selfSigned(t testing.TB, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if mod != nil {
		mod(tmpl)
	}
	return create(t, tmpl, tmpl, key.Public(), key)
}

func caTemplate(t testing.TB, cn string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The template modifiers tests combine.

// withDNS sets the leaf's DNS-IDs (crypto/x509 writes the extension).
func withDNS(names ...string) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

// withSAN sets the leaf's subjectAltName extension to the general names
// given, built by dnsName, uriName, emailName, xmppAddr, srvName and
// otherName.
func withSAN(names ...[]byte) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidSubjectAltName, Value: sanValue(names...)})
	}
}

// withCN sets the leaf's subject common name.
func withCN(cn string) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.Subject.CommonName = cn }
}

// withEKU sets the leaf's extended key usages (none: no extension).
func withEKU(eku ...x509.ExtKeyUsage) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.ExtKeyUsage = eku }
}

// valid sets the validity period.
func valid(from, until time.Time) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = from, until }
}

// all applies every modifier in turn.
func all(mods ...func(*x509.Certificate)) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		for _, m := range mods {
			m(c)
		}
	}
}

// sanValue is the DER of GeneralNames (RFC 5280 §4.2.1.6).
func sanValue(names ...[]byte) []byte {
	var body []byte
	for _, n := range names {
		body = append(body, n...)
	}
	return mustMarshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}

func dnsName(s string) []byte {
	return mustMarshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(s)})
}

func uriName(s string) []byte {
	return mustMarshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(s)})
}

func emailName(s string) []byte {
	return mustMarshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(s)})
}

// xmppAddr is an id-on-xmppAddr otherName (RFC 6120 §13.7.1.4).
func xmppAddr(s string) []byte { return otherName(oidXmppAddr, asn1.TagUTF8String, s) }

// srvName is an id-on-dnsSRV otherName (RFC 4985 §2), e.g.
// "_xmpp-server.example.org".
func srvName(s string) []byte { return otherName(oidDNSSRV, asn1.TagIA5String, s) }

// otherName is an otherName general name whose value has the universal
// tag given.
func otherName(oid asn1.ObjectIdentifier, tag int, s string) []byte {
	value := mustMarshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(s)})
	explicit := mustMarshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	return mustMarshal(asn1.RawValue{
		Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true,
		Bytes: append(mustMarshal(oid), explicit...),
	})
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
