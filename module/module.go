// Package module is how an extension plugs into Starling: a Module has a
// name, a start step that receives what a module may use (Env: the
// router, the IQ registry, the event bus, storage, its logger, its own
// [modules.<name>] table) and, optionally, a stop step run in reverse
// order. The ordered list of modules the server starts is one file,
// server/modules.go, as CoreDNS's plugin.cfg is; adding an extension is
// one package under xep/ and one line there. README.md beside this file
// says how to write one.
package module

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/starling-xmpp/starling/caps"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/tlsconf"
)

// Module is one extension.
type Module interface {
	// Name is the module's name: its log key and its configuration
	// table, [modules.<name>].
	Name() string
	// Start registers what the module provides (IQ handlers, event
	// handlers, features) and starts what it runs. It is called once, in
	// list order, before the server accepts connections; an error stops
	// the server from starting.
	Start(ctx context.Context, env *Env) error
}

// Stopper is a Module with a stop step, called in reverse list order when
// the server stops, after every session has ended.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Reloader is a Module told of reloads: Reloaded is called, for the
// started modules in list order, once a new configuration's options are
// in force (Env.Options returns them), so that it may act on what
// changed, such as telling clients.
type Reloader interface {
	Reloaded()
}

// Configurable is a Module with options of its own: Options returns a new
// pointer to a struct holding their defaults, with `toml` tags; the
// [modules.<name>] table is decoded into it as strictly as the rest of the
// configuration (unknown keys and wrong types are errors with their path,
// also for check-config). The module reads the decoded value in force
// with Env.Options, which follows reloads.
type Configurable interface {
	Options() any
}

// Optional is a Module the operator may turn off with [modules.<name>]
// enabled = false. Modules that implement core RFC 6120 and RFC 6121
// behaviour are not Optional.
type Optional interface {
	Optional()
}

// Servicer is a Module that serves domains of its own beside the hosts
// (router.AddService), such as conference.<host>: ServiceDomains returns
// those it would add with cfg and its decoded options (the pointer its
// Configurable.Options returns, filled in), without starting it, so that
// what must know them beforehand can (`starling check`, for the names
// the certificates and DNS must cover).
type Servicer interface {
	ServiceDomains(cfg *config.Config, options any) []string
}

// Env is what a started module may use. It is the module's own: Log and
// Options are for this module.
type Env struct {
	// Log has the key module=<name>.
	Log *slog.Logger
	// Router routes stanzas and knows the sessions (RFC 6120 §10).
	Router router.Router
	// Roster answers questions about subscriptions (RFC 6121 §3): who
	// sees an account's presence.
	Roster *roster.Service
	// Caps knows the entity capabilities (XEP-0115) of client sessions,
	// and of contacts' entities on other servers (caps.Remote, Remotes):
	// their features, and caps.Known when they become known (personal
	// eventing's "+notify" interest, XEP-0163 §4).
	Caps *caps.Tracker
	// IQ is where IQ handlers and disco features are registered.
	IQ *dispatch.Mux
	// Bus carries the typed events of the other packages and modules.
	Bus *event.Bus
	// Store is the server's storage.
	Store storage.Store
	// Config returns the configuration in force; it changes on reload.
	Config func() *config.Config
	// TLS holds the hosts' certificates (for a module with listeners of
	// its own, such as federation).
	TLS *tlsconf.Store
	// WebURL returns the base URL ("https://host:port", no trailing
	// slash) at which the web listener's HTTPS side ([http] tls_listen)
	// serves host's users, or "" when it has none. It may be called once
	// the server listens, not during Start.
	WebURL func(host string) string

	name string
	set  *Set
}

// Options returns the module's decoded [modules.<name>] table in force:
// a pointer of the type its Configurable.Options returns, filled in (a
// new one after each reload); nil for a module without options.
func (e *Env) Options() any { return (*e.set.options.Load())[e.name] }

// AddStreamFeature offers a stream feature element to every client once
// it has authenticated, beside resource binding (RFC 6120 §4.3.2), such as
// stream management: f returns it when a client is offered the features,
// so that it may depend on what the other modules registered (entity
// capabilities, XEP-0115 §6.3).
func (e *Env) AddStreamFeature(f func() string) {
	e.set.mu.Lock()
	e.set.stream = append(e.set.stream, f)
	e.set.mu.Unlock()
}

// HandleHTTP serves h at pattern (a net/http ServeMux pattern without
// method or host, such as "/upload/") on the web listeners ([http] listen
// and tls_listen), beside WebSocket and BOSH. It is called during Start.
func (e *Env) HandleHTTP(pattern string, h http.Handler) {
	e.set.mu.Lock()
	e.set.http = append(e.set.http, httpRoute{pattern, h})
	e.set.mu.Unlock()
}

// AddAdminCommand makes the admin socket (`starling NAME …`) answer the
// one-line command name with f's result; f gets the rest of the line.
func (e *Env) AddAdminCommand(name string, f func(args string) string) {
	e.set.mu.Lock()
	if e.set.admin == nil {
		e.set.admin = make(map[string]func(string) string)
	}
	e.set.admin[name] = f
	e.set.mu.Unlock()
}
