// Package tlsconf owns the server's TLS certificates, one per virtual
// host, and the tls.Config used by the client listeners: STARTTLS
// (RFC 6120 §5) and direct TLS with ALPN "xmpp-client" (XEP-0368).
//
// Only TLS 1.2 and 1.3 are offered (RFC 7590 §3.1 recommends nothing
// older). The certificate is chosen by SNI (RFC 6066 §3; RFC 6120
// §13.7.1.2 has clients send it), falling back to the first host's.
//
// A host with no certificate configured gets a self-signed ECDSA P-256
// certificate whose DNS-ID is the host name (RFC 6125 §6.4), kept in
// data_dir/certs/<host>.crt and <host>.key and reused on later starts; it
// is replaced when it has expired or is about to.
//
// With [tls] acme on, a host without certificate files gets its
// certificate from an ACME certificate authority instead (RFC 8555, see
// ACME): the one in data_dir/acme if there is one, else the self-signed
// one until the CA has issued one, which then takes its place for new
// handshakes.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/net/idna"

	"github.com/starling-xmpp/starling/config"
)

const (
	// selfSignedLifetime is the validity of a generated certificate.
	selfSignedLifetime = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a generated certificate is
	// replaced (at start or reload).
	renewBefore = 7 * 24 * time.Hour
)

// Store holds the certificate of every host. It is safe for concurrent
// use: handshakes read the current set through an atomic pointer, and
// Reload builds a whole new set before swapping it in.
type Store struct {
	mu  sync.Mutex // serializes Reload and install (writers); readers use cur
	cur atomic.Pointer[certSet]
	now func() time.Time // for tests
	// acme answers tls-alpn-01 challenges (RFC 8737) when set.
	acme atomic.Pointer[ACME]
}

// certSet is an immutable snapshot of the certificates.
type certSet struct {
	byName map[string]*tls.Certificate // keyed by lowercase A-label host name
	def    *tls.Certificate            // the first host's
	// acme are the hosts (A-labels) whose certificate ACME provides.
	acme map[string]bool
}

// New loads or generates the certificate of every host in
// cfg.Server.Hosts (see config.Config.HostTLS).
func New(cfg *config.Config) (*Store, error) {
	s := &Store{now: time.Now}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the certificate files again (on SIGHUP) and regenerates
// expiring self-signed ones. On error the certificates in use are kept
// and the error returned; handshakes that start after a successful Reload
// use the new certificates.
func (s *Store) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(cfg.Server.Hosts) == 0 {
		return errors.New("tlsconf: no hosts")
	}
	set := &certSet{byName: make(map[string]*tls.Certificate, len(cfg.Server.Hosts)), acme: map[string]bool{}}
	var errs []error
	for _, host := range cfg.Server.Hosts {
		c, err := s.load(cfg, host)
		if err != nil {
			errs = append(errs, fmt.Errorf("tlsconf: %s: %w", host, err))
			continue
		}
		set.byName[normalize(host)] = c
		if cfg.ACMEHost(host) {
			set.acme[normalize(host)] = true
		}
		if set.def == nil {
			set.def = c
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.cur.Store(set)
	return nil
}

// load returns host's configured certificate, its ACME one, or its
// self-signed one.
func (s *Store) load(cfg *config.Config, host string) (*tls.Certificate, error) {
	t := cfg.HostTLS(host)
	if cfg.ACMEHost(host) {
		if c := loadACME(ACMEDir(cfg), normalize(host), s.now()); c != nil {
			return c, nil
		}
		// Until the CA issues one.
		return s.selfSigned(filepath.Join(cfg.Server.DataDir, "certs"), host)
	}
	if t.IsZero() {
		return s.selfSigned(filepath.Join(cfg.Server.DataDir, "certs"), host)
	}
	return loadPair(t.Cert, t.Key)
}

// loadPair loads a certificate chain and key, with Leaf parsed.
func loadPair(certPath, keyPath string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	return withLeaf(c)
}

func withLeaf(c tls.Certificate) (*tls.Certificate, error) {
	if c.Leaf == nil { // GODEBUG=x509keypairleaf=0
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, err
		}
		c.Leaf = leaf
	}
	return &c, nil
}

// install makes c the certificate of the ACME host name (an A-label) for
// the handshakes that start from now on, unless a Reload has given the
// host certificate files of its own since.
func (s *Store) install(name string, c *tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	if !old.acme[name] {
		return
	}
	set := &certSet{byName: maps.Clone(old.byName), def: old.def, acme: old.acme}
	if set.def == old.byName[name] {
		set.def = c
	}
	set.byName[name] = c
	s.cur.Store(set)
}

// ServerConfig returns a TLS configuration for a client listener: TLS 1.2
// and 1.3 only, the certificate chosen by SNI at handshake time (so a
// Reload or a renewal applies to new handshakes), and ALPN protocols
// nextProtos (the direct TLS listener passes "xmpp-client", XEP-0368 §3).
// With ACME's tls-alpn-01 challenge, a handshake that offers the ALPN
// protocol "acme-tls/1" alone (the CA's, RFC 8737 §3) gets the challenge
// certificate instead, on every listener alike.
func (s *Store) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS13,
		NextProtos: append([]string(nil), nextProtos...),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().pick(hello.ServerName), nil
		},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
				return nil, nil // the configuration above
			}
			m := s.acme.Load()
			if m == nil {
				return nil, errors.New("tlsconf: acme-tls/1 asked for, and ACME is off")
			}
			return m.challengeConfig(hello.ServerName)
		},
	}
}

// Leaf returns the leaf certificate ServerConfig presents for serverName
// (the SNI value, "" for none): the input of the tls-server-end-point
// channel binding (RFC 5929 §4).
func (s *Store) Leaf(serverName string) *x509.Certificate {
	return s.cur.Load().pick(serverName).Leaf
}

// Certificate returns the certificate of host (the default one for a
// name not served): what federation presents to other servers, as a TLS
// client too (XEP-0178).
func (s *Store) Certificate(host string) *tls.Certificate {
	return s.cur.Load().pick(host)
}

// pick selects by server name, case-insensitively: a host's, or for a
// service on a host's subdomain (conference.host) the host's; else the
// default.
func (set *certSet) pick(serverName string) *tls.Certificate {
	if serverName != "" {
		name := normalize(serverName)
		if c, ok := set.byName[name]; ok {
			return c
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if c, ok := set.byName[parent]; ok {
				return c
			}
		}
	}
	return set.def
}

// normalize maps a host name to the form SNI carries: ASCII (A-labels,
// RFC 6066 §3), lowercase, no trailing dot.
func normalize(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if a, err := idna.Lookup.ToASCII(name); err == nil {
		return a
	}
	return name
}

// selfSigned loads dir/<host>.crt and .key, or generates them when they
// are missing, unreadable, for another name, or (about to be) expired.
func (s *Store) selfSigned(dir, host string) (*tls.Certificate, error) {
	name := normalize(host)
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	// Missing or damaged files are (re)generated.
	if c, err := loadPair(certPath, keyPath); err == nil {
		if c.Leaf.VerifyHostname(name) == nil && c.Leaf.VerifyHostname("service."+name) == nil &&
			s.now().Add(renewBefore).Before(c.Leaf.NotAfter) {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := generate(name, s.now())
	if err != nil {
		return nil, err
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return withLeaf(c)
}

// generate makes a self-signed ECDSA P-256 server certificate for the
// ASCII host name and its subdomains (the services on them, such as
// conference.host), valid for selfSignedLifetime from now.
func generate(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"Starling self-signed"}},
		DNSNames:              []string{host, "*." + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeFile replaces path atomically (temporary file, then rename) with
// the given permissions.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
