package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/s2s/resolve"
)

// srvService is one of the SRV records of RFC 6120 §3.2.1 and XEP-0368.
type srvService struct {
	name        string // "xmpp-client"
	key         string // the listeners it must point at: "c2s.listen"
	ports       []int  // their ports
	defaultPort int    // the fallback's port (RFC 6120 §3.2.2); 0 for direct TLS, which has none
	server      bool   // federation's
}

// resolver asks cfg's [s2s] resolver, or the system's.
func resolver(cfg *config.Config) *net.Resolver {
	if cfg.S2S.Resolver == "" {
		return &net.Resolver{PreferGo: true}
	}
	server := cfg.S2S.Resolver
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// DNS checks, for each host, the SRV records of clients and servers, the
// addresses of the host and of the records' targets, whether those are
// this machine's, and that the services' domains resolve for federation.
// It asks [s2s] resolver when set, else the system's resolver.
func DNS(ctx context.Context, opts Options, services []string, r *Report) {
	cfg := opts.Config
	res := resolver(cfg)
	local, localErr := localAddrs(opts)
	if cfg.S2S.Resolver != "" {
		r.ok(AreaDNS, "asking the DNS server %s (s2s.resolver)", cfg.S2S.Resolver)
	}
	svcs := []srvService{
		{name: "xmpp-client", key: "c2s.listen", ports: ports(cfg.C2S.Listen), defaultPort: 5222},
		{name: "xmpps-client", key: "c2s.direct_tls_listen", ports: ports(cfg.C2S.DirectTLSListen)},
	}
	if cfg.S2S.Enabled {
		svcs = append(svcs,
			srvService{name: "xmpp-server", key: "s2s.listen", ports: ports(cfg.S2S.Listen), defaultPort: resolve.DefaultPort, server: true},
			srvService{name: "xmpps-server", key: "s2s.direct_tls_listen", ports: ports(cfg.S2S.DirectTLSListen), server: true})
	}
	for _, host := range cfg.Server.Hosts {
		name := aLabel(host)
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			r.ok(AreaDNS, "%s: a local name, not in DNS: only this machine's clients can reach it", host)
			continue
		}
		if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
			r.ok(AreaDNS, "%s: an IP address, nothing to look up", host)
			continue
		}
		var targets []string
		srvFound := map[string]bool{}
		for _, s := range svcs {
			t, found := checkSRV(ctx, opts, res, host, name, s, r)
			targets = append(targets, t...)
			srvFound[s.name] = found
		}
		// The host's own addresses: the fallback's target (RFC 6120 §3.2.2).
		addrs, err := lookupAddrs(ctx, opts, res, name)
		switch {
		case err != nil:
			r.add(AreaDNS, Problem, "check that the DNS server answers ("+resolverName(cfg)+")", "%s: looking up its A/AAAA records: %v", host, err)
		case len(addrs) == 0 && srvFound["xmpp-client"] && (!cfg.S2S.Enabled || srvFound["xmpp-server"]):
			r.ok(AreaDNS, "%s: no A/AAAA record, and none needed: the SRV records point elsewhere", host)
		case len(addrs) == 0:
			r.add(AreaDNS, Problem, fmt.Sprintf("add an A (and AAAA) record for %s with this machine's public address, or SRV records (above)", name),
				"%s: no A/AAAA record, and not every SRV record: clients and servers that fall back to the host's address (RFC 6120 §3.2.2) find nothing", host)
		default:
			r.ok(AreaDNS, "%s has the addresses %s", host, addrList(addrs))
			whose(host, addrs, local, localErr, r)
		}
		slices.Sort(targets)
		for _, t := range slices.Compact(targets) {
			if t == name {
				continue
			}
			addrs, err := lookupAddrs(ctx, opts, res, t)
			switch {
			case err != nil:
				r.add(AreaDNS, Problem, "check that the DNS server answers ("+resolverName(cfg)+")", "%s: looking up the A/AAAA records of the SRV target %s: %v", host, t, err)
			case len(addrs) == 0:
				r.add(AreaDNS, Problem, fmt.Sprintf("add an A (and AAAA) record for %s, or point the SRV records at a name that has one", t),
					"%s: the SRV target %s has no A/AAAA record: nobody can connect through it", host, t)
			default:
				r.ok(AreaDNS, "%s: the SRV target %s has the addresses %s", host, t, addrList(addrs))
				whose(t, addrs, local, localErr, r)
			}
		}
	}
	if !cfg.S2S.Enabled {
		r.ok(AreaDNS, "federation is off: no server records needed")
		return
	}
	rs := &resolve.Resolver{Server: cfg.S2S.Resolver, Timeout: opts.timeout()}
	for _, d := range services {
		targets, err := rs.Targets(ctx, d)
		if err != nil {
			r.add(AreaDNS, Problem, fmt.Sprintf("add a record for %s: a CNAME to the host (%s. CNAME host.), an A/AAAA record, or _xmpp-server._tcp.%s SRV records", d, d, d),
				"%s: other servers cannot find this service: %v", d, err)
			continue
		}
		var ts []string
		for _, t := range targets {
			ts = append(ts, t.String())
		}
		r.ok(AreaDNS, "%s: other servers find it at %s", d, strings.Join(ts, ", "))
	}
}

func resolverName(cfg *config.Config) string {
	if cfg.S2S.Resolver != "" {
		return "s2s.resolver " + cfg.S2S.Resolver
	}
	return "this machine's resolver, /etc/resolv.conf"
}

// checkSRV looks up _s._tcp.name and reports what it finds; it returns
// the targets, and whether there were usable records.
func checkSRV(ctx context.Context, opts Options, res *net.Resolver, host, name string, s srvService, r *Report) ([]string, bool) {
	owner := "_" + s.name + "._tcp." + name
	who := "clients"
	if s.server {
		who = "other servers"
	}
	lctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	_, records, err := res.LookupSRV(lctx, s.name, "tcp", name+".")
	var usable []*net.SRV
	for _, rec := range records {
		if rec.Target != "." {
			usable = append(usable, rec)
		}
	}
	example := func(port int) string {
		return fmt.Sprintf("%s. 3600 IN SRV 0 5 %d %s.", owner, port, name)
	}
	switch {
	case len(usable) > 0:
		var targets []string
		for _, rec := range usable {
			t := strings.TrimSuffix(rec.Target, ".")
			targets = append(targets, strings.ToLower(t))
			at := net.JoinHostPort(t, strconv.Itoa(int(rec.Port)))
			switch {
			case slices.Contains(s.ports, int(rec.Port)):
				r.ok(AreaDNS, "%s: %s points at %s, a port of %s", host, owner, at, s.key)
			case len(s.ports) == 0:
				r.add(AreaDNS, Problem, fmt.Sprintf("add a listener on port %d to %s, or remove the record", rec.Port, s.key),
					"%s: %s points at %s, but %s is empty: %s that follow it find nothing", host, owner, at, s.key, who)
			default:
				r.add(AreaDNS, Problem, fmt.Sprintf("make the record's port one of %s's (%s), or listen on %d", s.key, portList(s.ports), rec.Port),
					"%s: %s points at %s, but %s listens on %s: %s that follow it find nothing", host, owner, at, s.key, portList(s.ports), who)
			}
		}
		return targets, true
	case len(records) > 0: // "." alone: no such service (RFC 2782)
		if len(s.ports) > 0 {
			r.add(AreaDNS, Problem, "remove the \".\" record, or publish "+example(s.ports[0]),
				"%s: %s says there is no such service (target \".\"), but %s listens on %s", host, owner, s.key, portList(s.ports))
		} else {
			r.ok(AreaDNS, "%s: %s says there is no such service, and %s is empty", host, owner, s.key)
		}
		return nil, false
	case err != nil && !isNotFound(err):
		r.add(AreaDNS, Problem, "check that the DNS server answers ("+resolverName(opts.Config)+")", "%s: looking up %s: %v", host, owner, err)
		return nil, false
	}
	// No record.
	switch {
	case len(s.ports) == 0:
		r.ok(AreaDNS, "%s: no %s record, and %s is empty", host, owner, s.key)
	case s.defaultPort == 0:
		r.add(AreaDNS, Warning, "publish "+example(s.ports[0]),
			"%s: no %s record: %s do not find the direct TLS listener (XEP-0368) on %s", host, owner, who, portList(s.ports))
	case slices.Contains(s.ports, s.defaultPort):
		r.add(AreaDNS, Warning, "publish "+example(s.defaultPort),
			"%s: no %s record: %s fall back to %s:%d (RFC 6120 §3.2.2), which %s listens on; a record is still recommended", host, owner, who, name, s.defaultPort, s.key)
	default:
		r.add(AreaDNS, Problem, "publish "+example(s.ports[0]),
			"%s: no %s record: %s fall back to port %d, but %s listens on %s", host, owner, who, s.defaultPort, s.key, portList(s.ports))
	}
	return nil, false
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// lookupAddrs returns name's A and AAAA addresses; none and no error
// when DNS says it has none.
func lookupAddrs(ctx context.Context, opts Options, res *net.Resolver, name string) ([]netip.Addr, error) {
	lctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	addrs, err := res.LookupNetIP(lctx, "ip", name+".")
	if len(addrs) > 0 {
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
		return addrs, nil
	}
	if err == nil || isNotFound(err) {
		return nil, nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.IsTimeout {
			return nil, fmt.Errorf("no answer within %s", opts.timeout())
		}
		return nil, errors.New(de.Err)
	}
	return nil, err
}

func localAddrs(opts Options) ([]netip.Addr, error) {
	if opts.LocalAddrs != nil {
		return opts.LocalAddrs()
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifaddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// whose says whether addrs are this machine's.
func whose(name string, addrs, local []netip.Addr, localErr error, r *Report) {
	if localErr != nil {
		r.add(AreaDNS, Warning, "", "%s: cannot tell whether its addresses are this machine's: %v", name, localErr)
		return
	}
	public := slices.ContainsFunc(local, isPublic)
	for _, a := range addrs {
		switch {
		case a.IsLoopback():
			r.ok(AreaDNS, "%s: %s is this machine's (loopback: for clients on this machine only)", name, a)
		case slices.Contains(local, a):
			r.ok(AreaDNS, "%s: %s is this machine's", name, a)
		case !public:
			r.add(AreaDNS, Warning, "make sure "+a.String()+" forwards the XMPP ports to this machine",
				"%s: %s is not an address of this machine, which has only private ones (%s): behind NAT, this check cannot tell whether it reaches here", name, a, addrList(local))
		default:
			r.add(AreaDNS, Warning, "point the record at this machine's address, unless "+a.String()+" is a proxy or another machine meant to serve it",
				"%s: %s is not one of this machine's addresses (%s)", name, a, addrList(local))
		}
	}
}

func isPublic(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

func addrList(addrs []netip.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// ports are the ports of listener addresses.
func ports(addrs []string) []int {
	var ps []int
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.Atoi(p); err == nil && !slices.Contains(ps, n) {
				ps = append(ps, n)
			}
		}
	}
	return ps
}

func portList(ps []int) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(p))
	}
	return strings.Join(s, ", ")
}
