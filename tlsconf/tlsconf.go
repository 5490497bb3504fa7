// Package tlsconf owns the server's TLS certificates, one per virtual
// host, and the tls.Config used by the client listeners: STARTTLS
// (RFC 6120 §5) and direct TLS with ALPN "xmpp-client" (XEP-0368).
//
// Only TLS 1.2 and 1.3 are offered (RFC 7590 §3.1 recommends nothing
// older). The certificate is chosen by SNI (RFC 6066 §3; RFC 6120
// §13.7.1.2 has clients send it), falling back to the first host's.
//
// A host may have two certificates, an RSA and an ECDSA one
// (config.CertFiles): a handshake gets the ECDSA one when the client
// supports it (tls.ClientHelloInfo.SupportsCertificate), else the RSA one.
//
// Every configuration the Store hands out encrypts TLS session tickets
// (RFC 5077; RFC 8446 §4.6.1) with one key ring the Store owns, in memory
// only, kept across Reload (see ticketRing), so that a client resumes its
// TLS session on any listener and the resumed handshake skips the
// certificate and its signature.
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
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
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
	now func() time.Time // set at construction, never changed
	// acme answers tls-alpn-01 challenges (RFC 8737) when set.
	acme atomic.Pointer[ACME]

	tickets *ticketRing
	chosen  chosenLeaves

	cfgMu   sync.Mutex             // guards configs
	configs map[string]*tls.Config // ServerConfig's, by NextProtos
}

// certSet is an immutable snapshot of the certificates.
type certSet struct {
	byName map[string]*hostCerts // keyed by lowercase A-label host name
	def    *hostCerts            // the first host's
	// acme are the hosts (A-labels) whose certificate ACME provides.
	acme map[string]bool
}

// hostCerts are a host's certificates, immutable: one, or an ECDSA and an
// RSA one in this order of preference.
type hostCerts struct {
	certs []*tls.Certificate
	// id names these certificates in session tickets: a ticket resumes
	// only while the host has the certificates it was issued with.
	id []byte
}

func newHostCerts(certs ...*tls.Certificate) *hostCerts {
	h := sha256.New()
	io.WriteString(h, ticketExtraPrefix)
	for _, c := range certs {
		h.Write(c.Certificate[0])
	}
	return &hostCerts{certs: certs, id: h.Sum([]byte(ticketExtraPrefix))}
}

// New loads or generates the certificate of every host in
// cfg.Server.Hosts (see config.Config.HostTLS).
func New(cfg *config.Config) (*Store, error) { return newWithClock(cfg, time.Now) }

// newWithClock is New with the clock that tells when certificates expire and
// when session ticket keys rotate.
func newWithClock(cfg *config.Config, now func() time.Time) (*Store, error) {
	t, err := newTicketRing(now)
	if err != nil {
		return nil, err
	}
	s := &Store{now: now, tickets: t, configs: map[string]*tls.Config{}}
	if err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the certificate files again (on SIGHUP) and regenerates
// expiring self-signed ones. On error the certificates in use are kept
// and the error returned; handshakes that start after a successful Reload
// use the new certificates. Session ticket keys are kept: tickets of a
// host whose certificates did not change still resume.
func (s *Store) Reload(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(cfg.Server.Hosts) == 0 {
		return errors.New("tlsconf: no hosts")
	}
	set := &certSet{byName: make(map[string]*hostCerts, len(cfg.Server.Hosts)), acme: map[string]bool{}}
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

// load returns host's configured certificates, its ACME one, or its
// self-signed one.
func (s *Store) load(cfg *config.Config, host string) (*hostCerts, error) {
	t := cfg.HostTLS(host)
	var c *tls.Certificate
	var err error
	switch {
	case cfg.ACMEHost(host):
		if c = loadACME(ACMEDir(cfg), normalize(host), s.now()); c == nil {
			// Until the CA issues one.
			c, err = s.selfSigned(filepath.Join(cfg.Server.DataDir, "certs"), host)
		}
	case t.IsZero():
		c, err = s.selfSigned(filepath.Join(cfg.Server.DataDir, "certs"), host)
	default:
		certs, err := t.Load()
		if err != nil {
			return nil, err
		}
		return newHostCerts(certs...), nil
	}
	if err != nil {
		return nil, err
	}
	return newHostCerts(c), nil
}

// loadPair loads a certificate chain and key, with Leaf parsed (files of
// tlsconf's own; configured ones go through config.CertFiles.Load).
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
	h := newHostCerts(c)
	if set.def == old.byName[name] {
		set.def = h
	}
	set.byName[name] = h
	s.cur.Store(set)
}

// ServerConfig returns a TLS configuration for a listener: TLS 1.2 and
// 1.3 only, the certificate chosen by SNI at handshake time (so a Reload
// or a renewal applies to new handshakes; with two certificates, ECDSA
// when the client supports it), session tickets under the Store's key
// ring, and ALPN protocols nextProtos (the direct TLS listener passes
// "xmpp-client", XEP-0368 §3). With ACME's tls-alpn-01 challenge, a
// handshake that offers the ALPN protocol "acme-tls/1" alone (the CA's,
// RFC 8737 §3) gets the challenge certificate instead, on every listener
// alike.
//
// The configuration is built once per set of nextProtos and shared by
// every connection, which keeps it alive: a caller must not change it,
// but may change a copy (tls.Config.Clone; s2s sets ClientAuth). Copies
// share the certificates and the ticket keys, which live in the Store.
func (s *Store) ServerConfig(nextProtos ...string) *tls.Config {
	key := strings.Join(nextProtos, "\x00")
	s.cfgMu.Lock()
	base, ok := s.configs[key]
	if !ok {
		base = s.newServerConfig(nextProtos)
		s.configs[key] = base
	}
	s.cfgMu.Unlock()
	return base
}

func (s *Store) newServerConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS13,
		NextProtos: append([]string(nil), nextProtos...),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			h := s.cur.Load().pick(hello.ServerName)
			if len(h.certs) == 1 {
				return h.certs[0], nil
			}
			c := choose(h, hello)
			s.chosen.record(hello.Conn, c.Leaf, s.now())
			return c, nil
		},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
				if h := s.cur.Load().pick(hello.ServerName); len(h.certs) > 1 {
					// What a full handshake would present, for a resumed
					// one, which presents none (see PresentedLeaf);
					// GetCertificate records its choice over it.
					s.chosen.record(hello.Conn, choose(h, hello).Leaf, s.now())
				}
				return nil, nil // the configuration above
			}
			m := s.acme.Load()
			if m == nil {
				return nil, errors.New("tlsconf: acme-tls/1 asked for, and ACME is off")
			}
			return m.challengeConfig(hello.ServerName)
		},
		WrapSession:   s.wrapSession,
		UnwrapSession: s.unwrapSession,
	}
}

// choose returns the first of a host's certificates the client supports,
// else the last (RSA, the most widely supported; the handshake then fails
// as it would have anyway).
func choose(h *hostCerts, hello *tls.ClientHelloInfo) *tls.Certificate {
	for _, c := range h.certs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return h.certs[len(h.certs)-1]
}

// Leaf returns the leaf certificate ServerConfig presents for serverName
// (the SNI value, "" for none), the ECDSA one of a host with two. For the
// tls-server-end-point channel binding, PresentedLeaf says which one a
// connection got.
func (s *Store) Leaf(serverName string) *x509.Certificate {
	return s.cur.Load().pick(serverName).certs[0].Leaf
}

// PresentedLeaf returns the leaf certificate the handshake of tc (a
// server connection of a ServerConfig, its handshake done) presented: the
// input of the tls-server-end-point channel binding (RFC 5929 §4.1: "the
// certificate as it appears in the server's Certificate message"). It is
// Leaf of tc's server name, unless the host has two certificates: then
// the one chosen for this connection. A resumed session presents none
// (RFC 8446 §2.2; RFC 5077 §3.1); the client's end-point hash is then
// that of the session's original handshake, and PresentedLeaf gives the
// certificate a full handshake with the same ClientHello would present,
// which is that one: a ticket resumes only while its host keeps the
// certificates it was issued with (see wrapSession), and the same client
// supports the same signature algorithms. (On TLS 1.3, clients bind with
// tls-exporter, RFC 9266, which needs no certificate.) Call it once per
// connection, after the handshake: the choice is forgotten then.
func (s *Store) PresentedLeaf(tc *tls.Conn) *x509.Certificate {
	if leaf := s.chosen.take(tc.NetConn()); leaf != nil {
		return leaf
	}
	return s.Leaf(tc.ConnectionState().ServerName)
}

// Certificate returns the certificate of host (the default one for a
// name not served), the ECDSA one of a host with two: what federation
// presents to other servers, as a TLS client too (XEP-0178).
func (s *Store) Certificate(host string) *tls.Certificate {
	return s.cur.Load().pick(host).certs[0]
}

// pick selects by server name, case-insensitively: a host's, or for a
// service on a host's subdomain (conference.host) the host's; else the
// default.
func (set *certSet) pick(serverName string) *hostCerts {
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
