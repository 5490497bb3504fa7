package config

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// CertError is a problem with one of the files of a CertFiles: Key names
// the option ("cert", "key", "ecdsa_cert", "ecdsa_key").
type CertError struct {
	Key string
	Msg string
}

func (e *CertError) Error() string { return e.Key + ": " + e.Msg }

// Load loads the certificates of f, each with its Leaf parsed, in the
// order of preference: the ECDSA one first when there are two.
//
// With two (Dual), Cert must hold an RSA key and ECDSACert an ECDSA one,
// and both must carry the same DNS names (case aside): which one a client
// gets depends on the signature algorithms it supports (RFC 8446 §4.2.3,
// RFC 5246 §7.4.2), not on the name it asks for, so a name only one of
// them covered would fail for some clients only.
func (f CertFiles) Load() ([]*tls.Certificate, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, &CertError{"cert", "cert and key are both required"}
	}
	main, err := loadPair("cert", f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	if !f.Dual() {
		return []*tls.Certificate{main}, nil
	}
	if f.ECDSACert == "" || f.ECDSAKey == "" {
		return nil, &CertError{"ecdsa_cert", "ecdsa_cert and ecdsa_key are both required"}
	}
	ec, err := loadPair("ecdsa_cert", f.ECDSACert, f.ECDSAKey)
	if err != nil {
		return nil, err
	}
	if _, ok := ec.Leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, &CertError{"ecdsa_cert", fmt.Sprintf("%s has an %s key, not ECDSA", f.ECDSACert, keyType(ec.Leaf))}
	}
	if _, ok := main.Leaf.PublicKey.(*rsa.PublicKey); !ok {
		return nil, &CertError{"cert", fmt.Sprintf("%s has an %s key: beside ecdsa_cert, cert must be the RSA certificate (with one certificate, of any key type, set cert and key alone)", f.Cert, keyType(main.Leaf))}
	}
	if a, b := dnsNames(main.Leaf), dnsNames(ec.Leaf); !slices.Equal(a, b) {
		return nil, &CertError{"ecdsa_cert", fmt.Sprintf("%s names %s and %s names %s: the two certificates must name the same domains", f.Cert, strings.Join(a, ", "), f.ECDSACert, strings.Join(b, ", "))}
	}
	return []*tls.Certificate{ec, main}, nil
}

// loadPair loads a certificate chain and its key, with Leaf parsed.
func loadPair(key, certPath, keyPath string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, &CertError{key, fmt.Sprintf("cannot load %s with key %s: %v", certPath, keyPath, err)}
	}
	if c.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, &CertError{key, fmt.Sprintf("%s: %v", certPath, err)}
		}
	}
	return &c, nil
}

func keyType(c *x509.Certificate) string {
	switch c.PublicKeyAlgorithm {
	case x509.RSA:
		return "RSA"
	case x509.ECDSA:
		return "ECDSA"
	case x509.Ed25519:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// dnsNames are the DNS-IDs of c, lowercase and sorted.
func dnsNames(c *x509.Certificate) []string {
	names := make([]string, len(c.DNSNames))
	for i, n := range c.DNSNames {
		names[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	slices.Sort(names)
	return slices.Compact(names)
}
