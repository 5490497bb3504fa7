package check

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/tlsconf"
)

// ExpiryWarning is how long before its expiry a certificate gets a
// warning.
const ExpiryWarning = 14 * 24 * time.Hour

// Certificates checks each host's certificate: files, key, expiry, the
// names of the host and of its services (RFC 6125 DNS-IDs, wildcards
// included) and the chain to opts.Roots. A host with an RSA and an ECDSA
// certificate (ecdsa_cert) gets each checked so, and the two checked
// together as config.CertFiles.Load does: the key types, the same names.
func Certificates(opts Options, services []string, r *Report) {
	cfg := opts.Config
	for _, host := range cfg.Server.Hosts {
		names := append([]string{host}, servicesOf(host, services)...)
		files := cfg.HostTLS(host)
		switch {
		case cfg.ACMEHost(host):
			name := aLabel(host)
			dir := tlsconf.ACMEDir(cfg)
			certPath := filepath.Join(dir, name+".crt")
			if _, err := os.Stat(certPath); err != nil {
				r.add(AreaCerts, Warning, acmeFix(cfg),
					"%s: from the ACME CA %s, none issued yet: the server uses a self-signed one until the CA issues one for %s",
					host, cfg.TLS.ACMEDirectory, hostList(names))
				continue
			}
			r.ok(AreaCerts, "%s: from the ACME CA %s, renewed by the server (%s)", host, cfg.TLS.ACMEDirectory, certPath)
			checkPair(opts, host, names, certPath, filepath.Join(dir, name+".key"), "the server renews it; if it cannot: "+acmeFix(cfg), r)
		case files.IsZero():
			certPath := filepath.Join(cfg.Server.DataDir, "certs", aLabel(host)+".crt")
			r.add(AreaCerts, Warning,
				"get a certificate from a CA: [tls] acme = true, or cert and key files ([tls], or [hosts.\""+host+"\".tls])",
				"%s: self-signed certificate (generated at %s): clients will warn or refuse it, and other servers accept this one only through dialback (XEP-0220), or not at all if they require valid certificates",
				host, certPath)
			if _, err := os.Stat(certPath); err == nil {
				if leaf, err := readLeaf(certPath); err == nil {
					expiry(opts, host, leaf, "the server generates a new one at its next start or reload", r)
				}
			}
		case files.Dual():
			ok := checkPair(opts, host+" (RSA)", names, files.Cert, files.Key, "", r)
			ok = checkPair(opts, host+" (ECDSA)", names, files.ECDSACert, files.ECDSAKey, "", r) && ok
			if !ok {
				continue
			}
			if _, err := files.Load(); err != nil {
				r.add(AreaCerts, Problem, "give an RSA certificate in cert and key and an ECDSA one for the same names in ecdsa_cert and ecdsa_key (certbot: --key-type rsa and --key-type ecdsa, with the same -d names)",
					"%s: %v", host, err)
				continue
			}
			r.ok(AreaCerts, "%s: an RSA and an ECDSA certificate for the same names: ECDSA to the clients that support it, RSA to the others", host)
		default:
			checkPair(opts, host, names, files.Cert, files.Key, "", r)
		}
	}
}

func acmeFix(cfg *config.Config) string {
	if cfg.TLS.ACMEChallenge == config.ChallengeTLSALPN01 {
		return "the CA must reach port 443 of each name's address, one of the server's TLS listeners; see the server's log (module=acme)"
	}
	return "the CA must reach port 80 of each name's address (tls.acme_http_listen, or a proxy forwarding /.well-known/acme-challenge/ to http.listen); see the server's log (module=acme)"
}

// checkPair checks a certificate chain file and its key for host, and
// reports whether they load as a pair.
func checkPair(opts Options, host string, names []string, certPath, keyPath, renew string, r *Report) bool {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		r.add(AreaCerts, Problem, fileFix(err, "the certificate chain (PEM)"), "%s: certificate %s", host, why(err))
		return false
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		r.add(AreaCerts, Problem, fileFix(err, "the private key (PEM)"), "%s: key %s", host, why(err))
		return false
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		r.add(AreaCerts, Problem, "the file must hold PEM blocks \"-----BEGIN CERTIFICATE-----\", the server's certificate first, then the intermediates (fullchain.pem)",
			"%s: %s: %v", host, certPath, err)
		return false
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		fix := "give the key that was generated with this certificate (privkey.pem beside fullchain.pem)"
		if !bytes.Contains(keyPEM, []byte("PRIVATE KEY-----")) {
			fix = "the key file must hold a PEM block \"-----BEGIN PRIVATE KEY-----\" (or RSA/EC PRIVATE KEY)"
		}
		r.add(AreaCerts, Problem, fix, "%s: %s does not go with %s: %v", host, keyPath, certPath, trimTLS(err))
		return false
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		r.add(AreaCerts, Warning, fmt.Sprintf("chmod 600 %s (owned by the server's user)", keyPath),
			"%s: the private key %s can be read by other users (mode %04o)", host, keyPath, fi.Mode().Perm())
	}
	leaf := chain[0]
	r.ok(AreaCerts, "%s: %s and its key match", host, certPath)
	expiry(opts, host, leaf, renew, r)
	for i, name := range names {
		if err := leaf.VerifyHostname(aLabel(name)); err != nil {
			level, what := Problem, "clients refuse to connect (or warn), and other servers accept this one only through dialback"
			if i > 0 {
				level, what = Warning, "other servers cannot authenticate the service by certificate and fall back to dialback, or refuse it if they require valid certificates"
			}
			r.add(AreaCerts, level, fmt.Sprintf("get a certificate that names %s (or *.%s for the services)", name, host),
				"%s: the certificate does not name %s (it names %s): %s", host, name, certNames(leaf), what)
			continue
		}
		r.ok(AreaCerts, "%s: the certificate names %s", host, name)
	}
	chainCheck(opts, host, chain, r)
	return true
}

// expiry checks the validity period of leaf.
func expiry(opts Options, host string, leaf *x509.Certificate, renew string, r *Report) {
	now := opts.now()
	left := leaf.NotAfter.Sub(now)
	date := leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	if renew == "" {
		renew = "renew it and put the new files in place, then starling reload"
	}
	switch {
	case now.Before(leaf.NotBefore):
		r.add(AreaCerts, Problem, "check this machine's clock, or wait until the certificate is valid",
			"%s: the certificate is not valid before %s", host, leaf.NotBefore.UTC().Format("2006-01-02 15:04 MST"))
	case left <= 0:
		r.add(AreaCerts, Problem, renew, "%s: the certificate expired on %s", host, date)
	case left < ExpiryWarning:
		r.add(AreaCerts, Warning, renew, "%s: the certificate expires in %s, on %s", host, days(left), date)
	default:
		r.ok(AreaCerts, "%s: the certificate is valid until %s (%s)", host, date, days(left))
	}
}

func days(d time.Duration) string {
	n := int(d.Hours() / 24)
	switch {
	case n == 1:
		return "1 day"
	case n == 0:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", n)
}

// chainCheck verifies the chain to the roots at a time the leaf is valid
// (expiry is told apart).
func chainCheck(opts Options, host string, chain []*x509.Certificate, r *Report) {
	leaf := chain[0]
	at := opts.now()
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Second)
	}
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(time.Second)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: opts.Roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		r.ok(AreaCerts, "%s: the chain leads to a trusted CA (issued by %s)", host, issuer(leaf))
		return
	}
	consequence := "clients will warn or refuse it, and other servers accept this one only through dialback (XEP-0220)"
	switch {
	case isSelfSigned(leaf):
		r.add(AreaCerts, Warning, "get a certificate from a CA (Let's Encrypt: [tls] acme = true)",
			"%s: the certificate is self-signed: %s", host, consequence)
	case len(chain) == 1:
		r.add(AreaCerts, Warning, "put the intermediate certificates after the server's in the file (fullchain.pem rather than cert.pem)",
			"%s: the chain does not lead to a trusted CA, and the file holds the server's certificate alone (issued by %s): %s", host, issuer(leaf), consequence)
	default:
		r.add(AreaCerts, Warning, "use a certificate from a public CA, or make sure every client and server trusts yours",
			"%s: the chain does not lead to a CA this machine trusts (issued by %s: %s): %s", host, issuer(leaf), trimX509(err), consequence)
	}
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func issuer(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}

// certNames lists the DNS-IDs of leaf, or its CN when it has none.
func certNames(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) == 0 {
		if leaf.Subject.CommonName != "" {
			return "no DNS name, only the common name " + leaf.Subject.CommonName + ", which clients ignore"
		}
		return "no DNS name"
	}
	names := leaf.DNSNames
	if len(names) > 10 {
		return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return strings.Join(names, ", ")
}

// parseChain parses every CERTIFICATE block of a PEM file.
func parseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the file does not parse: %v", len(chain)+1, trimX509(err))
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return chain, nil
}

func readLeaf(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chain, err := parseChain(data)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// why says why a file could not be read.
func why(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return pe.Path + " does not exist"
		case errors.Is(err, fs.ErrPermission):
			return pe.Path + " cannot be read by this user"
		}
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

func fileFix(err error, what string) string {
	if errors.Is(err, fs.ErrPermission) {
		return "run the check as the server's user (sudo -u starling), and let that user read " + what
	}
	return "give the path of " + what + " (relative paths are relative to the configuration file)"
}

func trimTLS(err error) string { return strings.TrimPrefix(err.Error(), "tls: ") }

func trimX509(err error) string { return strings.TrimPrefix(err.Error(), "x509: ") }

// aLabel is name as certificates and DNS carry it.
func aLabel(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if a, err := idna.Lookup.ToASCII(name); err == nil {
		return a
	}
	return name
}
