package config

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
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestCert writes a self-signed certificate for names with a new
// key of kind ("rsa" or "ecdsa") into dir, and returns the two paths.
func writeTestCert(t *testing.T, dir, name, kind string, names ...string) (crt, keyPath string) {
	t.Helper()
	var key crypto.Signer
	var err error
	if kind == "rsa" {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, keyPath
}

// An RSA and an ECDSA certificate for the same names, globally or per
// host, and every way of getting the pair wrong.
func TestDualCertificateValidation(t *testing.T) {
	dir := t.TempDir()
	rsaCrt, rsaKey := writeTestCert(t, dir, "rsa", "rsa", "a.example", "*.a.example")
	ecCrt, ecKey := writeTestCert(t, dir, "ec", "ecdsa", "A.example", "*.a.example")
	ec2Crt, ec2Key := writeTestCert(t, dir, "ec2", "ecdsa", "a.example")
	rsa2Crt, rsa2Key := writeTestCert(t, dir, "rsa2", "rsa", "a.example", "*.a.example")
	good := TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: ecCrt, ECDSAKey: ecKey}
	host := func(f CertFiles) func(c *Config) {
		return func(c *Config) {
			c.Server.Hosts = []string{"a.example"}
			c.Hosts["a.example"] = Host{TLS: f}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" valid
	}{
		{"global pair", func(c *Config) { c.TLS = good }, ""},
		{"per host", host(good.Files()), ""},
		{"ECDSA alone in cert", func(c *Config) { c.TLS = TLS{Cert: ecCrt, Key: ecKey} }, ""},
		{"ecdsa_cert without ecdsa_key", func(c *Config) { c.TLS = TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: ecCrt} },
			"tls.ecdsa_key: required when tls.ecdsa_cert is set"},
		{"ecdsa_key without ecdsa_cert", host(CertFiles{Cert: rsaCrt, Key: rsaKey, ECDSAKey: ecKey}),
			`hosts."a.example".tls.ecdsa_cert: required when hosts."a.example".tls.ecdsa_key is set`},
		{"ecdsa pair without cert", func(c *Config) { c.TLS = TLS{ECDSACert: ecCrt, ECDSAKey: ecKey} },
			"tls.cert: required when tls.ecdsa_cert is set: the RSA certificate that clients without ECDSA get (with one certificate, of any key type, set cert and key alone)"},
		{"two ECDSA", func(c *Config) { c.TLS = TLS{Cert: ec2Crt, Key: ec2Key, ECDSACert: ecCrt, ECDSAKey: ecKey} },
			"tls.cert: " + ec2Crt + " has an ECDSA key: beside ecdsa_cert, cert must be the RSA certificate (with one certificate, of any key type, set cert and key alone)"},
		{"two RSA", func(c *Config) { c.TLS = TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: rsa2Crt, ECDSAKey: rsa2Key} },
			"tls.ecdsa_cert: " + rsa2Crt + " has an RSA key, not ECDSA"},
		{"swapped", func(c *Config) { c.TLS = TLS{Cert: ecCrt, Key: ecKey, ECDSACert: rsaCrt, ECDSAKey: rsaKey} },
			"tls.ecdsa_cert: " + rsaCrt + " has an RSA key, not ECDSA"},
		{"key of the other certificate", func(c *Config) { c.TLS = TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: ecCrt, ECDSAKey: ec2Key} }, "tls.ecdsa_cert: cannot load"},
		{"other names", func(c *Config) {
			c.TLS = TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: ec2Crt, ECDSAKey: ec2Key}
		}, "tls.ecdsa_cert: " + rsaCrt + " names *.a.example, a.example and " + ec2Crt + " names a.example: the two certificates must name the same domains"},
		{"missing ecdsa file", func(c *Config) {
			c.TLS = TLS{Cert: rsaCrt, Key: rsaKey, ECDSACert: filepath.Join(dir, "nope"), ECDSAKey: ecKey}
		}, "tls.ecdsa_cert: " + filepath.Join(dir, "nope") + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.edit(cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var p *Problems
			if !errors.As(err, &p) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
		})
	}

	certs, err := good.Files().Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[0].Leaf.PublicKeyAlgorithm != x509.ECDSA || certs[1].Leaf.PublicKeyAlgorithm != x509.RSA {
		t.Error("Load: not ECDSA then RSA")
	}
	// A host's override replaces the global pair whole.
	cfg := Default()
	cfg.TLS = good
	cfg.Hosts["localhost"] = Host{TLS: CertFiles{Cert: ecCrt, Key: ecKey}}
	if f := cfg.HostTLS("localhost"); f.Dual() || f.Cert != ecCrt {
		t.Errorf("HostTLS %+v", f)
	}
}
