package tlsconf

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/starling-xmpp/starling/config"
)

// ACMEChallengePath is where http-01 challenges are fetched (RFC 8555
// §8.3): http://<name>/.well-known/acme-challenge/<token>.
const ACMEChallengePath = "/.well-known/acme-challenge/"

const (
	// acmeTimeout bounds one certificate's issuance: order, validations,
	// finalization and download.
	acmeTimeout = 5 * time.Minute
	// acmeMinRetry and acmeMaxRetry bound the wait after a failed
	// issuance, doubled at each failure in a row: soon enough to fix a
	// typo, rare enough for the CA's rate limits (Let's Encrypt allows 5
	// failed validations per name and hour).
	acmeMinRetry = time.Minute
	acmeMaxRetry = 6 * time.Hour
	// acmeMaxWait is the longest the manager sleeps without looking
	// again, whatever the certificates' dates say (a machine that slept,
	// a clock that jumped).
	acmeMaxWait = time.Hour
)

// ACME gets and renews the certificates of the hosts whose certificate
// comes from an ACME certificate authority (RFC 8555; config.ACMEHost):
// one certificate per host, for the host and the domains of its services
// (conference.host, upload.host), proven by the http-01 (RFC 8555 §8.3)
// or tls-alpn-01 (RFC 8737) challenge. The account key is kept in
// data_dir/acme/account.key, each certificate and its key in
// ACMEDir/<host>.crt and .key. A certificate is renewed when two thirds
// of its lifetime have passed (30 days before expiry for Let's Encrypt's
// 90 days), or at once when it does not cover every name; the Store gives
// the new one to the handshakes that start after, while connections
// already made keep theirs.
type ACME struct {
	store     *Store
	log       *slog.Logger
	dir       string // ACMEDir
	challenge string
	email     string
	client    *acme.Client
	hosts     []string // A-labels
	names     func(host string) []string
	// clock dates renewals (SetClock), issue gets a certificate for
	// names (obtain; tests set it).
	clock atomic.Pointer[func() time.Time]
	issue func(ctx context.Context, names []string) (*tls.Certificate, error)
	wake  chan struct{} // a new clock

	obtainMu   sync.Mutex // one issuance at a time
	registered bool       // guarded by obtainMu

	mu     sync.Mutex                  // guards the fields below
	tokens map[string]string           // http-01: token → key authorization
	alpn   map[string]*tls.Certificate // tls-alpn-01: name → challenge certificate
	leaves map[string]*x509.Certificate
	state  map[string]*acmeState
}

// acmeState is what the manager remembers of one host's failures.
type acmeState struct {
	failures int
	retryAt  time.Time
}

// ACMEDir is where the certificates of the CA at tls.acme_directory are
// kept: data_dir/acme/<the directory URL's host and path>, so that
// certificates of another CA (Let's Encrypt's staging one) are not taken
// for this one's.
func ACMEDir(cfg *config.Config) string {
	u, err := url.Parse(cfg.TLS.ACMEDirectory)
	name := "directory"
	if err == nil {
		name = u.Host + strings.ReplaceAll(strings.TrimSuffix(u.Path, "/"), "/", "-")
	}
	name = strings.NewReplacer(":", "_", string(filepath.Separator), "-").Replace(name)
	return filepath.Join(cfg.Server.DataDir, "acme", name)
}

// NewACME returns the manager of the ACME hosts of cfg (none: nil, nil)
// and makes the store answer tls-alpn-01 challenges through it. names
// gives the domains a host's certificate must cover besides the host
// itself (its services' subdomains); it is asked at every renewal. Run
// does the work.
func NewACME(cfg *config.Config, store *Store, log *slog.Logger, names func(host string) []string) (*ACME, error) {
	var hosts []string
	for _, h := range cfg.Server.Hosts {
		if cfg.ACMEHost(h) {
			hosts = append(hosts, normalize(h))
		}
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	key, err := accountKey(filepath.Join(cfg.Server.DataDir, "acme", "account.key"))
	if err != nil {
		return nil, fmt.Errorf("acme account key: %w", err)
	}
	hc := http.DefaultClient
	if cfg.TLS.ACMECAFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pemBytes, err := os.ReadFile(cfg.TLS.ACMECAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.acme_ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("tls.acme_ca_file: %s holds no PEM certificate", cfg.TLS.ACMECAFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		hc = &http.Client{Transport: tr}
	}
	m := &ACME{
		store:     store,
		log:       log,
		dir:       ACMEDir(cfg),
		challenge: cfg.TLS.ACMEChallenge,
		email:     cfg.TLS.ACMEEmail,
		client: &acme.Client{
			Key:          key,
			DirectoryURL: cfg.TLS.ACMEDirectory,
			HTTPClient:   hc,
			UserAgent:    "Starling",
		},
		hosts:  hosts,
		names:  names,
		wake:   make(chan struct{}, 1),
		tokens: map[string]string{},
		alpn:   map[string]*tls.Certificate{},
		leaves: map[string]*x509.Certificate{},
		state:  map[string]*acmeState{},
	}
	m.issue = m.obtain
	now := time.Now
	m.clock.Store(&now)
	for _, h := range hosts {
		if c := loadACME(m.dir, h, m.now()); c != nil {
			m.leaves[h] = c.Leaf
		}
		m.state[h] = &acmeState{}
	}
	store.acme.Store(m)
	return m, nil
}

// SetClock makes now the clock that tells when certificates are due, and
// looks at them again at once: for tests, which move it to a renewal.
func (m *ACME) SetClock(now func() time.Time) {
	m.clock.Store(&now)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *ACME) now() time.Time { return (*m.clock.Load())() }

// Challenge is the challenge type in use ("http-01" or "tls-alpn-01").
func (m *ACME) Challenge() string { return m.challenge }

// Run gets the certificates that are missing, then renews each when it is
// due, until ctx is done. Failures are logged and tried again later,
// after a minute at first, up to six hours.
func (m *ACME) Run(ctx context.Context) {
	for {
		next := m.round(ctx)
		t := time.NewTimer(min(max(next.Sub(m.now()), 0), acmeMaxWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.wake:
			t.Stop()
		}
	}
}

// round gets the certificates that are due and returns when the next one
// is (Run waits acmeMaxWait at most).
func (m *ACME) round(ctx context.Context) time.Time {
	var next time.Time // none: the zero time, never returned
	for _, host := range m.hosts {
		if ctx.Err() != nil {
			break
		}
		names := m.hostNames(host)
		m.mu.Lock()
		st, leaf := m.state[host], m.leaves[host]
		retryAt := st.retryAt
		m.mu.Unlock()
		due := renewAt(leaf, names)
		if now := m.now(); !due.After(now) && !retryAt.After(now) {
			if err := m.Renew(ctx, host); err != nil {
				if ctx.Err() != nil {
					break
				}
				m.mu.Lock()
				st.failures++
				wait := min(acmeMinRetry<<min(st.failures-1, 16), acmeMaxRetry)
				st.retryAt = m.now().Add(wait)
				retryAt = st.retryAt
				m.mu.Unlock()
				m.log.Error("acme: no certificate", "host", host, "names", strings.Join(names, ","), "retry_in", wait.String(), "err", err)
			} else {
				m.mu.Lock()
				*st = acmeState{}
				retryAt = time.Time{}
				leaf = m.leaves[host]
				m.mu.Unlock()
			}
			due = renewAt(leaf, names)
		}
		if retryAt.After(due) {
			due = retryAt
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	if next.IsZero() {
		next = m.now().Add(acmeMaxWait)
	}
	return next
}

// renewAt is when the certificate leaf of a host must be replaced: when
// two thirds of its lifetime have passed, or at once if there is none or
// it does not cover every name.
func renewAt(leaf *x509.Certificate, names []string) time.Time {
	if leaf == nil {
		return time.Time{}
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return time.Time{}
		}
	}
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// hostNames is host followed by the other names its certificate covers,
// as A-labels, each once.
func (m *ACME) hostNames(host string) []string {
	names := []string{host}
	if m.names != nil {
		for _, n := range m.names(host) {
			if n = normalize(n); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names[1:])
	return names
}

// Renew gets a new certificate for host (one of the ACME hosts) now,
// whether or not it is due, and installs it for the handshakes that start
// after; the connections already made keep theirs.
func (m *ACME) Renew(ctx context.Context, host string) error {
	host = normalize(host)
	if !slices.Contains(m.hosts, host) {
		return fmt.Errorf("acme: %s is not a host whose certificate ACME provides", host)
	}
	names := m.hostNames(host)
	m.obtainMu.Lock()
	defer m.obtainMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, acmeTimeout)
	defer cancel()
	c, err := m.issue(ctx, names)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.leaves[host] = c.Leaf
	m.mu.Unlock()
	m.store.install(host, c)
	m.log.Info("acme: new certificate", "host", host, "names", strings.Join(names, ","),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"renew_at", renewAt(c.Leaf, names).UTC().Format(time.RFC3339))
	return nil
}

// register creates the account, or finds the one of the key (RFC 8555
// §7.3), accepting the CA's terms of service. Called with obtainMu held.
func (m *ACME) register(ctx context.Context) error {
	if m.registered {
		return nil
	}
	acct := &acme.Account{}
	if m.email != "" {
		acct.Contact = []string{"mailto:" + m.email}
	}
	if _, err := m.client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return fmt.Errorf("registering an account at %s: %w", m.client.DirectoryURL, err)
	}
	m.registered = true
	return nil
}

// obtain orders a certificate for names (the host first), proves each
// name with the configured challenge, and writes the certificate and its
// new key to the directory. Called with obtainMu held.
func (m *ACME) obtain(ctx context.Context, names []string) (*tls.Certificate, error) {
	if err := m.register(ctx); err != nil {
		return nil, err
	}
	order, err := m.client.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		return nil, fmt.Errorf("ordering a certificate for %s: %w", strings.Join(names, ", "), err)
	}
	defer m.forget(names)
	for _, u := range order.AuthzURLs {
		if err := m.authorize(ctx, u); err != nil {
			return nil, err
		}
	}
	if order, err = m.client.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("waiting for the order of %s: %w", strings.Join(names, ", "), err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		return nil, err
	}
	chain, _, err := m.client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalizing the order of %s: %w", strings.Join(names, ", "), err)
	}
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA's certificate for %s: %w", names[0], err)
	}
	c, err := withLeaf(pair)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if err := c.Leaf.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("the CA's certificate for %s: %w", names[0], err)
		}
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	certPath, keyPath := acmePaths(m.dir, names[0])
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// authorize proves the name of the authorization at u, unless the CA
// holds it valid already.
func (m *ACME) authorize(ctx context.Context, u string) error {
	z, err := m.client.GetAuthorization(ctx, u)
	if err != nil {
		return fmt.Errorf("fetching an authorization: %w", err)
	}
	name := z.Identifier.Value
	switch z.Status {
	case acme.StatusValid:
		return nil
	case acme.StatusPending:
	default:
		return fmt.Errorf("the authorization of %s is %s", name, z.Status)
	}
	var chal *acme.Challenge
	var offered []string
	for _, c := range z.Challenges {
		offered = append(offered, c.Type)
		if c.Type == m.challenge {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("the CA offers no %s challenge for %s (it offers %s): set tls.acme_challenge to another", m.challenge, name, strings.Join(offered, ", "))
	}
	switch m.challenge {
	case config.ChallengeHTTP01:
		ka, err := m.client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.tokens[chal.Token] = ka
		m.mu.Unlock()
	case config.ChallengeTLSALPN01:
		c, err := m.client.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.alpn[normalize(name)] = &c
		m.mu.Unlock()
	}
	if _, err := m.client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accepting the %s challenge for %s: %w", m.challenge, name, err)
	}
	if _, err := m.client.WaitAuthorization(ctx, u); err != nil {
		var ae *acme.AuthorizationError
		if errors.As(err, &ae) {
			return fmt.Errorf("the CA could not validate %s with %s (%s): %w", name, m.challenge, m.hint(), err)
		}
		return fmt.Errorf("waiting for the validation of %s: %w", name, err)
	}
	return nil
}

// hint says what the CA must reach for the challenge in use.
func (m *ACME) hint() string {
	if m.challenge == config.ChallengeTLSALPN01 {
		return "it connects to port 443 of the name's address, which must be one of the server's TLS listeners"
	}
	return "it fetches http://<name>" + ACMEChallengePath + "… on port 80, which must reach tls.acme_http_listen or http.listen"
}

// forget drops the challenge responses of an order that is over.
func (m *ACME) forget(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		delete(m.alpn, n)
	}
	clear(m.tokens)
}

// ServeHTTP answers the CA's http-01 requests at ACMEChallengePath
// (RFC 8555 §8.3) with the key authorization of the token, and 404 to
// anything else.
func (m *ACME) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, ACMEChallengePath)
	m.mu.Lock()
	ka, known := m.tokens[token]
	m.mu.Unlock()
	if !ok || !known || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write([]byte(ka))
}

// challengeConfig is the TLS configuration of a tls-alpn-01 validation
// handshake for serverName (RFC 8737 §3): the challenge certificate,
// ALPN acme-tls/1.
func (m *ACME) challengeConfig(serverName string) (*tls.Config, error) {
	m.mu.Lock()
	c := m.alpn[normalize(serverName)]
	m.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("tlsconf: no tls-alpn-01 challenge for %q", serverName)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{acme.ALPNProto},
		Certificates: []tls.Certificate{*c},
	}, nil
}

// acmePaths are the certificate chain and key files of host in dir.
func acmePaths(dir, host string) (certPath, keyPath string) {
	return filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
}

// loadACME returns the certificate of host kept in dir if it is there,
// names host and has not expired at now; else nil.
func loadACME(dir, host string, now time.Time) *tls.Certificate {
	c, err := loadPair(acmePaths(dir, host))
	if err != nil || c.Leaf.VerifyHostname(host) != nil || !now.Before(c.Leaf.NotAfter) {
		return nil
	}
	return c
}

// accountKey loads the ACME account's key from path, or makes it (ECDSA
// P-256) and writes it there.
func accountKey(path string) (crypto.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: not a signing key", path)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}
