package testca

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestIssue: a leaf verifies against the pool for its names only, as a
// server certificate, and carries the CA in its chain.
func TestIssue(t *testing.T) {
	ca, err := New("test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("prosody.test", "conference.prosody.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || !slices.Equal(cert.Certificate[1], ca.Cert.Raw) {
		t.Fatalf("chain has %d certificates, want leaf then CA", len(cert.Certificate))
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != "prosody.test" {
		t.Errorf("CN %q", leaf.Subject.CommonName)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("extended key usage %v, want serverAuth only", leaf.ExtKeyUsage)
	}
	if !leaf.NotBefore.Before(time.Now().Add(-30*time.Minute)) || leaf.NotAfter.Before(time.Now().Add(300*24*time.Hour)) {
		t.Errorf("validity %v – %v", leaf.NotBefore, leaf.NotAfter)
	}
	for _, name := range []string{"prosody.test", "conference.prosody.test"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "ejabberd.test", Roots: ca.Pool()}); err == nil {
		t.Error("verified for a name it does not cover")
	}
	// serverAuth only: not usable as a client certificate by the book.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("verified for clientAuth")
	}
	other, err := New("other CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "prosody.test", Roots: other.Pool()}); err == nil {
		t.Error("verified against another CA")
	}
	if _, err := ca.Issue(); err == nil {
		t.Error("issued a certificate without names")
	}

	both, err := ca.IssueUsages(ServerAndClientAuth, "prosody.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range ServerAndClientAuth {
		if _, err := both.Leaf.Verify(x509.VerifyOptions{DNSName: "prosody.test", Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
}

// TestFiles: the written files load as a key pair whose chain is leaf then
// CA, the key is private, and a TLS handshake verifies with the CA file.
func TestFiles(t *testing.T) {
	ca, err := New("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := ca.WriteFiles(dir, "starling.test", "starling.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.WriteFilesUsages(dir, "both", ServerAndClientAuth, "both.test"); err != nil {
		t.Fatal(err)
	}
	if pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "both.crt"), filepath.Join(dir, "both.key")); err != nil {
		t.Fatal(err)
	} else if leaf, _ := x509.ParseCertificate(pair.Certificate[0]); !slices.Equal(leaf.ExtKeyUsage, ServerAndClientAuth) {
		t.Errorf("written extended key usages %v", leaf.ExtKeyUsage)
	}
	if certFile != filepath.Join(dir, "starling.test.crt") || keyFile != filepath.Join(dir, "starling.test.key") {
		t.Errorf("paths %s %s", certFile, keyFile)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(pair.Certificate) != 2 || !slices.Equal(pair.Certificate[1], ca.Cert.Raw) {
		t.Fatalf("file chain has %d certificates, want leaf then CA", len(pair.Certificate))
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(b); blk == nil || !slices.Equal(blk.Bytes, ca.Cert.Raw) {
		t.Fatal("CA file does not hold the CA certificate")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "starling.test", RootCAs: pool})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.Close()
}
