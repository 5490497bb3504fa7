package anchor

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"
	"time"
)

// TestChain: NewChain's leaf has the key type asked for, names its
// domains, and validates against its CA as a chain of two.
func TestChain(t *testing.T) {
	for _, k := range []KeyType{RSA2048, ECDSAP256} {
		t.Run(string(k), func(t *testing.T) {
			c, err := NewChain(t.TempDir(), k, Domain, "upload."+Domain)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			if len(pair.Certificate) != 2 {
				t.Fatalf("chain of %d certificates, want leaf and CA", len(pair.Certificate))
			}
			leaf, _ := x509.ParseCertificate(pair.Certificate[0])
			switch pub := leaf.PublicKey.(type) {
			case *rsa.PublicKey:
				if k != RSA2048 || pub.N.BitLen() != 2048 {
					t.Errorf("%s: an RSA key of %d bits", k, pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if k != ECDSAP256 || pub.Curve.Params().Name != "P-256" {
					t.Errorf("%s: an ECDSA key on %s", k, pub.Curve.Params().Name)
				}
			default:
				t.Errorf("%s: a %T", k, pub)
			}
			b, _ := os.ReadFile(c.CAFile)
			blk, _ := pem.Decode(b)
			ca, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			for _, name := range []string{Domain, "upload." + Domain} {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
	if _, err := ParseKeyType("dsa"); err == nil {
		t.Error("ParseKeyType accepted dsa")
	}
	if k, err := ParseKeyType("rsa2048"); k != RSA2048 || err != nil {
		t.Errorf("ParseKeyType(rsa2048) = %q, %v", k, err)
	}
}

// TestAnchorChain: with Options.Chain each server serves that chain, whose
// CA is then its CAFile.
func TestAnchorChain(t *testing.T) {
	requireServers(t)
	chain, err := NewChain(t.TempDir(), RSA2048, Domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			a, err := Start(context.Background(), Options{Name: name, Addr: plainAddr, Dir: workDir(t), Chain: chain})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Stop()
			if a.CAFile != chain.CAFile {
				t.Errorf("CA file %q, want the chain's", a.CAFile)
			}
			b, _ := os.ReadFile(chain.CAFile)
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(b)
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(plainAddr, DirectTLSPort), &tls.Config{ServerName: Domain, RootCAs: roots, NextProtos: []string{"xmpp-client"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.ConnectionState().PeerCertificates[0].PublicKey.(*rsa.PublicKey); !ok {
				t.Errorf("served a %T key", c.ConnectionState().PeerCertificates[0].PublicKey)
			}
		})
	}
}
