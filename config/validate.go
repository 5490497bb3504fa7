package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/net/idna"
	"mellium.im/xmpp/jid"
)

// Ranges accepted by Validate.
const (
	// MinStanzaBytes is the smallest max_stanza_bytes: RFC 6120 §13.12
	// (item 4) requires servers to accept stanzas of at least 10000 bytes.
	MinStanzaBytes = 10000
	MaxStanzaBytes = 16 << 20

	maxTimeout   = 24 * time.Hour
	maxSessions  = 10000
	maxAuthTries = 100
	// maxAuthFailures bounds the failed-login limits: each failure
	// within the window is remembered.
	maxAuthFailures = 10000
	maxConnsPerAddr = 1000000
	maxQueueLength  = 1000000
	maxQueueBytes   = 1 << 30
)

// Validate checks every setting and returns all problems found as
// *Problems, or nil.
func (c *Config) Validate() error {
	p := &Problems{}

	// [server]
	if len(c.Server.Hosts) == 0 {
		p.add("server.hosts", "at least one host is required")
	}
	for i, h := range c.Server.Hosts {
		if err := checkHost(h); err != nil {
			p.add("server.hosts", "%q: %v", h, err)
		} else if slices.Index(c.Server.Hosts, h) != i {
			p.add("server.hosts", "%q is listed twice", h)
		}
	}
	if c.Server.DataDir == "" {
		p.add("server.data_dir", "must not be empty")
	}
	checkAdmins(p, "server.admins", c.Server.Admins, c.Server.Hosts)

	// [c2s]
	if len(c.C2S.Listen)+len(c.C2S.DirectTLSListen)+len(c.HTTP.Listen)+len(c.HTTP.TLSListen) == 0 {
		p.add("c2s", "no listener: set c2s.listen or c2s.direct_tls_listen (or http.listen or http.tls_listen for web clients only)")
	}
	seen := map[string]bool{}
	for _, l := range []struct {
		path  string
		addrs []string
	}{
		{"c2s.listen", c.C2S.Listen}, {"c2s.direct_tls_listen", c.C2S.DirectTLSListen},
		{"http.listen", c.HTTP.Listen}, {"http.tls_listen", c.HTTP.TLSListen},
		{"s2s.listen", c.S2S.Listen}, {"s2s.direct_tls_listen", c.S2S.DirectTLSListen},
	} {
		for _, a := range l.addrs {
			if err := checkListen(a); err != nil {
				p.add(l.path, "%q: %v", a, err)
				continue
			}
			if _, port, _ := net.SplitHostPort(a); port != "0" && seen[a] {
				p.add(l.path, "%q is listed twice", a)
			}
			seen[a] = true
		}
	}

	// [metrics]
	if a := c.Metrics.Listen; a != "" {
		if err := checkListen(a); err != nil {
			p.add("metrics.listen", "%q: %v", a, err)
		} else if _, port, _ := net.SplitHostPort(a); port != "0" && seen[a] {
			p.add("metrics.listen", "%q is another listener's address too", a)
		}
	} else if c.Metrics.Pprof {
		p.add("metrics.pprof", "needs metrics.listen, the listener it is served on")
	}

	// [s2s] (its listeners are checked with the others above)
	checkS2S(p, &c.S2S)

	// [http] (its listeners are checked with the others above)
	for _, pr := range c.HTTP.TrustedProxies {
		if _, err := ParseProxy(pr); err != nil {
			p.add("http.trusted_proxies", "%q: %v", pr, err)
		}
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if _, err := ParseOrigin(o); err != nil {
			p.add("http.allowed_origins", "%q: %v", o, err)
		}
	}
	checkWebClient(p, c)
	durRange(p, "http.websocket_ping_interval", c.HTTP.WebSocketPingInterval)
	durRange(p, "http.bosh_max_wait", c.HTTP.BOSHMaxWait)
	durRange(p, "http.bosh_inactivity", c.HTTP.BOSHInactivity)

	// [tls] and [hosts."x".tls]
	checkTLS(p, "tls", c.TLS.Files())
	checkACME(p, c)
	for _, h := range slices.Sorted(maps.Keys(c.Hosts)) {
		if !slices.Contains(c.Server.Hosts, h) {
			p.add(toml.Key{"hosts", h}.String(), "not listed in server.hosts")
			continue
		}
		checkTLS(p, toml.Key{"hosts", h, "tls"}.String(), c.Hosts[h].TLS)
		checkAdmins(p, toml.Key{"hosts", h, "admins"}.String(), c.Hosts[h].Admins, c.Server.Hosts)
	}

	// [storage]
	switch c.Storage.Driver {
	case "sqlite":
	case "postgres":
		if c.Storage.DSN == "" {
			p.add("storage.dsn", `required when storage.driver is "postgres"`)
		}
	default:
		p.add("storage.driver", `must be "sqlite" or "postgres", not %q`, c.Storage.Driver)
	}

	// [auth]
	intRange(p, "auth.scram_iterations", c.Auth.SCRAMIterations, MinSCRAMIterations, MaxSCRAMIterations)
	if len(c.Auth.SCRAMHashes) == 0 {
		p.add("auth.scram_hashes", `must name at least one of "SHA-1", "SHA-256", "SHA-512"`)
	}
	for i, h := range c.Auth.SCRAMHashes {
		switch {
		case h != "SHA-1" && h != "SHA-256" && h != "SHA-512":
			p.add("auth.scram_hashes", `must be "SHA-1", "SHA-256" or "SHA-512", not %q`, h)
		case slices.Contains(c.Auth.SCRAMHashes[:i], h):
			p.add("auth.scram_hashes", "%q is listed twice", h)
		}
	}

	// [c2s] stream management (XEP-0198 §5)
	if d := c.C2S.ResumeTimeout.Duration; d < 0 || d > maxResume {
		p.add("c2s.resume_timeout", "must be between 0 (no resumption) and %v, not %v", maxResume, d)
	}
	if d := c.C2S.MaxResumeTimeout.Duration; d < c.C2S.ResumeTimeout.Duration || d > maxResume {
		p.add("c2s.max_resume_timeout", "must be at least c2s.resume_timeout (%v) and at most %v, not %v", c.C2S.ResumeTimeout.Duration, maxResume, d)
	}

	// [limits]
	l := c.Limits
	intRange(p, "limits.max_stanza_bytes", l.MaxStanzaBytes, MinStanzaBytes, MaxStanzaBytes)
	durRange(p, "limits.connect_timeout", l.ConnectTimeout)
	durRange(p, "limits.auth_timeout", l.AuthTimeout)
	durRange(p, "limits.idle_timeout", l.IdleTimeout)
	durRange(p, "limits.ping_timeout", l.PingTimeout)
	intRange(p, "limits.max_sessions_per_account", l.MaxSessionsPerAccount, 1, maxSessions)
	intRange(p, "limits.max_auth_attempts", l.MaxAuthAttempts, 1, maxAuthTries)
	intRange(p, "limits.auth_failures_per_address", l.AuthFailuresPerAddress, 0, maxAuthFailures)
	intRange(p, "limits.auth_failures_per_account", l.AuthFailuresPerAccount, 0, maxAuthFailures)
	durRange(p, "limits.auth_failure_window", l.AuthFailureWindow)
	intRange(p, "limits.ipv6_prefix", l.IPv6Prefix, 32, 128)
	intRange(p, "limits.max_unauthenticated_per_address", l.MaxUnauthenticatedPerAddress, 1, maxConnsPerAddr)
	intRange(p, "limits.outbound_queue", l.OutboundQueue, 1, maxQueueLength)
	intRange(p, "limits.outbound_queue_bytes", l.OutboundQueueBytes, MinStanzaBytes, maxQueueBytes)
	if l.OutboundQueueBytes < l.MaxStanzaBytes && l.MaxStanzaBytes <= MaxStanzaBytes {
		p.add("limits.outbound_queue_bytes", "must be at least limits.max_stanza_bytes (%d), not %d", l.MaxStanzaBytes, l.OutboundQueueBytes)
	}
	intRange(p, "limits.max_roster_items", l.MaxRosterItems, 1, 100000)

	// [log]
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", `must be "debug", "info", "warn" or "error", not %q`, c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		p.add("log.format", `must be "text" or "json", not %q`, c.Log.Format)
	}
	return p.err()
}

// checkAdmins checks a list of administrators at path: bare JIDs of
// accounts of the hosts served, each written once. An administrator of
// another server is refused: the commands would trust that server to
// vouch for its user.
func checkAdmins(p *Problems, path string, admins, hosts []string) {
	var seen []jid.JID
	for _, a := range admins {
		j, err := jid.Parse(a)
		switch {
		case err != nil:
			p.add(path, "%q: not a JID: %v", a, err)
		case j.Localpart() == "" || j.Resourcepart() != "":
			p.add(path, "%q: must be the bare JID of an account, like \"admin@example.org\"", a)
		case !slices.Contains(hosts, j.Domainpart()):
			p.add(path, "%q: not an account of a host in server.hosts", a)
		case slices.ContainsFunc(seen, j.Equal):
			p.add(path, "%q is listed twice", a)
		default:
			seen = append(seen, j)
		}
	}
}

// domainProfile enforces DNS rules on a host name: LDH labels (STD3),
// label and name lengths, and IDNA2008 for internationalized names.
var domainProfile = idna.New(idna.MapForLookup(), idna.StrictDomainName(true), idna.VerifyDNSLength(true), idna.BidiRule())

// checkHost accepts a domain name in the canonical form of a JID
// domainpart (RFC 7622 §3.2): lowercase, U-labels, no trailing dot. IP
// literals are refused: a virtual host needs a name for SNI and
// certificates.
func checkHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host name")
	}
	if net.ParseIP(h) != nil || len(h) > 1 && h[0] == '[' {
		return fmt.Errorf("an IP address is not a host name")
	}
	j, err := jid.New("", h, "")
	if err != nil {
		return fmt.Errorf("not a valid domain name: %v", err)
	}
	if _, err := domainProfile.ToASCII(h); err != nil {
		return fmt.Errorf("not a valid domain name: %v", err)
	}
	if c := j.Domainpart(); c != h {
		return fmt.Errorf("not in canonical form: write %q", c)
	}
	return nil
}

// checkListen accepts host:port with a numeric port; an empty host means
// every interface.
func checkListen(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("not a host:port address (%v)", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535")
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := domainProfile.ToASCII(host); err != nil {
			return fmt.Errorf("invalid host: %v", err)
		}
	}
	return nil
}

// checkWebClient checks http.web_client_path always, and, when the web
// client is on, that it has a listener and that Converse.js is installed
// in http.web_client_dir.
func checkWebClient(p *Problems, c *Config) {
	h := c.HTTP
	if err := CheckWebClientPath(h.WebClientPath); err != nil {
		p.add("http.web_client_path", "%q: %v", h.WebClientPath, err)
	}
	if !h.WebClient {
		return
	}
	if len(h.Listen)+len(h.TLSListen) == 0 {
		p.add("http.web_client", "the web client is served on the web listener: set http.listen or http.tls_listen")
	}
	if h.WebClientDir == "" {
		p.add("http.web_client_dir", "must not be empty when http.web_client is on")
		return
	}
	if err := CheckWebClientDir(h.WebClientDir); err != nil {
		p.add("http.web_client_dir", "%v", err)
	}
}

// CheckWebClientDir checks that dir, http.web_client_dir, holds the
// converse.js package: each of WebClientFiles a file that opens within
// dir (os.OpenInRoot, as the web client serves them).
func CheckWebClientDir(dir string) error {
	for _, f := range WebClientFiles {
		name := filepath.Join(dir, filepath.FromSlash(f))
		fl, err := os.OpenInRoot(dir, filepath.FromSlash(f))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s does not exist: install Converse.js with `make webclient` "+
					"(npm ci --prefix webclient/js) in Starling's source tree, or set http.web_client_dir "+
					"to a directory holding the converse.js npm package", name)
			}
			return err
		}
		fi, err := fl.Stat()
		fl.Close()
		switch {
		case err != nil:
			return err
		case fi.IsDir():
			return fmt.Errorf("%s is a directory", name)
		}
	}
	return nil
}

// checkTLS checks the certificate files at path ("tls" or
// `hosts."x".tls`): each pair both or neither set, the ECDSA pair only
// beside cert and key, the files readable, and then what
// CertFiles.Load checks (each key matches its certificate; with two, an
// RSA and an ECDSA certificate for the same names).
func checkTLS(p *Problems, path string, t CertFiles) {
	if t.IsZero() {
		return
	}
	ok := true
	for _, pair := range [][2]string{{"cert", "key"}, {"ecdsa_cert", "ecdsa_key"}} {
		c, k := t.Cert, t.Key
		if pair[0] == "ecdsa_cert" {
			c, k = t.ECDSACert, t.ECDSAKey
		}
		switch {
		case c == "" && k == "":
		case c == "":
			p.add(path+"."+pair[0], "required when %s.%s is set", path, pair[1])
			ok = false
		case k == "":
			p.add(path+"."+pair[1], "required when %s.%s is set", path, pair[0])
			ok = false
		default:
			ok = checkFile(p, path+"."+pair[0], c) && ok
			ok = checkFile(p, path+"."+pair[1], k) && ok
		}
	}
	if t.Dual() && t.Cert == "" && t.Key == "" {
		p.add(path+".cert", "required when %s.ecdsa_cert is set: the RSA certificate that clients without ECDSA get (with one certificate, of any key type, set cert and key alone)", path)
		ok = false
	}
	if !ok {
		return
	}
	if _, err := t.Load(); err != nil {
		var ce *CertError
		if errors.As(err, &ce) {
			p.add(path+"."+ce.Key, "%s", ce.Msg)
		} else {
			p.add(path+".cert", "%v", err)
		}
	}
}

// checkACME checks the acme keys of [tls] when tls.acme is on: a
// directory URL over HTTPS, a known challenge type with a listener where
// the CA can reach it, hosts that a public CA can issue for, and no
// certificate files beside it.
func checkACME(p *Problems, c *Config) {
	t := c.TLS
	if !t.ACME {
		return
	}
	if !t.IsZero() {
		p.add("tls.acme", `cannot be combined with tls.cert and tls.key: ACME gets the certificates itself (a host may keep files of its own in [hosts."name".tls])`)
	}
	if u, err := url.Parse(t.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add("tls.acme_directory", "must be the https:// URL of the CA's ACME directory (Let's Encrypt's is %s), not %q", LetsEncrypt, t.ACMEDirectory)
	}
	if t.ACMEEmail != "" {
		if a, err := mail.ParseAddress(t.ACMEEmail); err != nil || a.Address != t.ACMEEmail {
			p.add("tls.acme_email", "must be a plain e-mail address such as admin@example.org, not %q", t.ACMEEmail)
		}
	}
	if t.ACMECAFile != "" && checkFile(p, "tls.acme_ca_file", t.ACMECAFile) {
		if pem, err := os.ReadFile(t.ACMECAFile); err != nil {
			p.add("tls.acme_ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			p.add("tls.acme_ca_file", "%s holds no PEM certificate", t.ACMECAFile)
		}
	}
	switch t.ACMEChallenge {
	case ChallengeHTTP01:
		switch {
		case t.ACMEHTTPListen == "":
			if len(c.HTTP.Listen) == 0 {
				p.add("tls.acme_http_listen", "empty, and there is no http.listen to answer http-01 challenges on: set one (the CA connects to port 80)")
			}
		case checkListen(t.ACMEHTTPListen) != nil:
			p.add("tls.acme_http_listen", "%q: %v", t.ACMEHTTPListen, checkListen(t.ACMEHTTPListen))
		case strings.HasSuffix(t.ACMEHTTPListen, ":0"):
		case slices.Contains(c.HTTP.Listen, t.ACMEHTTPListen):
			p.add("tls.acme_http_listen", `%q is an http.listen address too: set acme_http_listen = "" to answer challenges on the web listener`, t.ACMEHTTPListen)
		}
	case ChallengeTLSALPN01:
		if len(c.C2S.DirectTLSListen)+len(c.HTTP.TLSListen)+len(c.S2S.DirectTLSListen) == 0 {
			p.add("tls.acme_challenge", "tls-alpn-01 is answered on the TLS listeners, and there is none: set http.tls_listen or c2s.direct_tls_listen (the CA connects to port 443)")
		}
	default:
		p.add("tls.acme_challenge", "must be %q or %q, not %q", ChallengeHTTP01, ChallengeTLSALPN01, t.ACMEChallenge)
	}
	for _, h := range c.Server.Hosts {
		if c.ACMEHost(h) && (net.ParseIP(h) != nil || !strings.Contains(h, ".")) {
			p.add("server.hosts", "%q: an ACME CA issues certificates for public DNS names only: give this host cert and key files in [hosts.%q.tls], or turn tls.acme off", h, h)
		}
	}
}

func checkFile(p *Problems, path, name string) bool {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.add(path, "%s does not exist", name)
		return false
	case err != nil:
		p.add(path, "%v", err)
		return false
	case fi.IsDir():
		p.add(path, "%s is a directory", name)
		return false
	}
	return true
}

func intRange(p *Problems, path string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(path, "must be between %d and %d, not %d", lo, hi, v)
	}
}

// maxResume bounds the resumption timeouts: a week.
const maxResume = 7 * 24 * time.Hour

func durRange(p *Problems, path string, d Duration) {
	if d.Duration <= 0 || d.Duration > maxTimeout {
		p.add(path, "must be positive and at most %v, not %v", maxTimeout, d.Duration)
	}
}

// checkS2S checks the [s2s] table but its listeners.
func checkS2S(p *Problems, s *S2S) {
	for _, d := range s.InsecureDomains {
		if err := checkHost(d); err != nil {
			p.add("s2s.insecure_domains", "%q: %v", d, err)
		}
	}
	if s.CAFile != "" {
		if _, err := os.Stat(s.CAFile); err != nil {
			p.add("s2s.ca_file", "%v", err)
		}
	}
	if s.Resolver != "" {
		if err := checkListen(s.Resolver); err != nil {
			p.add("s2s.resolver", "%q: %v", s.Resolver, err)
		}
	}
	durRange(p, "s2s.connect_timeout", s.ConnectTimeout)
	durRange(p, "s2s.negotiation_timeout", s.NegotiationTimeout)
	durRange(p, "s2s.idle_timeout", s.IdleTimeout)
	durRange(p, "s2s.keepalive", s.Keepalive)
	durRange(p, "s2s.retry_delay", s.RetryDelay)
	durRange(p, "s2s.max_retry_delay", s.MaxRetryDelay)
	if s.MaxRetryDelay.Duration < s.RetryDelay.Duration {
		p.add("s2s.max_retry_delay", "must be at least s2s.retry_delay (%v)", s.RetryDelay.Duration)
	}
	if s.MaxQueue < 1 || s.MaxQueue > maxQueueLength {
		p.add("s2s.max_queue", "must be from 1 to %d, not %d", maxQueueLength, s.MaxQueue)
	}
}
