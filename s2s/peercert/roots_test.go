package peercert

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoots(t *testing.T) {
	ca := newCA(t, "File CA", nil)
	leaf := ca.issue(t, withDNS("prosody.example"))
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	badPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	dir := t.TempDir()
	write := func(name string, parts ...[]byte) string {
		p := filepath.Join(dir, name)
		var data []byte
		for _, b := range parts {
			data = append(data, b...)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("ca.pem", []byte("# our federation CA\n"), caPEM)
	cut := caPEM[:len(caPEM)-30]
	tests := []struct {
		name string
		file string
		want string // error text; "" for none
	}{
		{"pem", good, ""},
		{"two certificates", write("two.pem", caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})), ""},
		{"missing", filepath.Join(dir, "missing.pem"), "CA file " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{"empty", write("empty.pem"), "CA file " + filepath.Join(dir, "empty.pem") + ": no PEM certificate in it"},
		{"DER, not PEM", write("ca.der", ca.cert.Raw), "CA file " + filepath.Join(dir, "ca.der") + ": no PEM certificate in it"},
		{"private key", write("key.pem", caPEM, keyPEM), "CA file " + filepath.Join(dir, "key.pem") + `: PEM block 2 is a "PRIVATE KEY", not a CERTIFICATE`},
		{"bad certificate", write("bad.pem", badPEM), "CA file " + filepath.Join(dir, "bad.pem") + ": certificate 1 does not parse: "},
		{"cut short", write("cut.pem", caPEM, cut), "CA file " + filepath.Join(dir, "cut.pem") + ": PEM block 2 is malformed or cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := Roots(tt.file)
			if tt.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
					t.Fatalf("Roots: %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Roots: %v", err)
			}
			if err := Verify([]*x509.Certificate{leaf}, "prosody.example", pool, now); err != nil {
				t.Errorf("Verify with the file's CA: %v", err)
			}
		})
	}
}

// TestRootsSystem: "" is the system roots alone, which do not include a
// throwaway CA.
func TestRootsSystem(t *testing.T) {
	if _, err := x509.SystemCertPool(); err != nil {
		t.Skipf("no system roots: %v", err)
	}
	pool, err := Roots("")
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "File CA", nil)
	leaf := ca.issue(t, withDNS("prosody.example"))
	if err := Verify([]*x509.Certificate{leaf}, "prosody.example", pool, now); err == nil {
		t.Error("Verify with system roots accepted a throwaway CA")
	}
}
