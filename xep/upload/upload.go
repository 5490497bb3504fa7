// Package upload implements HTTP file upload (XEP-0363) as a service on a
// subdomain of each host (upload.<host>), with the files served by
// Starling's own web listener: no second server to run.
//
// What it does:
//   - the service: disco#info with the store/file identity, the
//     urn:xmpp:http:upload:0 feature and max-file-size in its form (§3),
//     listed in each host's disco#items (XEP-0030 §4);
//   - slot requests (§4) from the host's users: the filename (no path
//     separators, no control characters), the size (at most
//     max_file_size: <file-too-large/> with the limit, §5) and the
//     content type checked, the account's stored bytes (quota) and the
//     bytes of the last 24 hours (daily_quota) checked (<resource-
//     constraint/>, type wait, §5), the slots handed out and not used yet
//     counted too (kept in memory: their tokens do not outlive the
//     process, and a slot request writes nothing); a PUT URL carrying a signed token valid for a few minutes and a GET
//     URL, both on the HTTPS listener ([http] tls_listen) or the url
//     configured for a reverse proxy;
//   - the PUT (§6, files.go): the token, the size and the content type
//     enforced, one upload per slot, a body that stalls or crawls cut off,
//     the slot recorded in storage.Uploads once its file is complete;
//     the GET: the stored content type, ranges and caching headers, CORS
//     for web clients;
//   - files under dir (data_dir/upload) by host and account, removed with
//     the account (auth.AccountDeleted, and at start for accounts deleted
//     while the server was down) and once older than expire_after.
package upload

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/module"
)

// NS is XEP-0363's namespace.
const NS = "urn:xmpp:http:upload:0"

// Path is where the files are served on the web listener: Path<id>/<name>.
const Path = "/upload/"

// Options are [modules.upload].
type Options struct {
	// Subdomain is the service's label under each host: Subdomain.host.
	Subdomain string `toml:"subdomain"`
	// MaxFileSize is the largest file a slot is given for, in bytes.
	MaxFileSize int64 `toml:"max_file_size"`
	// Quota is the most bytes an account's files may take (0: no limit).
	Quota int64 `toml:"quota"`
	// DailyQuota is the most bytes an account may upload in 24 hours
	// (0: no limit).
	DailyQuota int64 `toml:"daily_quota"`
	// ExpireAfter is how long a file is kept (0: forever).
	ExpireAfter config.Duration `toml:"expire_after"`
	// URL replaces "https://<host>:<port>" of the HTTPS listener in the
	// URLs handed out, for a reverse proxy that forwards Path to the web
	// listener ("" uses the HTTPS listener).
	URL string `toml:"url"`
	// Dir is where the files are kept ("" is data_dir/upload); a
	// relative path is relative to the configuration file's directory.
	Dir string `toml:"dir"`
}

// Validate implements config.OptionsValidator.
func (o *Options) Validate() []config.OptionsProblem {
	var p []config.OptionsProblem
	if o.Subdomain == "" || strings.ContainsAny(o.Subdomain, "@/. ") {
		p = append(p, config.OptionsProblem{Key: "subdomain", Message: fmt.Sprintf("must be a DNS label, not %q", o.Subdomain)})
	}
	if o.MaxFileSize < 1 {
		p = append(p, config.OptionsProblem{Key: "max_file_size", Message: "must be at least 1 byte"})
	}
	if o.Quota < 0 {
		p = append(p, config.OptionsProblem{Key: "quota", Message: "must not be negative (0: no limit)"})
	}
	if o.DailyQuota < 0 {
		p = append(p, config.OptionsProblem{Key: "daily_quota", Message: "must not be negative (0: no limit)"})
	}
	if o.ExpireAfter.Duration < 0 {
		p = append(p, config.OptionsProblem{Key: "expire_after", Message: "must not be negative (0 keeps files forever)"})
	}
	if o.URL != "" {
		if err := checkBaseURL(o.URL); err != nil {
			p = append(p, config.OptionsProblem{Key: "url", Message: err.Error()})
		}
	}
	return p
}

// Module is XEP-0363 as a module.
type Module struct {
	files    *Files
	services []*Service
	stop     chan struct{}
	done     sync.WaitGroup
}

// Name implements module.Module.
func (*Module) Name() string { return "upload" }

// Optional implements module.Optional.
func (*Module) Optional() {}

// Options implements module.Configurable.
func (*Module) Options() any {
	return &Options{
		Subdomain:   "upload",
		MaxFileSize: 100 << 20,
		Quota:       1 << 30,
		DailyQuota:  500 << 20,
		ExpireAfter: config.Duration{Duration: 30 * 24 * time.Hour},
	}
}

// sweepInterval is how often expired files are looked for.
const sweepInterval = time.Hour

// ServiceDomains implements module.Servicer: Subdomain.host for each
// host, when there is a service (see Start).
func (*Module) ServiceDomains(cfg *config.Config, options any) []string {
	opts := options.(*Options)
	if opts.URL == "" && len(cfg.HTTP.TLSListen) == 0 {
		return nil
	}
	var ds []string
	for _, host := range cfg.Server.Hosts {
		ds = append(ds, opts.Subdomain+"."+host)
	}
	return ds
}

// Start implements module.Module.
func (m *Module) Start(ctx context.Context, env *module.Env) error {
	opts := env.Options().(*Options)
	cfg := env.Config()
	if opts.URL == "" && len(cfg.HTTP.TLSListen) == 0 {
		env.Log.Info("no upload service: it needs an HTTPS listener ([http] tls_listen) or [modules.upload] url")
		return nil
	}
	dir := cfg.Path(opts.Dir) // relative to the configuration file
	if dir == "" {
		dir = filepath.Join(cfg.Server.DataDir, "upload")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("upload directory: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	m.files = &Files{Dir: dir, Store: env.Store, Key: key, Log: env.Log}
	if err := m.files.Clean(ctx, env.Store); err != nil {
		return fmt.Errorf("upload directory: %w", err)
	}
	env.HandleHTTP(Path, m.files)
	options := func() *Options { return env.Options().(*Options) }
	for _, host := range cfg.Server.Hosts {
		domain := opts.Subdomain + "." + host
		s := &Service{
			Domain: domain, Host: host, Router: env.Router, Store: env.Store, Files: m.files,
			Options: options,
			BaseURL: func() string {
				if u := options().URL; u != "" {
					return strings.TrimSuffix(u, "/")
				}
				return env.WebURL(host)
			},
			Log: env.Log.With(slog.String("service", domain)),
		}
		m.services = append(m.services, s)
		env.Router.AddService(domain, s)
		env.IQ.AddItem(dispatch.Item{JID: domain, Name: "HTTP File Upload"})
	}
	// The account's files go with it; its slots went with its storage.
	event.On(env.Bus, event.Normal, "upload", func(_ context.Context, e *auth.AccountDeleted) bool {
		if err := m.files.RemoveAccount(e.JID.Domainpart(), e.JID.Localpart()); err != nil {
			env.Log.Error("removing a deleted account's files", "jid", e.JID.String(), "err", err)
		}
		return false
	})
	m.stop = make(chan struct{})
	m.done.Go(func() { m.sweep(env, options) })
	return nil
}

// sweep removes expired files every sweepInterval until Stop.
func (m *Module) sweep(env *module.Env, options func() *Options) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		if after := options().ExpireAfter.Duration; after > 0 {
			n, err := m.files.Expire(context.Background(), time.Now().Add(-after))
			if err != nil {
				env.Log.Error("removing expired files", "err", err)
			} else if n > 0 {
				env.Log.Info("removed expired files", "count", n)
			}
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// Stop implements module.Stopper.
func (m *Module) Stop(context.Context) error {
	if m.stop != nil {
		close(m.stop)
		m.done.Wait()
	}
	return nil
}

// checkBaseURL checks a configured base URL: https, a host, no query.
func checkBaseURL(s string) error {
	if !strings.HasPrefix(s, "https://") {
		return errors.New("must be an https:// URL (XEP-0363 §8: uploads go over TLS)")
	}
	rest := strings.TrimPrefix(s, "https://")
	if rest == "" || strings.HasPrefix(rest, "/") || strings.ContainsAny(rest, "?# ") {
		return fmt.Errorf("must be https://host[:port][/prefix], not %q", s)
	}
	return nil
}
