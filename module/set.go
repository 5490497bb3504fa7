package module

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/starling-xmpp/starling/config"
)

// Set is the list of modules a server runs: it decodes their tables,
// starts the enabled ones in list order, and stops them in reverse.
type Set struct {
	list    []Module
	started []Module        // in start order
	on      map[string]bool // the names of the started modules

	options atomic.Pointer[map[string]any] // by name, for the configuration in force

	mu     sync.Mutex // guards stream, admin and http
	stream []func() string
	admin  map[string]func(string) string
	http   []httpRoute
}

// httpRoute is a handler a module serves on the web listeners.
type httpRoute struct {
	pattern string
	handler http.Handler
}

// NewSet returns the Set of list, in its order.
func NewSet(list []Module) *Set { return &Set{list: list} }

// Names lists the modules' names, in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.list))
	for i, m := range s.list {
		names[i] = m.Name()
	}
	return names
}

// Check decodes every module's table in cfg and reports every problem, as
// check-config does; a table for a module not in the list is one.
func (s *Set) Check(cfg *config.Config) error {
	_, _, err := s.decode(cfg)
	return err
}

// decode decodes each module's table: its options by name, and whether it
// is enabled.
func (s *Set) decode(cfg *config.Config) (map[string]any, map[string]bool, error) {
	opts := make(map[string]any, len(s.list))
	enabled := make(map[string]bool, len(s.list))
	errs := []error{cfg.CheckModules(s.Names())}
	for _, m := range s.list {
		var o any
		if c, ok := m.(Configurable); ok {
			o = c.Options()
		}
		_, optional := m.(Optional)
		on, err := cfg.DecodeModule(m.Name(), o, optional)
		errs = append(errs, err)
		opts[m.Name()] = o
		enabled[m.Name()] = on
	}
	return opts, enabled, joinProblems(errs)
}

// ServiceDomains returns the domains the enabled modules would serve with
// cfg besides the hosts (Servicer), sorted; an error if cfg's module
// tables do not decode (Check).
func (s *Set) ServiceDomains(cfg *config.Config) ([]string, error) {
	opts, enabled, err := s.decode(cfg)
	if err != nil {
		return nil, err
	}
	var domains []string
	for _, m := range s.list {
		if sv, ok := m.(Servicer); ok && enabled[m.Name()] {
			domains = append(domains, sv.ServiceDomains(cfg, opts[m.Name()])...)
		}
	}
	slices.Sort(domains)
	return slices.Compact(domains), nil
}

// joinProblems merges the *config.Problems in errs into one, so that the
// caller prints them as the rest of the configuration's.
func joinProblems(errs []error) error {
	all := &config.Problems{}
	for _, err := range errs {
		if p, ok := errors.AsType[*config.Problems](err); ok {
			all.List = append(all.List, p.List...)
		} else if err != nil {
			return err
		}
	}
	if len(all.List) == 0 {
		return nil
	}
	return all
}

// Start decodes the tables of base.Config() and starts the enabled
// modules in order, each with its own Env made from base. If one fails,
// those started are stopped and its error returned.
func (s *Set) Start(ctx context.Context, base Env) error {
	opts, enabled, err := s.decode(base.Config())
	if err != nil {
		return err
	}
	s.options.Store(&opts)
	for _, m := range s.list {
		if !enabled[m.Name()] {
			if base.Log != nil {
				base.Log.Info("module turned off", "module", m.Name())
			}
			continue
		}
		env := base
		env.name, env.set = m.Name(), s
		if base.Log != nil {
			env.Log = base.Log.With("module", m.Name())
		}
		if err := m.Start(ctx, &env); err != nil {
			return errors.Join(err, s.Stop(ctx))
		}
		s.started = append(s.started, m)
		if s.on == nil {
			s.on = make(map[string]bool)
		}
		s.on[m.Name()] = true
	}
	return nil
}

// Reload decodes the tables of a new configuration, for the modules to
// read through Env.Options. Turning a module on or off takes a restart.
func (s *Set) Reload(cfg *config.Config) error {
	opts, enabled, err := s.decode(cfg)
	if err != nil {
		return err
	}
	for _, m := range s.list {
		if enabled[m.Name()] != s.on[m.Name()] {
			return errors.New("modules." + m.Name() + ".enabled changes only with a restart")
		}
	}
	s.options.Store(&opts)
	for _, m := range s.started {
		if r, ok := m.(Reloader); ok {
			r.Reloaded()
		}
	}
	return nil
}

// Stop stops the started modules that have a stop step, in reverse
// order, and returns their errors.
func (s *Set) Stop(ctx context.Context) error {
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		if st, ok := s.started[i].(Stopper); ok {
			errs = append(errs, st.Stop(ctx))
		}
	}
	s.started, s.on = nil, nil
	return errors.Join(errs...)
}

// StreamFeatures returns the stream features the started modules offer
// after authentication (Env.AddStreamFeature).
func (s *Set) StreamFeatures() []byte {
	s.mu.Lock()
	fs := s.stream
	s.mu.Unlock()
	var b []byte
	for _, f := range fs {
		b = append(b, f()...)
	}
	return b
}

// AdminCommand returns the admin command a started module added under
// name (Env.AddAdminCommand).
func (s *Set) AdminCommand(name string) (func(args string) string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.admin[name]
	return f, ok
}

// HTTPHandlers calls handle with each handler the started modules serve on
// the web listeners (Env.HandleHTTP), in the order they were added.
func (s *Set) HTTPHandlers(handle func(pattern string, h http.Handler)) {
	s.mu.Lock()
	routes := s.http
	s.mu.Unlock()
	for _, r := range routes {
		handle(r.pattern, r.handler)
	}
}
