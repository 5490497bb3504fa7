package check

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
)

// selfSignedRSA is selfSigned with an RSA key.
func selfSignedRSA(t *testing.T, dir, base string, names ...string) (string, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	crt, keyFile := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	return crt, keyFile
}

// A host with an RSA and an ECDSA certificate: both checked, and
// together.
func TestDualCertificates(t *testing.T) {
	dir := t.TempDir()
	services := []string{"conference.a.test"}
	rsaCrt, rsaKey := selfSignedRSA(t, dir, "rsa", "a.test", "*.a.test")
	run := func(f config.CertFiles) *Report {
		cfg := certConfig(t, f.Cert, f.Key)
		cfg.TLS.ECDSACert, cfg.TLS.ECDSAKey = f.ECDSACert, f.ECDSAKey
		r := &Report{}
		Certificates(Options{Config: cfg, Now: time.Now()}, services, r)
		return r
	}

	ecSub := t.TempDir()
	ecCrt, ecKey := selfSigned(t, ecSub, "a.test", "*.a.test")
	r := run(config.CertFiles{Cert: rsaCrt, Key: rsaKey, ECDSACert: ecCrt, ECDSAKey: ecKey})
	none(t, r, Problem)
	want(t, r, AreaCerts, OK, "a.test (RSA): "+rsaCrt+" and its key match")
	want(t, r, AreaCerts, OK, "a.test (ECDSA): "+ecCrt+" and its key match")
	want(t, r, AreaCerts, OK, "a.test (ECDSA): the certificate names conference.a.test")
	want(t, r, AreaCerts, OK, "an RSA and an ECDSA certificate for the same names")

	// The ECDSA one is checked as the other: its names, its key.
	otherSub := t.TempDir()
	otherCrt, otherKey := selfSigned(t, otherSub, "b.test")
	r = run(config.CertFiles{Cert: rsaCrt, Key: rsaKey, ECDSACert: otherCrt, ECDSAKey: otherKey})
	want(t, r, AreaCerts, Problem, "a.test (ECDSA): the certificate does not name a.test")
	want(t, r, AreaCerts, Problem, "the two certificates must name the same domains")
	r = run(config.CertFiles{Cert: rsaCrt, Key: rsaKey, ECDSACert: ecCrt, ECDSAKey: otherKey})
	want(t, r, AreaCerts, Problem, "a.test (ECDSA): "+otherKey+" does not go with")
	// Two of one key type.
	r = run(config.CertFiles{Cert: ecCrt, Key: ecKey, ECDSACert: ecCrt, ECDSAKey: ecKey})
	want(t, r, AreaCerts, Problem, "cert must be the RSA certificate")
}
