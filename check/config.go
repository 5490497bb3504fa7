package check

import (
	"errors"
	"fmt"
	"strings"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
)

// LoadConfig loads the configuration at path ("" for the embedded
// defaults) with the validation of check-config, the modules' tables
// included (server.CheckConfig), and adds what it finds to r: each
// problem with its key path, and warnings about settings that weaken
// security. The configuration is nil when it has a problem.
func LoadConfig(path string, r *Report) *config.Config {
	var cfg *config.Config
	if path == "" {
		cfg = config.Default()
		r.ok(AreaConfig, "no --config: the embedded defaults (host localhost, data in ./data)")
	} else {
		var err error
		cfg, err = config.Load(path)
		if err == nil {
			err = server.CheckConfig(cfg)
		}
		if err != nil {
			configProblems(path, err, r)
			return nil
		}
		r.ok(AreaConfig, "%s is valid, modules' tables included", path)
	}
	configWarnings(cfg, r)
	return cfg
}

// configProblems adds each problem of err.
func configProblems(path string, err error, r *Report) {
	p, ok := errors.AsType[*config.Problems](err)
	if !ok {
		r.add(AreaConfig, Problem, "give the path of the server's configuration file with --config", "%v", err)
		return
	}
	for _, pr := range p.List {
		fix := fmt.Sprintf("edit %s in %s; config.example.toml documents every key with its default", keyOf(pr.Path), path)
		if strings.HasPrefix(pr.Path, "line ") {
			fix = fmt.Sprintf("fix the TOML syntax at %s of %s", pr.Path, path)
		}
		r.add(areaOf(pr.Path), Problem, fix, "%s", pr.String())
	}
}

// areaOf is the area a configuration problem at path belongs to, where
// the operator looks for it: the certificate files' and the web client's
// are checked by the configuration's validation already.
func areaOf(path string) string {
	switch {
	case path == "tls.cert" || path == "tls.key" || strings.HasPrefix(path, "hosts.") && (strings.HasSuffix(path, ".tls.cert") || strings.HasSuffix(path, ".tls.key") || strings.HasSuffix(path, ".tls")):
		return AreaCerts
	case strings.HasPrefix(path, "http.web_client"):
		return AreaWebClient
	}
	return AreaConfig
}

func keyOf(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// configWarnings adds warnings about a valid configuration.
func configWarnings(cfg *config.Config, r *Report) {
	if !cfg.C2S.RequireTLS && len(cfg.C2S.Listen) > 0 {
		r.add(AreaConfig, Warning, "set c2s.require_tls = true (the default)",
			"c2s.require_tls is off: clients may log in without TLS, their passwords readable on the way")
	}
	if cfg.S2S.Enabled && !cfg.S2S.RequireEncryption {
		r.add(AreaConfig, Warning, "set s2s.require_encryption = true (the default)",
			"s2s.require_encryption is off: messages to and from other servers may travel unencrypted")
	}
	if cfg.S2S.Enabled && len(cfg.S2S.InsecureDomains) > 0 {
		r.add(AreaConfig, Warning, "empty s2s.insecure_domains unless these are test servers",
			"s2s.insecure_domains lets %s federate without TLS", hostList(cfg.S2S.InsecureDomains))
	}
	var open []string
	for _, h := range cfg.Server.Hosts {
		if cfg.RegistrationEnabled(h) {
			open = append(open, h)
		}
	}
	if len(open) > 0 {
		r.add(AreaConfig, Warning, "if that is not meant, set [registration] enabled = false (or per host, [hosts.\"x\".registration])",
			"in-band registration is open on %s: anyone who can connect can create accounts", hostList(open))
	}
}

// serviceDomains is what the modules serve besides the hosts.
func serviceDomains(cfg *config.Config, r *Report) []string {
	ds, err := server.ServiceDomains(cfg)
	if err != nil {
		r.add(AreaConfig, Problem, "fix the modules' tables (starling check-config)", "the services' domains: %v", err)
	}
	return ds
}

// servicesOf returns the domains of services that are subdomains of host.
func servicesOf(host string, services []string) []string {
	var out []string
	for _, d := range services {
		if strings.HasSuffix(d, "."+host) {
			out = append(out, d)
		}
	}
	return out
}
