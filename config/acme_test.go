package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestACMEValidation: the acme keys of [tls], checked only when tls.acme
// is on, each problem alone and in words.
func TestACMEValidation(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "a.example")
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	acme := func(edit func(*Config)) func(*Config) {
		return func(c *Config) {
			c.Server.Hosts = []string{"a.example"}
			c.TLS.ACME = true
			edit(c)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid, "?" for any one problem
	}{
		{"defaults", acme(func(c *Config) {}), ""},
		{"off with anything", func(c *Config) { c.TLS.ACMEChallenge = "dns-01"; c.TLS.ACMEDirectory = "" }, ""},
		{"tls-alpn-01", acme(func(c *Config) { c.TLS.ACMEChallenge = ChallengeTLSALPN01 }), ""},
		{"http-01 on the web listener", acme(func(c *Config) { c.TLS.ACMEHTTPListen = ""; c.HTTP.Listen = []string{"127.0.0.1:8080"} }), ""},
		{"a host with files", acme(func(c *Config) {
			c.Server.Hosts = []string{"a.example", "localhost"}
			c.Hosts["localhost"] = Host{TLS: CertFiles{Cert: cert, Key: key}}
		}), ""},
		{"with files", acme(func(c *Config) { c.TLS.Cert, c.TLS.Key = cert, key }),
			`tls.acme: cannot be combined with tls.cert and tls.key: ACME gets the certificates itself (a host may keep files of its own in [hosts."name".tls])`},
		{"plain http directory", acme(func(c *Config) { c.TLS.ACMEDirectory = "http://ca.example/dir" }),
			`tls.acme_directory: must be the https:// URL of the CA's ACME directory (Let's Encrypt's is ` + LetsEncrypt + `), not "http://ca.example/dir"`},
		{"email", acme(func(c *Config) { c.TLS.ACMEEmail = "Admin <admin@a.example>" }),
			`tls.acme_email: must be a plain e-mail address such as admin@example.org, not "Admin <admin@a.example>"`},
		{"ca file missing", acme(func(c *Config) { c.TLS.ACMECAFile = filepath.Join(dir, "nope.pem") }),
			"tls.acme_ca_file: " + filepath.Join(dir, "nope.pem") + " does not exist"},
		{"ca file not PEM", acme(func(c *Config) { c.TLS.ACMECAFile = notPEM }),
			"tls.acme_ca_file: " + notPEM + " holds no PEM certificate"},
		{"unknown challenge", acme(func(c *Config) { c.TLS.ACMEChallenge = "dns-01" }),
			`tls.acme_challenge: must be "http-01" or "tls-alpn-01", not "dns-01"`},
		{"http-01 nowhere", acme(func(c *Config) { c.TLS.ACMEHTTPListen = "" }),
			"tls.acme_http_listen: empty, and there is no http.listen to answer http-01 challenges on: set one (the CA connects to port 80)"},
		{"http-01 listener without port", acme(func(c *Config) { c.TLS.ACMEHTTPListen = "0.0.0.0" }), "?"},
		{"http-01 on http.listen", acme(func(c *Config) { c.HTTP.Listen = []string{"0.0.0.0:80"} }),
			`tls.acme_http_listen: "0.0.0.0:80" is an http.listen address too: set acme_http_listen = "" to answer challenges on the web listener`},
		{"tls-alpn-01 without TLS listener", acme(func(c *Config) {
			c.TLS.ACMEChallenge = ChallengeTLSALPN01
			c.C2S.DirectTLSListen = nil
		}), "tls.acme_challenge: tls-alpn-01 is answered on the TLS listeners, and there is none: set http.tls_listen or c2s.direct_tls_listen (the CA connects to port 443)"},
		{"localhost", acme(func(c *Config) { c.Server.Hosts = []string{"localhost"} }),
			`server.hosts: "localhost": an ACME CA issues certificates for public DNS names only: give this host cert and key files in [hosts."localhost".tls], or turn tls.acme off`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.edit(cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			p, ok := errors.AsType[*Problems](err)
			if !ok {
				t.Fatalf("Validate() = %v, want *Problems", err)
			}
			if len(p.List) != 1 {
				t.Fatalf("want one problem, got:\n%v", err)
			}
			if tc.want != "?" && p.List[0].String() != tc.want {
				t.Errorf("got  %s\nwant %s", p.List[0], tc.want)
			}
		})
	}
}

// TestACMEHost: with tls.acme on, the hosts without files of their own.
func TestACMEHost(t *testing.T) {
	c := Default()
	c.Server.Hosts = []string{"a.example", "b.example"}
	c.Hosts["b.example"] = Host{TLS: CertFiles{Cert: "b.crt", Key: "b.key"}}
	if c.ACMEHost("a.example") {
		t.Error("ACMEHost with tls.acme off")
	}
	c.TLS.ACME = true
	if !c.ACMEHost("a.example") || c.ACMEHost("b.example") {
		t.Errorf("ACMEHost(a.example) = %v, ACMEHost(b.example) = %v; want true, false", c.ACMEHost("a.example"), c.ACMEHost("b.example"))
	}
}

// TestACMEKeysGlobalOnly: a host's [hosts."x".tls] takes files only; the
// acme keys there are unknown keys.
func TestACMEKeysGlobalOnly(t *testing.T) {
	got := problems(t, `
[server]
hosts = ["a.example"]
[hosts."a.example".tls]
acme = true
`)
	if len(got) != 1 || !strings.HasPrefix(got[0], `hosts."a.example".tls.acme: `) {
		t.Errorf("problems: %q", got)
	}
}
