package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
)

// listener is one configured listener address.
type listener struct {
	key  string // "c2s.listen"
	addr string
}

// listeners lists cfg's listener addresses.
func listeners(cfg *config.Config) []listener {
	var ls []listener
	add := func(key string, addrs []string) {
		for _, a := range addrs {
			ls = append(ls, listener{key, a})
		}
	}
	add("c2s.listen", cfg.C2S.Listen)
	add("c2s.direct_tls_listen", cfg.C2S.DirectTLSListen)
	if cfg.S2S.Enabled {
		add("s2s.listen", cfg.S2S.Listen)
		add("s2s.direct_tls_listen", cfg.S2S.DirectTLSListen)
	}
	add("http.listen", cfg.HTTP.Listen)
	add("http.tls_listen", cfg.HTTP.TLSListen)
	acmeHost := false
	for _, h := range cfg.Server.Hosts {
		acmeHost = acmeHost || cfg.ACMEHost(h)
	}
	if acmeHost && cfg.TLS.ACMEChallenge == config.ChallengeHTTP01 && cfg.TLS.ACMEHTTPListen != "" {
		add("tls.acme_http_listen", []string{cfg.TLS.ACMEHTTPListen})
	}
	if cfg.Metrics.Listen != "" {
		add("metrics.listen", []string{cfg.Metrics.Listen})
	}
	return ls
}

// Ports checks that each listener address can be bound, or is the
// running server's (told by its admin socket), and that the running
// server's listeners accept connections on loopback.
func Ports(ctx context.Context, opts Options, r *Report) {
	running := false
	if opts.Running != nil {
		running = opts.Running(ctx)
	} else {
		_, err := server.Admin(ctx, opts.Config, "sessions")
		running = err == nil
	}
	if running {
		r.ok(AreaPorts, "a Starling runs on this data directory (its admin socket %s answers)", server.AdminSocket(opts.Config))
	}
	if m := opts.Config.Metrics.Listen; m != "" && !loopback(m) {
		r.add(AreaPorts, Warning, "listen on 127.0.0.1 (or a private network) and let Prometheus scrape it there, or filter the port",
			"metrics.listen %s is not a loopback address: whoever reaches it sees how busy the server is, without authentication", m)
	}
	for _, l := range listeners(opts.Config) {
		ln, err := net.Listen("tcp", l.addr)
		if err == nil {
			ln.Close()
			if running {
				r.add(AreaPorts, Warning, "restart the server to listen there (listeners change only with a restart)",
					"%s %s is free: the running server does not listen there", l.key, l.addr)
			} else {
				r.ok(AreaPorts, "%s %s can be bound", l.key, l.addr)
			}
			continue
		}
		_, port, _ := net.SplitHostPort(l.addr)
		switch {
		case errors.Is(err, syscall.EADDRINUSE) && running:
			r.ok(AreaPorts, "%s %s is in use by the running server", l.key, l.addr)
			connectTest(ctx, opts, l, r)
		case errors.Is(err, syscall.EADDRINUSE):
			r.add(AreaPorts, Problem, fmt.Sprintf("find the program with `ss -ltnp 'sport = :%s'` and stop it, or change %s", port, l.key),
				"%s %s is in use by another program (no Starling answers on this data directory's admin socket)", l.key, l.addr)
		case errors.Is(err, syscall.EACCES):
			r.add(AreaPorts, Problem, "give the server the capability to bind low ports (AmbientCapabilities=CAP_NET_BIND_SERVICE in contrib/systemd/starling.service), or use a port above 1023",
				"%s %s: port %s needs privileges this user lacks", l.key, l.addr, port)
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			r.add(AreaPorts, Problem, fmt.Sprintf("use one of this machine's addresses in %s, or 0.0.0.0 / [::] for all", l.key),
				"%s %s: this machine has no such address", l.key, l.addr)
		default:
			r.add(AreaPorts, Problem, "check "+l.key, "%s %s cannot be bound: %v", l.key, l.addr, err)
		}
	}
}

// connectTest connects to the running server's listener l over loopback:
// the only connections a check makes.
func connectTest(ctx context.Context, opts Options, l listener, r *Report) {
	host, port, err := net.SplitHostPort(l.addr)
	if err != nil {
		return
	}
	target := ""
	switch ip, err := netip.ParseAddr(host); {
	case host == "" || err == nil && ip.IsUnspecified() && ip.Is4():
		target = "127.0.0.1"
	case err == nil && ip.IsUnspecified():
		target = "::1"
	case err == nil && ip.IsLoopback():
		target = ip.String()
	case host == "localhost":
		target = "127.0.0.1"
	}
	if target == "" {
		r.ok(AreaPorts, "%s %s: connections not tried (only loopback addresses are)", l.key, l.addr)
		return
	}
	addr := net.JoinHostPort(target, port)
	d := net.Dialer{Timeout: opts.timeout()}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		r.add(AreaPorts, Problem, "see the server's log; a firewall on this machine may drop connections to port "+port,
			"%s %s: no connection to %s: %v", l.key, l.addr, addr, err)
		return
	}
	c.Close()
	r.ok(AreaPorts, "%s %s accepts connections (tried %s)", l.key, l.addr, addr)
}

// loopback reports whether the listener address addr is on a loopback
// address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
