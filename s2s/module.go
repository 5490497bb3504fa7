package s2s

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/module"
)

// Module is federation as a module of the list: it starts when [s2s]
// enabled is set, takes the router's remote domains (router.Remote), and
// answers the admin command "s2s" (`starling s2s`).
type Module struct {
	f *Federation
}

// Name implements module.Module.
func (*Module) Name() string { return "s2s" }

// Start implements module.Module.
func (m *Module) Start(ctx context.Context, env *module.Env) error {
	if !env.Config().S2S.Enabled {
		env.Log.Info("federation is off ([s2s] enabled = false)")
		return nil
	}
	f, err := New(ctx, env.Config, env.Log, env.Router, env.TLS)
	if err != nil {
		return fmt.Errorf("s2s: %w", err)
	}
	if err := f.Listen(); err != nil {
		return fmt.Errorf("s2s: %w", err)
	}
	m.f = f
	env.Router.SetRemote(f)
	env.AddAdminCommand("s2s", func(string) string { return f.Status() })
	return nil
}

// Stop implements module.Stopper.
func (m *Module) Stop(context.Context) error {
	if m.f != nil {
		m.f.Close()
	}
	return nil
}

// Federation returns the running federation, nil when off (for tests).
func (m *Module) Federation() *Federation { return m.f }

// Status describes every server-to-server stream, one per line, for
// operators (`starling s2s`): direction, domains, state, authentication
// method, TLS version, queued stanzas and the last error in words.
func (f *Federation) Status() string {
	var lines []string
	f.mu.Lock()
	links := make([]*link, 0, len(f.links))
	for _, l := range f.links {
		links = append(links, l)
	}
	ins := make([]*inStream, 0, len(f.ins))
	for s := range f.ins {
		ins = append(ins, s)
	}
	f.mu.Unlock()
	now := f.now()
	for _, l := range links {
		l.mu.Lock()
		var line string
		switch l.state {
		case connecting:
			line = fmt.Sprintf("out %s -> %s connecting queued=%d", l.p.local, l.p.remote, len(l.queue))
		case up:
			line = fmt.Sprintf("out %s -> %s up method=%s tls=%s since=%s sent=%d queued=%d max_bytes=%d",
				l.p.local, l.p.remote, l.method, l.c.tlsVersion(), l.since.UTC().Format(time.RFC3339), l.sent.Load(), len(l.queue), l.maxBytes)
		case failed:
			line = fmt.Sprintf("out %s -> %s failed retry_in=%s error=%q",
				l.p.local, l.p.remote, max(l.retryAt.Sub(now), 0).Round(time.Second), l.lastErr.reason)
		}
		l.mu.Unlock()
		if line != "" {
			lines = append(lines, line)
		}
	}
	for _, s := range ins {
		s.mu.Lock()
		var pairs []string
		for r, ls := range s.authed {
			for l := range ls {
				pairs = append(pairs, r+" -> "+l)
			}
		}
		from, tlsv, sasl := s.shownFrom, s.shownTLS, s.shownSASL
		s.mu.Unlock()
		slices.Sort(pairs)
		method := "dialback"
		if sasl {
			method = "EXTERNAL"
		}
		if len(pairs) == 0 {
			method = "none"
		}
		lines = append(lines, fmt.Sprintf("in %s addr=%s authenticated=[%s] method=%s tls=%s",
			orDash(from), s.addr, strings.Join(pairs, ", "), method, orDash(tlsv)))
	}
	slices.Sort(lines)
	if n := f.refusals.Load(); n > 0 {
		lines = append(lines, fmt.Sprintf("refused %d incoming streams: too many unauthenticated from one address", n))
	}
	if len(lines) == 0 {
		return "no server-to-server streams"
	}
	return strings.Join(lines, "\n")
}

// StreamCounts are how many server-to-server streams there are, by
// direction and state, for metrics: outgoing ones being set up
// (connecting), authenticated (up) or failed and waiting to be retried;
// incoming ones that have authenticated a domain pair or not yet.
type StreamCounts struct {
	OutConnecting, OutUp, OutFailed    int
	InAuthenticated, InUnauthenticated int
}

// Streams counts the server-to-server streams now.
func (f *Federation) Streams() StreamCounts {
	f.mu.Lock()
	links := make([]*link, 0, len(f.links))
	for _, l := range f.links {
		links = append(links, l)
	}
	ins := make([]*inStream, 0, len(f.ins))
	for s := range f.ins {
		ins = append(ins, s)
	}
	f.mu.Unlock()
	var n StreamCounts
	for _, l := range links {
		l.mu.Lock()
		switch l.state {
		case connecting:
			n.OutConnecting++
		case up:
			n.OutUp++
		case failed:
			n.OutFailed++
		}
		l.mu.Unlock()
	}
	for _, s := range ins {
		s.mu.Lock()
		if len(s.authed) > 0 {
			n.InAuthenticated++
		} else {
			n.InUnauthenticated++
		}
		s.mu.Unlock()
	}
	return n
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
