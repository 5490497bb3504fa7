// Package testca is a throwaway certificate authority for tests: an ECDSA
// P-256 root that issues server certificates for DNS names, as files
// (PEM chain and key, for servers configured by path) or as a
// tls.Certificate, and a pool or file with the root for the side that
// verifies them. Federation tests use it so that SASL EXTERNAL
// (XEP-0178) can succeed between servers that trust it.
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CA is a throwaway certificate authority for tests (ECDSA P-256).
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// New creates a CA whose subject's common name is name, valid from an
// hour ago for two years.
func New(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Starling test CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue returns a leaf for the DNS names (first = CN), with extended key
// usage serverAuth only (as Let's Encrypt issues since 2026), valid from
// an hour ago for a year, with the chain leaf+CA in Certificate.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	return ca.IssueUsages(ServerAuth, names...)
}

// The extended key usages of leaves: ServerAuth only, as Let's Encrypt
// issues since 2026 (Issue, WriteFiles), or ServerAndClientAuth, as public
// CAs issued before. A server that checks the client purpose of a peer's
// certificate on incoming s2s streams (OpenSSL's default, which ejabberd
// 23.01 keeps: "unsupported certificate purpose") takes SASL EXTERNAL
// only from the latter.
var (
	ServerAuth          = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	ServerAndClientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// IssueUsages is Issue with the extended key usages given.
func (ca *CA) IssueUsages(usages []x509.ExtKeyUsage, names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("testca: no names to issue a certificate for")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := serialNumber()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     append([]string(nil), names...),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  slices.Clone(usages),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// WriteFiles writes the leaf chain PEM (leaf then CA) and its key to
// dir/base.crt and dir/base.key (0600) and returns both paths.
func (ca *CA) WriteFiles(dir, base string, names ...string) (certFile, keyFile string, err error) {
	return ca.WriteFilesUsages(dir, base, ServerAuth, names...)
}

// WriteFilesUsages is WriteFiles with the extended key usages given.
func (ca *CA) WriteFilesUsages(dir, base string, usages []x509.ExtKeyUsage, names ...string) (certFile, keyFile string, err error) {
	cert, err := ca.IssueUsages(usages, names...)
	if err != nil {
		return "", "", err
	}
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// WriteCA writes the CA certificate PEM to path.
func (ca *CA) WriteCA(path string) error {
	return os.WriteFile(path, ca.CertPEM, 0o644)
}

// Pool returns a certificate pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
