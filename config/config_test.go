package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"
)

const examplePath = "../config.example.toml"

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example file must behave exactly like the defaults, so it cannot
// drift from the code.
func TestExampleEqualsDefault(t *testing.T) {
	cfg, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Modules = nil // the modules' tables: server's TestExampleModules
	want := Default()
	// Load resolves the defaults' relative paths from the file's directory.
	dir, _ := filepath.Abs(filepath.Dir(examplePath))
	want.ResolvePaths(dir)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config.example.toml differs from Default():\n got %+v\nwant %+v", cfg, want)
	}
}

// Every option of Config appears in the example, with a comment, and the
// commented [hosts."example.org"] block decodes once uncommented.
func TestExampleDocumentsEveryOption(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment the override example: lines like `# [hosts.…]` and
	// `# key = value` after the "Per-host overrides" paragraph.
	text := string(data)
	i := strings.Index(text, "# Per-host overrides")
	if i < 0 {
		t.Fatal("example has no per-host overrides section")
	}
	tomlLine := regexp.MustCompile(`(?m)^# (\[hosts\..*\]|[a-z_]+ = .*)$`)
	full := text[:i] + tomlLine.ReplaceAllString(text[i:], "$1")
	if full == text {
		t.Fatal("no commented example found under per-host overrides")
	}
	_, md, probs := decode([]byte(full))
	if len(probs.List) > 0 {
		t.Fatalf("uncommented example: %v", probs)
	}
	for _, path := range keyPaths(reflect.TypeFor[Config](), nil) {
		p := slices.Clone(path)
		for j, k := range p {
			if k == "*" {
				p[j] = "example.org"
			}
		}
		if !md.IsDefined(p...) {
			t.Errorf("option %s is not in config.example.toml", toml.Key(path))
		}
	}

	// Each key line is explained by a comment just above (possibly
	// shared with the keys below it) or on the line.
	lines := strings.Split(text, "\n")
	keyLine := regexp.MustCompile(`^[a-z_]+ = `)
	for n, l := range lines {
		if !keyLine.MatchString(l) || strings.Contains(l, "#") {
			continue
		}
		j := n - 1
		for j >= 0 && keyLine.MatchString(lines[j]) {
			j--
		}
		if j < 0 || !strings.HasPrefix(lines[j], "#") {
			t.Errorf("line %d %q has no comment", n+1, l)
		}
	}
}

// keyPaths lists the leaf TOML keys of t; map keys are "*".
func keyPaths(t reflect.Type, prefix toml.Key) []toml.Key {
	var out []toml.Key
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == reflect.TypeFor[map[string]ModuleTable]() {
			continue // the module list's test checks the modules' tables
		}
		name := f.Tag.Get("toml")
		if name == "-" {
			continue // not an option: Config.Dir
		}
		p := append(slices.Clone(prefix), name)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Map:
			out = append(out, keyPaths(ft.Elem(), append(p, "*"))...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
			out = append(out, keyPaths(ft, p)...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// problems parses data and returns its problems as "path: message" lines.
func problems(t *testing.T, data string) []string {
	t.Helper()
	cfg, err := Parse([]byte(data))
	if err == nil {
		t.Fatalf("Parse(%q) succeeded", data)
	}
	if cfg != nil {
		t.Error("a Config was returned with an error")
	}
	p, ok := errors.AsType[*Problems](err)
	if !ok {
		t.Fatalf("error is %T, not *Problems: %v", err, err)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != len(p.List) {
		t.Errorf("Error() has %d lines for %d problems", got, len(p.List))
	}
	var out []string
	for _, pr := range p.List {
		out = append(out, pr.String())
	}
	return out
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string // exact problem lines, in order
	}{
		{"unknown top-level key", "verbose = true\n", []string{"verbose: unknown key"}},
		{"unknown table", "[limitz]\nmax_stanza_bytes = 20000\n", []string{"limitz: unknown key (did you mean limits?)"}},
		{"nested typo", "[limits]\nmax_stanzas_bytes = 20000\n", []string{"limits.max_stanzas_bytes: unknown key (did you mean max_stanza_bytes?)"}},
		{"moved key", "[limits]\nmax_offline_messages = 20\n", []string{"limits.max_offline_messages: moved: write modules.offline.max_messages instead"}},
		{"keys are case-sensitive", "[Limits]\n", []string{"Limits: unknown key (did you mean limits?)"}},
		{"unknown key in host override", "[server]\nhosts = [\"a.example\"]\n[hosts.\"a.example\".tls]\ncrt = \"x\"\n",
			[]string{`hosts."a.example".tls.crt: unknown key (did you mean cert?)`}},
		{"string for integer", "[limits]\nmax_stanza_bytes = \"big\"\n", []string{"limits.max_stanza_bytes: expected an integer, got a string"}},
		{"integer for string", "[log]\nlevel = 3\n", []string{"log.level: expected a string, got an integer"}},
		{"string for array", "[server]\nhosts = \"example.org\"\n", []string{"server.hosts: expected an array of strings, got a string"}},
		{"array of integers", "[c2s]\nlisten = [5222]\n", []string{"c2s.listen: expected an array of strings"}},
		{"string for bool", "[registration]\nenabled = \"yes\"\n", []string{"registration.enabled: expected a boolean, got a string"}},
		{"value for table", "limits = 5\n", []string{"limits: expected a table, got an integer"}},
		{"host override not a table", "[server]\nhosts = [\"a.example\"]\n[hosts]\n\"a.example\" = true\n", []string{`hosts."a.example": expected a table, got a boolean`}},
		{"duration without unit", "[limits]\nidle_timeout = \"300\"\n",
			[]string{`limits.idle_timeout: invalid duration "300": write a number with a unit, like "30s", "5m" or "1h"`}},
		{"duration in words", "[limits]\nidle_timeout = \"5 minutes\"\n",
			[]string{`limits.idle_timeout: invalid duration "5 minutes": write a number with a unit, like "30s", "5m" or "1h"`}},
		{"duration as integer", "[limits]\nping_timeout = 60\n", []string{"limits.ping_timeout: expected a string, got an integer"}},
		{"negative duration", "[limits]\nauth_timeout = \"-5s\"\n", []string{"limits.auth_timeout: must be positive and at most 24h0m0s, not -5s"}},
		{"zero duration", "[limits]\nconnect_timeout = \"0s\"\n", []string{"limits.connect_timeout: must be positive and at most 24h0m0s, not 0s"}},
		{"syntax error", "[log]\nlevel = \n", nil}, // checked below: one "line 2" problem
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, tc.toml)
			if tc.want == nil {
				if len(got) != 1 || !strings.HasPrefix(got[0], "line 2: ") {
					t.Errorf("got %q, want one problem on line 2", got)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "a.example")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	converse := writeConverse(t, dir)
	missing := filepath.Join(dir, "no-converse")
	half := filepath.Join(dir, "half")
	if err := os.MkdirAll(filepath.Join(half, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "dist", "converse.min.js"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	webClient := func(dir string) func(*Config) {
		return func(c *Config) {
			c.HTTP.WebClient, c.HTTP.WebClientDir, c.HTTP.TLSListen = true, dir, []string{"127.0.0.1:5443"}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // one problem, exactly
	}{
		{"no hosts", func(c *Config) { c.Server.Hosts = nil }, "server.hosts: at least one host is required"},
		{"uppercase host", func(c *Config) { c.Server.Hosts = []string{"Example.org"} }, `server.hosts: "Example.org": not in canonical form: write "example.org"`},
		{"trailing dot", func(c *Config) { c.Server.Hosts = []string{"example.org."} }, `server.hosts: "example.org.": not in canonical form: write "example.org"`},
		{"A-label", func(c *Config) { c.Server.Hosts = []string{"xn--bcher-kva.example"} }, `server.hosts: "xn--bcher-kva.example": not in canonical form: write "bücher.example"`},
		{"space in host", func(c *Config) { c.Server.Hosts = []string{"exa mple.org"} }, ""},
		{"underscore in host", func(c *Config) { c.Server.Hosts = []string{"a_b.example"} }, ""},
		{"at sign in host", func(c *Config) { c.Server.Hosts = []string{"alice@example.org"} }, ""},
		{"empty host", func(c *Config) { c.Server.Hosts = []string{""} }, `server.hosts: "": empty host name`},
		{"IP host", func(c *Config) { c.Server.Hosts = []string{"192.0.2.1"} }, `server.hosts: "192.0.2.1": an IP address is not a host name`},
		{"duplicate host", func(c *Config) { c.Server.Hosts = []string{"a.example", "b.example", "a.example"} }, `server.hosts: "a.example" is listed twice`},
		{"empty data dir", func(c *Config) { c.Server.DataDir = "" }, "server.data_dir: must not be empty"},
		{"admin not a JID", func(c *Config) { c.Server.Admins = []string{"@localhost"} }, ""},
		{"admin a domain", func(c *Config) { c.Server.Admins = []string{"localhost"} }, `server.admins: "localhost": must be the bare JID of an account, like "admin@example.org"`},
		{"admin a full JID", func(c *Config) { c.Server.Admins = []string{"admin@localhost/gajim"} }, `server.admins: "admin@localhost/gajim": must be the bare JID of an account, like "admin@example.org"`},
		{"admin of another server", func(c *Config) { c.Server.Admins = []string{"admin@example.net"} }, `server.admins: "admin@example.net": not an account of a host in server.hosts`},
		{"admin twice", func(c *Config) { c.Server.Admins = []string{"Admin@localhost", "admin@localhost"} }, `server.admins: "admin@localhost" is listed twice`},
		{"host admin of another server", func(c *Config) { c.Hosts["localhost"] = Host{Admins: []string{"admin@example.net"}} }, `hosts.localhost.admins: "admin@example.net": not an account of a host in server.hosts`},
		{"no listener", func(c *Config) { c.C2S.Listen, c.C2S.DirectTLSListen = nil, nil }, "c2s: no listener: set c2s.listen or c2s.direct_tls_listen (or http.listen or http.tls_listen for web clients only)"},
		{"HTTP listener on a client listener's address", func(c *Config) { c.HTTP.TLSListen = []string{"0.0.0.0:5223"} }, `http.tls_listen: "0.0.0.0:5223" is listed twice`},
		{"bad HTTP listener", func(c *Config) { c.HTTP.Listen = []string{"localhost"} }, ""},
		{"metrics listener without a port", func(c *Config) { c.Metrics.Listen = "127.0.0.1" }, ""},
		{"pprof without the metrics listener", func(c *Config) { c.Metrics.Pprof = true }, "metrics.pprof: needs metrics.listen, the listener it is served on"},
		{"metrics listener on a client listener's address", func(c *Config) { c.Metrics.Listen = "0.0.0.0:5222" }, `metrics.listen: "0.0.0.0:5222" is another listener's address too`},
		{"trusted proxy not an address", func(c *Config) { c.HTTP.TrustedProxies = []string{"proxy.example"} }, `http.trusted_proxies: "proxy.example": not an IP address or CIDR prefix`},
		{"trusted proxy bad prefix", func(c *Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/33"} }, `http.trusted_proxies: "10.0.0.0/33": not an IP address or CIDR prefix`},
		{"origin without scheme", func(c *Config) { c.HTTP.AllowedOrigins = []string{"chat.example.org"} }, `http.allowed_origins: "chat.example.org": must start with "https://" or "http://" (or be "*")`},
		{"origin with a path", func(c *Config) { c.HTTP.AllowedOrigins = []string{"https://example.org/chat"} }, `http.allowed_origins: "https://example.org/chat": must be scheme://host[:port] and nothing more, like "https://chat.example.org"`},
		{"zero ping interval", func(c *Config) { c.HTTP.WebSocketPingInterval.Duration = 0 }, "http.websocket_ping_interval: must be positive and at most 24h0m0s, not 0s"},
		{"zero BOSH inactivity", func(c *Config) { c.HTTP.BOSHInactivity.Duration = 0 }, "http.bosh_inactivity: must be positive and at most 24h0m0s, not 0s"},
		{"relative web client path", func(c *Config) { c.HTTP.WebClientPath = "chat" }, `http.web_client_path: "chat": must be an absolute path, like "/chat"`},
		{"web client path with a trailing slash", func(c *Config) { c.HTTP.WebClientPath = "/chat/" }, `http.web_client_path: "/chat/": must be a clean path (no trailing slash, //, . or ..): write "/chat"`},
		{"web client path with dots", func(c *Config) { c.HTTP.WebClientPath = "/a/../chat" }, `http.web_client_path: "/a/../chat": must be a clean path (no trailing slash, //, . or ..): write "/chat"`},
		{"web client path with a query", func(c *Config) { c.HTTP.WebClientPath = "/chat?x=1" }, `http.web_client_path: "/chat?x=1": '?' is not allowed: use letters, digits and -._~/`},
		{"web client path with a pattern", func(c *Config) { c.HTTP.WebClientPath = "/{chat}" }, `http.web_client_path: "/{chat}": '{' is not allowed: use letters, digits and -._~/`},
		{"web client at the WebSocket endpoint", func(c *Config) { c.HTTP.WebClientPath = "/xmpp-websocket" },
			`http.web_client_path: "/xmpp-websocket": /xmpp-websocket is taken by another endpoint of the web listener (/xmpp-websocket, /http-bind, /.well-known)`},
		{"web client under BOSH", func(c *Config) { c.HTTP.WebClientPath = "/http-bind/chat" },
			`http.web_client_path: "/http-bind/chat": /http-bind/chat is taken by another endpoint of the web listener (/xmpp-websocket, /http-bind, /.well-known)`},
		{"web client under host-meta", func(c *Config) { c.HTTP.WebClientPath = "/.well-known/chat" }, ""},
		{"web client without Converse.js", webClient(missing), "http.web_client_dir: " + filepath.Join(missing, "dist", "converse.min.js") +
			" does not exist: install Converse.js with `make webclient` (npm ci --prefix webclient/js) in Starling's source tree," +
			" or set http.web_client_dir to a directory holding the converse.js npm package"},
		{"web client without its stylesheet", webClient(half), "http.web_client_dir: " + filepath.Join(half, "dist", "converse.min.css") +
			" does not exist: install Converse.js with `make webclient` (npm ci --prefix webclient/js) in Starling's source tree," +
			" or set http.web_client_dir to a directory holding the converse.js npm package"},
		{"web client without a web listener", func(c *Config) { webClient(converse)(c); c.HTTP.TLSListen = nil },
			"http.web_client: the web client is served on the web listener: set http.listen or http.tls_listen"},
		{"web client with an empty directory setting", func(c *Config) { webClient("")(c) }, "http.web_client_dir: must not be empty when http.web_client is on"},
		{"listen without port", func(c *Config) { c.C2S.Listen = []string{"0.0.0.0"} }, ""},
		{"listen port too big", func(c *Config) { c.C2S.Listen = []string{"0.0.0.0:70000"} }, `c2s.listen: "0.0.0.0:70000": port must be a number from 0 to 65535`},
		{"listen named port", func(c *Config) { c.C2S.DirectTLSListen = []string{"[::1]:xmpps"} }, `c2s.direct_tls_listen: "[::1]:xmpps": port must be a number from 0 to 65535`},
		{"same address twice", func(c *Config) { c.C2S.DirectTLSListen = []string{"0.0.0.0:5222"} }, `c2s.direct_tls_listen: "0.0.0.0:5222" is listed twice`},
		{"cert without key", func(c *Config) { c.TLS.Cert = cert }, "tls.key: required when tls.cert is set"},
		{"key without cert", func(c *Config) { c.TLS.Key = key }, "tls.cert: required when tls.key is set"},
		{"missing cert file", func(c *Config) { c.TLS = TLS{Cert: filepath.Join(dir, "nope.pem"), Key: key} }, ""},
		{"cert is a directory", func(c *Config) { c.TLS = TLS{Cert: dir, Key: key} }, "tls.cert: " + dir + " is a directory"},
		{"garbage cert", func(c *Config) { c.TLS = TLS{Cert: garbage, Key: key} }, ""},
		{"override for unlisted host", func(c *Config) { c.Hosts["b.example"] = Host{Registration: HostRegistration{Enabled: ptr(true)}} }, `hosts."b.example": not listed in server.hosts`},
		{"half override", func(c *Config) {
			c.Server.Hosts = []string{"a.example"}
			c.Hosts["a.example"] = Host{TLS: CertFiles{Key: key}}
		}, `hosts."a.example".tls.cert: required when hosts."a.example".tls.key is set`},
		{"unknown driver", func(c *Config) { c.Storage.Driver = "mysql" }, `storage.driver: must be "sqlite" or "postgres", not "mysql"`},
		{"postgres without dsn", func(c *Config) { c.Storage.Driver = "postgres" }, `storage.dsn: required when storage.driver is "postgres"`},
		{"stanza too small", func(c *Config) { c.Limits.MaxStanzaBytes = 9999 }, "limits.max_stanza_bytes: must be between 10000 and 16777216, not 9999"},
		{"stanza too big", func(c *Config) { c.Limits.MaxStanzaBytes = 1 << 30 }, "limits.max_stanza_bytes: must be between 10000 and 16777216, not 1073741824"},
		{"queue bytes below a stanza", func(c *Config) { c.Limits.MaxStanzaBytes = 8 << 20 }, "limits.outbound_queue_bytes: must be at least limits.max_stanza_bytes (8388608), not 4194304"},
		{"long timeout", func(c *Config) { c.Limits.IdleTimeout.Duration = 48 * time.Hour }, "limits.idle_timeout: must be positive and at most 24h0m0s, not 48h0m0s"},
		{"zero sessions", func(c *Config) { c.Limits.MaxSessionsPerAccount = 0 }, "limits.max_sessions_per_account: must be between 1 and 10000, not 0"},
		{"zero auth attempts", func(c *Config) { c.Limits.MaxAuthAttempts = 0 }, "limits.max_auth_attempts: must be between 1 and 100, not 0"},
		{"negative queue", func(c *Config) { c.Limits.OutboundQueue = -1 }, "limits.outbound_queue: must be between 1 and 1000000, not -1"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: must be "debug", "info", "warn" or "error", not "verbose"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: must be "text" or "json", not "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.edit(cfg)
			err := cfg.Validate()
			p, ok := errors.AsType[*Problems](err)
			if !ok {
				t.Fatalf("Validate() = %v, want *Problems", err)
			}
			if len(p.List) != 1 {
				t.Fatalf("want one problem, got:\n%v", err)
			}
			if tc.want != "" && p.List[0].String() != tc.want {
				t.Errorf("got  %s\nwant %s", p.List[0], tc.want)
			}
			t.Log(err)
		})
	}
}

func TestValidConfigs(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "a.example")
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"IDN host", func(c *Config) { c.Server.Hosts = []string{"bücher.example"} }},
		{"several hosts", func(c *Config) { c.Server.Hosts = []string{"a.example", "b.example", "localhost"} }},
		{"kernel-chosen ports on both listeners", func(c *Config) {
			c.C2S.Listen, c.C2S.DirectTLSListen = []string{"127.0.0.1:0"}, []string{"127.0.0.1:0"}
		}},
		{"only direct TLS", func(c *Config) { c.C2S.Listen = nil }},
		{"IPv6 and named listen hosts", func(c *Config) { c.C2S.Listen = []string{"[::]:5222", "localhost:5224", ":5225"} }},
		{"certificate files", func(c *Config) { c.TLS = TLS{Cert: cert, Key: key} }},
		{"postgres", func(c *Config) { c.Storage = Storage{Driver: "postgres", DSN: "postgres://localhost/starling"} }},
		{"smallest stanza limit", func(c *Config) { c.Limits.MaxStanzaBytes = 10000 }},
		{"web clients only", func(c *Config) {
			c.C2S.Listen, c.C2S.DirectTLSListen = nil, nil
			c.HTTP.Listen, c.HTTP.TLSListen = []string{"127.0.0.1:5280"}, []string{"[::]:5443"}
		}},
		{"web client", func(c *Config) {
			c.HTTP.WebClient, c.HTTP.WebClientDir, c.HTTP.Listen = true, writeConverse(t, dir), []string{"127.0.0.1:5280"}
		}},
		{"web client at the root", func(c *Config) {
			c.HTTP.WebClient, c.HTTP.WebClientDir, c.HTTP.Listen = true, writeConverse(t, dir), []string{"127.0.0.1:5280"}
			c.HTTP.WebClientPath = "/"
		}},
		{"web client path off", func(c *Config) { c.HTTP.WebClientPath = "/web/chat-1.0_~x" }},
		{"web client off, not installed", func(c *Config) { c.HTTP.WebClientDir = filepath.Join(dir, "nowhere") }},
		{"trusted proxies and origins", func(c *Config) {
			c.HTTP.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}
			c.HTTP.AllowedOrigins = []string{"*", "https://chat.example.org", "http://localhost:8080", "https://[2001:db8::1]:8443"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.edit(cfg)
			if err := cfg.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// Decode errors and validation errors all come back together.
func TestSeveralProblemsTogether(t *testing.T) {
	got := problems(t, `
[server]
hosts = ["a.example", "B.example"]
data_dir = ""

[c2s]
listen = ["nowhere"]

[storage]
driver = "postgres"

[limits]
max_stanza_bytes = "256k"
max_stanzas = 1
idle_timeout = "forever"
outbound_queue = 0

[log]
level = "loud"

[hosts."c.example".registration]
enabled = true

[extensions]
`)
	want := []string{
		"extensions: unknown key",
		"limits.idle_timeout: invalid duration \"forever\": write a number with a unit, like \"30s\", \"5m\" or \"1h\"",
		"limits.max_stanza_bytes: expected an integer, got a string",
		"limits.max_stanzas: unknown key",
		`server.hosts: "B.example": not in canonical form: write "b.example"`,
		"server.data_dir: must not be empty",
		`c2s.listen: "nowhere": not a host:port address (address nowhere: missing port in address)`,
		`hosts."c.example": not listed in server.hosts`,
		`storage.dsn: required when storage.driver is "postgres"`,
		"limits.outbound_queue: must be between 1 and 1000000, not 0",
		`log.level: must be "debug", "info", "warn" or "error", not "loud"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "starling.toml")
	if err := os.WriteFile(path, []byte("[log]\nlevel = \"loud\"\nformat = \"xml\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `: log.level: must be "debug", "info", "warn" or "error", not "loud"` + "\n" +
		path + `: log.format: must be "text" or "json", not "xml"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPerHostOverrides(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "b.example")
	cfg, err := Parse([]byte(`
[server]
hosts = ["a.example", "b.example", "c.example"]

[registration]
enabled = true

[hosts."b.example".tls]
cert = "` + cert + `"
key = "` + key + `"

[hosts."b.example".registration]
enabled = false

[hosts."c.example"]
registration = { enabled = true }
admins = []

[hosts."b.example"]
admins = ["boss@b.example"]
`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"a.example": true, "b.example": false, "c.example": true, "unknown.example": true} {
		if got := cfg.RegistrationEnabled(host); got != want {
			t.Errorf("RegistrationEnabled(%q) = %v, want %v", host, got, want)
		}
	}
	if got := cfg.HostTLS("b.example"); got != (CertFiles{Cert: cert, Key: key}) {
		t.Errorf("HostTLS(b.example) = %+v", got)
	}
	// Administrators: the global list unless a host has its own, even
	// an empty one.
	cfg.Server.Admins = []string{"root@a.example"}
	root, boss := jid.MustParse("root@a.example"), jid.MustParse("Boss@b.example")
	for _, tc := range []struct {
		host  string
		admin jid.JID
		want  bool
	}{
		{"a.example", root, true}, {"a.example", boss, false},
		{"b.example", root, false}, {"b.example", boss, true},
		{"c.example", root, false}, {"c.example", boss, false},
		{"a.example", jid.MustParse("a.example"), false},
		{"a.example", jid.MustParse("root@a.example/res"), true},
	} {
		if got := cfg.IsAdmin(tc.host, tc.admin); got != tc.want {
			t.Errorf("IsAdmin(%s, %s) = %v, want %v", tc.host, tc.admin, got, tc.want)
		}
	}
	for _, h := range []string{"a.example", "c.example"} {
		if got := cfg.HostTLS(h); !got.IsZero() {
			t.Errorf("HostTLS(%q) = %+v, want the (empty) global one", h, got)
		}
	}

	// A global certificate applies to hosts without their own, and the
	// global switch off is overridden per host.
	cfg.TLS = TLS{Cert: "global.pem", Key: "global.key"}
	cfg.Registration.Enabled = false
	if got := cfg.HostTLS("a.example"); got != cfg.TLS.Files() {
		t.Errorf("HostTLS(a.example) = %+v, want the global one", got)
	}
	if !cfg.RegistrationEnabled("c.example") || cfg.RegistrationEnabled("a.example") {
		t.Error("per-host registration override not applied")
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Fatalf("UnmarshalText = %v, %v", d, err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "1h30m0s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	// Round trip through TOML: the encoder writes the default config in a
	// form Parse accepts back.
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(Default()); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(buf.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("round trip changed the config:\n%s", buf.String())
	}
}

func TestClone(t *testing.T) {
	a := Default()
	a.Server.Hosts = []string{"a.example"}
	a.Hosts["a.example"] = Host{Registration: HostRegistration{Enabled: ptr(true)}, Admins: []string{"x@a.example"}}
	a.Server.Admins = []string{"y@a.example"}
	b := a.Clone()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("clone differs")
	}
	b.Server.Hosts[0] = "b.example"
	*b.Hosts["a.example"].Registration.Enabled = false
	b.C2S.Listen[0] = "127.0.0.1:1"
	b.HTTP.TrustedProxies[0] = "192.0.2.1"
	b.Hosts["a.example"].Admins[0] = "z@a.example"
	b.Server.Admins[0] = "z@a.example"
	if a.Hosts["a.example"].Admins[0] != "x@a.example" || a.Server.Admins[0] != "y@a.example" {
		t.Error("editing the clone's admins changed the original")
	}
	if a.Server.Hosts[0] != "a.example" || !*a.Hosts["a.example"].Registration.Enabled || a.C2S.Listen[0] != "0.0.0.0:5222" || a.HTTP.TrustedProxies[0] != "127.0.0.1" {
		t.Error("editing the clone changed the original")
	}
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"*":                         "*",
		"https://Chat.Example.org":  "https://chat.example.org",
		"https://example.org:443":   "https://example.org",
		"http://example.org:80":     "http://example.org",
		"http://localhost:8080":     "http://localhost:8080",
		"https://[2001:DB8::1]:443": "https://[2001:db8::1]",
		"https://example.org:8443":  "https://example.org:8443",
	} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestProxies(t *testing.T) {
	h := HTTP{TrustedProxies: []string{"127.0.0.1", "::1", "10.1.2.3/8"}}
	var got []string
	for _, p := range h.Proxies() {
		got = append(got, p.String())
	}
	if want := []string{"127.0.0.1/32", "::1/128", "10.0.0.0/8"}; !slices.Equal(got, want) {
		t.Errorf("Proxies() = %v, want %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// writeKeyPair writes a self-signed certificate for host and its key
// into dir and returns their paths.
func writeKeyPair(t *testing.T, dir, host string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writeConverse writes the files of a converse.js package that the web
// client checks for into dir/converse.js and returns that directory.
func writeConverse(t *testing.T, dir string) string {
	t.Helper()
	pkg := filepath.Join(dir, "converse.js")
	for _, f := range WebClientFiles {
		name := filepath.Join(pkg, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("/* "+f+" */\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pkg
}
