// Package config owns Starling's configuration: the TOML file operators
// edit, its defaults and its validation.
//
// The file is strict (DESIGN.md, "Conventions"): a key the server does not
// know is an error naming its full path, a value of the wrong type or out of
// range is an error, and every problem is reported at once, one per line, as
// *Problems. Nothing is silently clamped. config.example.toml at the
// repository root documents every option with its default; a test keeps it
// equal to Default.
//
// Relative paths in a file (data_dir, certificate files, ...) are relative
// to the file's directory: Load resolves them (ResolvePaths). Those of the
// embedded defaults stay relative to the working directory of the process.
package config

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Config is the whole configuration. Each table of the TOML file is one
// field; see config.example.toml for every key and its default.
type Config struct {
	Server       Server       `toml:"server"`
	C2S          C2S          `toml:"c2s"`
	S2S          S2S          `toml:"s2s"`
	HTTP         HTTP         `toml:"http"`
	TLS          TLS          `toml:"tls"`
	Storage      Storage      `toml:"storage"`
	Registration Registration `toml:"registration"`
	Auth         Auth         `toml:"auth"`
	Limits       Limits       `toml:"limits"`
	Log          Log          `toml:"log"`
	Metrics      Metrics      `toml:"metrics"`
	// Hosts holds per-host overrides, keyed by a name listed in
	// Server.Hosts: [hosts."example.org".tls] and
	// [hosts."example.org".registration]. A setting left out of an
	// override falls back to the global table.
	Hosts map[string]Host `toml:"hosts"`
	// Modules holds the [modules.<name>] tables as written. The
	// configuration does not know the modules: the module list decodes
	// each table with DecodeModule, as strictly as the rest.
	Modules map[string]ModuleTable `toml:"modules"`
	// Dir is the directory relative paths were resolved from
	// (ResolvePaths): the configuration file's, or "" for the embedded
	// defaults, whose paths stay relative to the working directory.
	Dir string `toml:"-"`
}

// Server is the [server] table.
type Server struct {
	// Hosts are the virtual hosts (JID domainparts, RFC 7622 §3.2) served,
	// in canonical form: lowercase, U-labels for internationalized names,
	// no trailing dot. The first is the default for clients that send no
	// SNI and no stream 'to' it knows.
	Hosts []string `toml:"hosts"`
	// DataDir holds the SQLite database, generated certificates and other
	// server state.
	DataDir string `toml:"data_dir"`
	// Admins are the bare JIDs of the accounts (of hosts served here)
	// that administer every host from their clients: the service
	// administration commands (XEP-0133). A host's own list,
	// [hosts."x"] admins, replaces it for that host.
	Admins []string `toml:"admins"`
}

// C2S is the [c2s] table: client-to-server listeners.
type C2S struct {
	// Listen are host:port addresses for streams that negotiate STARTTLS
	// (RFC 6120 §5).
	Listen []string `toml:"listen"`
	// DirectTLSListen are host:port addresses where TLS starts at once,
	// with ALPN "xmpp-client" (XEP-0368).
	DirectTLSListen []string `toml:"direct_tls_listen"`
	// RequireTLS makes STARTTLS mandatory-to-negotiate on Listen
	// (RFC 6120 §5.3.1): no SASL or binding before TLS.
	RequireTLS bool `toml:"require_tls"`
	// StreamManagement offers XEP-0198 (acknowledgements and resumption)
	// after authentication.
	StreamManagement bool `toml:"stream_management"`
	// ResumeTimeout is how long a session that lost its connection waits
	// for its client to resume it (XEP-0198 §5) when the client asks for
	// no particular time; 0 turns resumption off.
	ResumeTimeout Duration `toml:"resume_timeout"`
	// MaxResumeTimeout bounds the time a client may ask for with the
	// 'max' attribute of <enable/>.
	MaxResumeTimeout Duration `toml:"max_resume_timeout"`
}

// S2S is the [s2s] table: federation with other servers (RFC 6120
// server-to-server streams), README "Federation".
type S2S struct {
	// Enabled turns federation on: the listeners below, and streams to
	// other servers for stanzas addressed to them.
	Enabled bool `toml:"enabled"`
	// Listen are host:port addresses for incoming streams that negotiate
	// STARTTLS (RFC 6120 §5).
	Listen []string `toml:"listen"`
	// DirectTLSListen are host:port addresses where TLS starts at once,
	// with ALPN "xmpp-server" (XEP-0368).
	DirectTLSListen []string `toml:"direct_tls_listen"`
	// RequireEncryption refuses streams, in and out, that do not
	// negotiate TLS (RFC 7590), except with InsecureDomains.
	RequireEncryption bool `toml:"require_encryption"`
	// InsecureDomains are remote domains exempt from RequireEncryption
	// (for testing).
	InsecureDomains []string `toml:"insecure_domains"`
	// RequireValidCertificates refuses a peer whose certificate does not
	// validate for its domain (RFC 6125), in which case dialback
	// (XEP-0220) is never used; by default dialback is the fallback, as
	// Prosody's s2s_secure_auth = false.
	RequireValidCertificates bool `toml:"require_valid_certificates"`
	// Bidi offers and asks for bidirectional streams (XEP-0288): one TCP
	// connection carries both directions between two servers.
	Bidi bool `toml:"bidi"`
	// CAFile is a PEM file of certificate authorities trusted for peers'
	// certificates besides the system's.
	CAFile string `toml:"ca_file"`
	// Resolver is the DNS server (host:port) asked for SRV and address
	// records of remote domains; "" uses the system's configuration.
	Resolver string `toml:"resolver"`
	// ConnectTimeout bounds each TCP connection attempt; NegotiationTimeout
	// the whole negotiation of a stream (TLS and authentication).
	ConnectTimeout     Duration `toml:"connect_timeout"`
	NegotiationTimeout Duration `toml:"negotiation_timeout"`
	// IdleTimeout closes a stream that carried nothing for that long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// Keepalive is the silence after which a whitespace keepalive is sent
	// on an outgoing stream (RFC 6120 §4.6.1).
	Keepalive Duration `toml:"keepalive"`
	// RetryDelay is how long, after a failed connection to a domain, new
	// stanzas for it are bounced at once before the next attempt; it
	// doubles with each failure in a row, up to MaxRetryDelay.
	RetryDelay    Duration `toml:"retry_delay"`
	MaxRetryDelay Duration `toml:"max_retry_delay"`
	// MaxQueue bounds the stanzas waiting for one remote domain's stream;
	// beyond it a stanza is refused with resource-constraint.
	MaxQueue int `toml:"max_queue"`
	// DialbackSecret keys the dialback keys (XEP-0220 §8.4); "" makes a
	// random one at start, which is right unless several nodes serve the
	// same domains.
	DialbackSecret string `toml:"dialback_secret"`
}

// HTTP is the [http] table: the listener for web clients, with XMPP over
// WebSocket (RFC 7395) at /xmpp-websocket, BOSH (XEP-0124, XEP-0206) at
// /http-bind and their discovery (XEP-0156) at /.well-known/host-meta. Both listener lists are empty by default: the
// web listener is off until configured.
type HTTP struct {
	// Listen are host:port addresses for plain HTTP, meant for a reverse
	// proxy that terminates TLS in front of the server. A session on it
	// counts as encrypted only when a trusted proxy says the client used
	// https (TrustedProxies).
	Listen []string `toml:"listen"`
	// TLSListen are host:port addresses for HTTPS, with each host's
	// certificate chosen by SNI as on the client listeners.
	TLSListen []string `toml:"tls_listen"`
	// TrustedProxies are the IP addresses or CIDR prefixes of reverse
	// proxies whose X-Forwarded-For, X-Forwarded-Proto and
	// X-Forwarded-Host headers are believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// AllowedOrigins are the web origins ("https://chat.example.org")
	// whose pages may open a WebSocket stream or use BOSH, besides pages of the
	// server's own origin; "*" allows every origin. Clients that send no
	// Origin header (anything but a browser) are always allowed.
	AllowedOrigins []string `toml:"allowed_origins"`
	// WebClient serves a ready web chat page, Converse.js preconfigured
	// for the host the browser asked for (package webclient), at
	// WebClientPath on the web listener.
	WebClient bool `toml:"web_client"`
	// WebClientPath is the page's path; Converse.js's files are served
	// under it, at WebClientPath/dist/. It must not be or lie under a
	// path of the other endpoints (ReservedPaths).
	WebClientPath string `toml:"web_client_path"`
	// WebClientDir is the converse.js npm package: the directory holding
	// its dist/ (WebClientFiles must be there). The default is where
	// `make webclient` installs it, relative to the source tree.
	WebClientDir string `toml:"web_client_dir"`
	// WebSocketPingInterval is how often the server sends a WebSocket
	// ping (RFC 6455 §5.5.2) on each WebSocket stream; a client that does
	// not answer within limits.ping_timeout is disconnected.
	WebSocketPingInterval Duration `toml:"websocket_ping_interval"`
	// BOSHMaxWait is the longest a BOSH request is held waiting for
	// something to send (XEP-0124 §7.1 'wait': a client asking for more
	// gets this).
	BOSHMaxWait Duration `toml:"bosh_max_wait"`
	// BOSHInactivity is how long a BOSH session may have no request
	// pending before it ends (XEP-0124 §7.1 'inactivity'): how long a
	// vanished client keeps its session.
	BOSHInactivity Duration `toml:"bosh_inactivity"`
}

// TLS is the [tls] table: the certificate and private key files of the
// hosts without their own, and whether they come from an ACME certificate
// authority instead. Files and ACME both off mean a self-signed
// certificate generated per host under DataDir/certs.
type TLS struct {
	// Cert and Key are a certificate chain and its private key, both PEM
	// files (see CertFiles).
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// ECDSACert and ECDSAKey are a second certificate with an ECDSA key,
	// beside an RSA one in Cert and Key (see CertFiles).
	ECDSACert string `toml:"ecdsa_cert"`
	ECDSAKey  string `toml:"ecdsa_key"`
	// ACME gets a certificate for every host without certificate files,
	// covering the host and its services' subdomains (conference.host),
	// from ACMEDirectory, and renews it ahead of expiry.
	ACME bool `toml:"acme"`
	// ACMEDirectory is the certificate authority's directory URL
	// (RFC 8555 §7.1.1); the default is Let's Encrypt's production one.
	ACMEDirectory string `toml:"acme_directory"`
	// ACMEEmail is the account's contact address, where the CA writes
	// about expiring certificates and policy changes; "" for none.
	ACMEEmail string `toml:"acme_email"`
	// ACMECAFile is a PEM file of certificate authorities to trust for
	// the HTTPS connection to ACMEDirectory, besides the system's (a test
	// CA such as pebble's).
	ACMECAFile string `toml:"acme_ca_file"`
	// ACMEChallenge is how the CA checks that the server holds a name:
	// "http-01" (RFC 8555 §8.3: an HTTP request on port 80, answered on
	// ACMEHTTPListen or http.listen) or "tls-alpn-01" (RFC 8737: a TLS
	// handshake on port 443, answered by any TLS listener of the server).
	ACMEChallenge string `toml:"acme_challenge"`
	// ACMEHTTPListen is the host:port of a plain HTTP listener that only
	// answers http-01 challenges (the CA connects to port 80); "" leaves
	// them to the web listener's plain side (http.listen), behind a proxy
	// that forwards /.well-known/acme-challenge/ to it.
	ACMEHTTPListen string `toml:"acme_http_listen"`
}

// LetsEncrypt is the default tls.acme_directory: Let's Encrypt's
// production directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// The ACME challenge types (tls.acme_challenge).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// IsZero reports whether no certificate file is set.
func (t TLS) IsZero() bool { return t.Files().IsZero() }

// Files returns the table's certificate files.
func (t TLS) Files() CertFiles {
	return CertFiles{Cert: t.Cert, Key: t.Key, ECDSACert: t.ECDSACert, ECDSAKey: t.ECDSAKey}
}

// CertFiles is a certificate chain and its private key, both PEM files:
// a host's [hosts."x".tls]. All empty means the global [tls] applies.
//
// ECDSACert and ECDSAKey, when set, are a second certificate for the same
// names with an ECDSA key, Cert and Key then being the RSA one: each
// handshake gets the ECDSA certificate when the client supports it, else
// the RSA one, as nginx's two ssl_certificate lines do (see Load).
type CertFiles struct {
	Cert      string `toml:"cert"`
	Key       string `toml:"key"`
	ECDSACert string `toml:"ecdsa_cert"`
	ECDSAKey  string `toml:"ecdsa_key"`
}

// IsZero reports whether no file is set.
func (f CertFiles) IsZero() bool { return f == CertFiles{} }

// Dual reports whether a second, ECDSA certificate is set.
func (f CertFiles) Dual() bool { return f.ECDSACert != "" || f.ECDSAKey != "" }

// Storage is the [storage] table. It must stay comparable: the server
// compares the old and new values on reload.
type Storage struct {
	// Driver is "sqlite" (embedded, the default) or "postgres".
	Driver string `toml:"driver"`
	// DSN is the data source: for sqlite a file path (empty means
	// DataDir/starling.db), for postgres a URL or keyword/value string
	// (required).
	DSN string `toml:"dsn"`
}

// Registration is the [registration] table.
type Registration struct {
	// Enabled allows in-band registration of new accounts (XEP-0077).
	Enabled bool `toml:"enabled"`
}

// Auth is the [auth] table: credentials.
type Auth struct {
	// SCRAMIterations is the PBKDF2 iteration count (RFC 5802 §5.1 "i")
	// of passwords set from now on: at registration (XEP-0077), by
	// `starling user add` and `starling user passwd`. Stored keys keep
	// the count they were derived with until the password changes. From
	// MinSCRAMIterations to MaxSCRAMIterations; docs/scram-iterations.md
	// explains the default.
	SCRAMIterations int `toml:"scram_iterations"`
	// SCRAMHashes are the SCRAM hash families offered to clients ("SHA-1",
	// "SHA-256", "SHA-512"), for accounts imported with keys of one
	// family only (XEP-0227 files from ejabberd or Prosody): a client
	// picks the strongest mechanism offered, and an account without its
	// keys cannot log in with it. New passwords get keys of every family.
	SCRAMHashes []string `toml:"scram_hashes"`
}

// Range of auth.scram_iterations accepted by Validate.
const (
	// MinSCRAMIterations is the floor RFC 7677 §4 and RFC 5802 §5.1 set.
	MinSCRAMIterations = 4096
	// MaxSCRAMIterations is the most Cyrus SASL's SCRAM client accepts
	// (it refuses a larger count: "iteration-count is too big"); beyond
	// it a low-end phone also takes most of a second to log in.
	MaxSCRAMIterations = 65536
)

// Limits is the [limits] table.
type Limits struct {
	// MaxStanzaBytes bounds one top-level element, and one WebSocket
	// message. RFC 6120 §13.12 asks for at least 10000 bytes.
	MaxStanzaBytes int `toml:"max_stanza_bytes"`
	// ConnectTimeout is the time a new connection has to send its stream
	// header (on the web listener, its HTTP request), and to finish a TLS
	// handshake; it also bounds an idle HTTP connection.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// AuthTimeout is the time a connection has, from accept, to
	// authenticate and bind a resource.
	AuthTimeout Duration `toml:"auth_timeout"`
	// IdleTimeout is the silence after which the server pings a client
	// (XEP-0199 §4.2).
	IdleTimeout Duration `toml:"idle_timeout"`
	// PingTimeout is how long the server waits for the answer to that
	// ping, or to a WebSocket ping, before closing the stream.
	PingTimeout Duration `toml:"ping_timeout"`
	// MaxSessionsPerAccount bounds concurrently bound resources per
	// account (RFC 6120 §7.7.2.2 resource-constraint beyond it).
	MaxSessionsPerAccount int `toml:"max_sessions_per_account"`
	// MaxAuthAttempts is the number of rejected credentials allowed on one
	// connection, other SASL failures three times as many (RFC 6120 §6.4.5
	// lets the server bound retries).
	MaxAuthAttempts int `toml:"max_auth_attempts"`
	// AuthFailuresPerAddress is the number of rejected credentials from
	// one client address (IPv6: its IPv6Prefix network) within
	// AuthFailureWindow after which that address gets
	// temporary-auth-failure without its password being checked
	// (RFC 6120 §13.9.4); 0 turns it off.
	AuthFailuresPerAddress int `toml:"auth_failures_per_address"`
	// AuthFailuresPerAccount is the number of rejected credentials for one
	// account within AuthFailureWindow after which addresses that have not
	// logged in to it recently get temporary-auth-failure for it, without
	// their password being checked; addresses that have are not affected.
	// 0 turns it off.
	AuthFailuresPerAccount int `toml:"auth_failures_per_account"`
	// AuthFailureWindow is the sliding window of both failure counts.
	AuthFailureWindow Duration `toml:"auth_failure_window"`
	// IPv6Prefix is the length of the network prefix by which IPv6
	// clients are counted in the per-address limits: one host usually
	// holds a whole /64.
	IPv6Prefix int `toml:"ipv6_prefix"`
	// MaxUnauthenticatedPerAddress bounds the streams (TCP, WebSocket, BOSH
	// sessions) from one client address that have not authenticated yet;
	// beyond it a new one gets <policy-violation/> (BOSH: HTTP 429).
	MaxUnauthenticatedPerAddress int `toml:"max_unauthenticated_per_address"`
	// OutboundQueue is the number of stanzas queued for one session
	// before it is closed as too slow.
	OutboundQueue int `toml:"outbound_queue"`
	// OutboundQueueBytes bounds the same queue in bytes; at least
	// MaxStanzaBytes.
	OutboundQueueBytes int `toml:"outbound_queue_bytes"`
	// MaxRosterItems bounds one roster (RFC 6121 §2.3.3 lets the server
	// refuse more).
	MaxRosterItems int `toml:"max_roster_items"`
}

// Log is the [log] table.
type Log struct {
	// Level is "debug", "info", "warn" or "error".
	Level string `toml:"level"`
	// Format is "text" or "json".
	Format string `toml:"format"`
}

// Metrics is the [metrics] table: the Prometheus endpoint.
type Metrics struct {
	// Listen is the host:port of the admin listener that serves the
	// metrics at /metrics over plain HTTP, without authentication; ""
	// (the default) serves none. Meant for loopback or a private
	// network: whoever reaches it sees how busy the server is.
	Listen string `toml:"listen"`
	// Pprof also serves Go's profiles (net/http/pprof) at /debug/pprof/
	// on that listener: CPU, heap, goroutines, for finding where time and
	// memory go on a live server. Off by default.
	Pprof bool `toml:"pprof"`
}

// Host is one [hosts."domain"] override table.
type Host struct {
	// Admins replaces the global server.admins for this host when set
	// (an empty list: nobody administers it from a client).
	Admins []string `toml:"admins"`
	// TLS replaces the global [tls] certificate for this host when set
	// (the host's certificate then comes from these files, not ACME).
	TLS CertFiles `toml:"tls"`
	// Registration replaces the global [registration] switch for this
	// host when its Enabled is set.
	Registration HostRegistration `toml:"registration"`
}

// HostRegistration is [hosts."domain".registration]; a nil Enabled
// means "as the global [registration] says".
type HostRegistration struct {
	Enabled *bool `toml:"enabled"`
}

// Duration is a time.Duration written in TOML as a string in Go syntax:
// "30s", "5m", "1h30m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: write a number with a unit, like \"30s\", \"5m\" or \"1h\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the built-in configuration: what `starling serve` runs
// without --config, and the base every file is decoded on top of.
func Default() *Config {
	return &Config{
		Server: Server{
			Hosts:   []string{"localhost"},
			DataDir: "./data",
			Admins:  []string{},
		},
		C2S: C2S{
			Listen:          []string{"0.0.0.0:5222"},
			DirectTLSListen: []string{"0.0.0.0:5223"},
			RequireTLS:      true,
			// Prosody's hibernation time; Conversations and Monal ask
			// for longer through 'max', up to the maximum.
			StreamManagement: true,
			ResumeTimeout:    Duration{10 * time.Minute},
			MaxResumeTimeout: Duration{time.Hour},
		},
		S2S: S2S{
			Enabled:            true,
			Listen:             []string{"0.0.0.0:5269"},
			DirectTLSListen:    []string{},
			RequireEncryption:  true,
			InsecureDomains:    []string{},
			Bidi:               true,
			ConnectTimeout:     Duration{10 * time.Second},
			NegotiationTimeout: Duration{60 * time.Second},
			IdleTimeout:        Duration{10 * time.Minute},
			Keepalive:          Duration{60 * time.Second},
			RetryDelay:         Duration{10 * time.Second},
			MaxRetryDelay:      Duration{5 * time.Minute},
			MaxQueue:           10000,
		},
		HTTP: HTTP{
			Listen:                []string{},
			TLSListen:             []string{},
			TrustedProxies:        []string{"127.0.0.1", "::1"},
			AllowedOrigins:        []string{},
			WebClientPath:         "/chat",
			WebClientDir:          DefaultWebClientDir,
			WebSocketPingInterval: Duration{30 * time.Second},
			BOSHMaxWait:           Duration{60 * time.Second},
			BOSHInactivity:        Duration{60 * time.Second},
		},
		TLS: TLS{
			ACMEDirectory:  LetsEncrypt,
			ACMEChallenge:  ChallengeHTTP01,
			ACMEHTTPListen: "0.0.0.0:80",
		},
		Storage: Storage{Driver: "sqlite"},
		Auth:    Auth{SCRAMIterations: 10000, SCRAMHashes: []string{"SHA-1", "SHA-256", "SHA-512"}},
		Limits: Limits{
			MaxStanzaBytes:               262144,
			ConnectTimeout:               Duration{30 * time.Second},
			AuthTimeout:                  Duration{60 * time.Second},
			IdleTimeout:                  Duration{5 * time.Minute},
			PingTimeout:                  Duration{60 * time.Second},
			MaxSessionsPerAccount:        10,
			MaxAuthAttempts:              5,
			AuthFailuresPerAddress:       20,
			AuthFailuresPerAccount:       10,
			AuthFailureWindow:            Duration{5 * time.Minute},
			IPv6Prefix:                   64,
			MaxUnauthenticatedPerAddress: 256,
			OutboundQueue:                1000,
			OutboundQueueBytes:           4 << 20,
			MaxRosterItems:               1000,
		},
		Log:   Log{Level: "info", Format: "text"},
		Hosts: map[string]Host{},
	}
}

// Clone returns a deep copy, so a caller can edit it while the original
// is in use by running sessions.
func (c *Config) Clone() *Config {
	n := *c
	n.Server.Hosts = append([]string(nil), c.Server.Hosts...)
	n.Server.Admins = slices.Clone(c.Server.Admins)
	n.Auth.SCRAMHashes = slices.Clone(c.Auth.SCRAMHashes)
	n.C2S.Listen = append([]string(nil), c.C2S.Listen...)
	n.C2S.DirectTLSListen = append([]string(nil), c.C2S.DirectTLSListen...)
	n.S2S.Listen = slices.Clone(c.S2S.Listen)
	n.S2S.DirectTLSListen = slices.Clone(c.S2S.DirectTLSListen)
	n.S2S.InsecureDomains = slices.Clone(c.S2S.InsecureDomains)
	n.HTTP.Listen = slices.Clone(c.HTTP.Listen)
	n.HTTP.TLSListen = slices.Clone(c.HTTP.TLSListen)
	n.HTTP.TrustedProxies = slices.Clone(c.HTTP.TrustedProxies)
	n.HTTP.AllowedOrigins = slices.Clone(c.HTTP.AllowedOrigins)
	n.Hosts = maps.Clone(c.Hosts)
	for k, h := range n.Hosts {
		if h.Registration.Enabled != nil {
			v := *h.Registration.Enabled
			h.Registration.Enabled = &v
		}
		h.Admins = slices.Clone(h.Admins)
		n.Hosts[k] = h
	}
	return &n
}

// RegistrationEnabled reports whether in-band registration (XEP-0077) is
// open on host: its [hosts."host".registration] override if set, else the
// global [registration] switch.
func (c *Config) RegistrationEnabled(host string) bool {
	if h, ok := c.Hosts[host]; ok && h.Registration.Enabled != nil {
		return *h.Registration.Enabled
	}
	return c.Registration.Enabled
}

// Admins returns the bare JIDs that administer host from their clients
// (XEP-0133): its [hosts."host"] admins if set, else server.admins.
func (c *Config) Admins(host string) []string {
	if h, ok := c.Hosts[host]; ok && h.Admins != nil {
		return h.Admins
	}
	return c.Server.Admins
}

// IsAdmin reports whether the account bare administers host: whether it
// is one of Admins(host), compared as JIDs (RFC 7622 preparation).
func (c *Config) IsAdmin(host string, bare jid.JID) bool {
	if bare.Localpart() == "" {
		return false
	}
	bare = bare.Bare()
	for _, a := range c.Admins(host) {
		if j, err := jid.Parse(a); err == nil && j.Equal(bare) {
			return true
		}
	}
	return false
}

// HostTLS returns the certificate files for host: its
// [hosts."host".tls] override if set, else the global [tls]. A zero
// result means a generated self-signed certificate, or an ACME one when
// ACMEHost says so.
func (c *Config) HostTLS(host string) CertFiles {
	if h, ok := c.Hosts[host]; ok && !h.TLS.IsZero() {
		return h.TLS
	}
	return c.TLS.Files()
}

// ACMEHost reports whether host's certificate comes from the ACME
// certificate authority: [tls] acme is on and the host has no certificate
// files of its own.
func (c *Config) ACMEHost(host string) bool {
	return c.TLS.ACME && c.HostTLS(host).IsZero()
}

// ParseProxy parses one entry of http.trusted_proxies: an IP address, or
// a CIDR prefix such as "10.0.0.0/8".
func ParseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Proxies returns http.trusted_proxies as prefixes; entries that do not
// parse (which Validate reports) are left out.
func (h HTTP) Proxies() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := ParseProxy(s); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// ParseOrigin checks one entry of http.allowed_origins: "*", or a web
// origin (RFC 6454 §6.1) as browsers send it in the Origin header, such
// as "https://chat.example.org" or "http://localhost:8080", and returns
// it as browsers send it: in lowercase, without the scheme's default
// port.
func ParseOrigin(s string) (string, error) {
	if s == "*" {
		return s, nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf(`must start with "https://" or "http://" (or be "*")`)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf(`must be scheme://host[:port] and nothing more, like "https://chat.example.org"`)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		host = strings.TrimSuffix(host, ":"+port) // browsers leave the default port out
	}
	return u.Scheme + "://" + host, nil
}

// DefaultWebClientDir is http.web_client_dir's default: where `make
// webclient` installs the converse.js npm package (npm ci in
// webclient/js), relative to the source tree.
const DefaultWebClientDir = "./webclient/js/node_modules/converse.js"

// WebClientFiles are the files of the converse.js package the web client
// page loads, relative to http.web_client_dir.
var WebClientFiles = []string{"dist/converse.min.js", "dist/converse.min.css"}

// ReservedPaths are the paths of the web listener's other endpoints:
// XMPP over WebSocket, BOSH and host-meta (packages websocket and bosh).
// http.web_client_path may be none of them, nor lie under one.
var ReservedPaths = []string{"/xmpp-websocket", "/http-bind", "/.well-known"}

// CheckWebClientPath checks http.web_client_path: an absolute, clean
// URL path ("/chat", or "/" for the whole site) of letters, digits and
// "-._~/", without a trailing slash, outside ReservedPaths.
func CheckWebClientPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf(`must be an absolute path, like "/chat"`)
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~/", c)) {
			return fmt.Errorf("%q is not allowed: use letters, digits and -._~/", c)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("must be a clean path (no trailing slash, //, . or ..): write %q", path.Clean(p))
	}
	for _, r := range ReservedPaths {
		if p == r || strings.HasPrefix(p, r+"/") {
			return fmt.Errorf("%s is taken by another endpoint of the web listener (%s)", p, strings.Join(ReservedPaths, ", "))
		}
	}
	return nil
}
