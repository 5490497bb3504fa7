package anchor

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// KeyType is the key of a certificate chain made by NewChain: its CA's and
// its leaf's.
type KeyType string

const (
	// RSA2048 is a 2048-bit RSA key, what most certificates served on the
	// public XMPP network still have: the server signs every full
	// handshake with it (RSA-PSS in TLS 1.3).
	RSA2048 KeyType = "rsa2048"
	// ECDSAP256 is an ECDSA key on P-256, an order of magnitude cheaper
	// to sign with than RSA 2048 (the default of selfSigned).
	ECDSAP256 KeyType = "ecdsa-p256"
)

// ParseKeyType reads a KeyType's name ("rsa2048" or "ecdsa-p256").
func ParseKeyType(s string) (KeyType, error) {
	switch k := KeyType(s); k {
	case RSA2048, ECDSAP256:
		return k, nil
	}
	return "", fmt.Errorf("key type %q: want %s or %s", s, RSA2048, ECDSAP256)
}

func (k KeyType) generate() (crypto.Signer, error) {
	switch k {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: want %s or %s", string(k), RSA2048, ECDSAP256)
}

// Chain is a certificate chain on disk, as NewChain writes it: a CA and a
// leaf it issued, so that a server sends two certificates, as one with a
// certificate from a public CA does (leaf and intermediate).
type Chain struct {
	Key      KeyType
	CertFile string // PEM: the leaf, then the CA
	KeyFile  string // PEM: the leaf's private key (PKCS #8)
	CAFile   string // PEM: the CA, what clients trust
}

// NewChain makes a CA and a leaf for names (the first is the subject's
// common name), both with keys of type k, and writes them into dir as
// BASE.crt (the chain from the leaf on), BASE.key and BASE-ca.crt, base
// being the first name and the key type. Every server of a comparison
// can be given the same chain (Options.Chain), so that each does the
// same cryptographic work per handshake.
func NewChain(dir string, k KeyType, names ...string) (*Chain, error) {
	if len(names) == 0 {
		return nil, errors.New("anchor: a certificate chain needs a name")
	}
	caKey, err := k.generate()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Starling bench CA (" + string(k) + ")", Organization: []string{"Starling anchor"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := createCert(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafKey, err := k.generate()
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		DNSNames:    slices.Clone(names),
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(30 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if k == RSA2048 {
		leafTmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	leafDER, err := createCert(leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, names[0]+"-"+string(k))
	c := &Chain{Key: k, CertFile: base + ".crt", KeyFile: base + ".key", CAFile: base + "-ca.crt"}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for name, data := range map[string][]byte{
		c.CertFile: append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), caPEM...),
		c.KeyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		c.CAFile:   caPEM,
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

// read returns the chain's certificates and key as PEM.
func (c *Chain) read() (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(c.CertFile); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = os.ReadFile(c.KeyFile); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}
