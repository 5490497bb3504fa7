package peercert

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Roots returns the system roots plus the PEM certificates in caFile (""
// : system roots only), the roots Verify checks chains against (RFC 6120
// §13.7.2). An error names the file and what is wrong with it: a
// missing or unreadable file, no certificate in it, a block that is not
// a CERTIFICATE (a private key put there by mistake) or that does not
// parse. Without system roots (a container with no CA bundle) only
// caFile's certificates are returned, or an error when there is none.
func Roots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		if caFile == "" {
			return nil, fmt.Errorf("system root certificates: %w", err)
		}
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("CA file %s: %w", caFile, err)
	}
	n := 0
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA file %s: PEM block %d is a %q, not a CERTIFICATE", caFile, n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: certificate %d does not parse: %s", caFile, n, trimX509(err.Error()))
		}
		pool.AddCert(cert)
		data = rest
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("CA file %s: PEM block %d is malformed or cut short", caFile, n+1)
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}
