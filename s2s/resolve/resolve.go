// Package resolve finds where to connect for a remote XMPP domain, for
// outgoing server-to-server streams.
//
// It implements RFC 6120 §3.2: the SRV records of _xmpp-server._tcp
// (§3.2.1), each target's A and AAAA addresses in turn, and, when the
// domain has no SRV record, the domain's own addresses on port 5269
// (§3.2.2). Records are ordered as RFC 2782 says (lowest priority first,
// weighted random order within a priority), and a single record whose
// target is "." means the domain decidedly offers no service (RFC 2782,
// "Usage rules"; RFC 6120 §3.2.1 step 3). It also looks up _xmpps-server._tcp (XEP-0368): those
// targets take TLS at once, with ALPN "xmpp-server" and SNI the remote
// domain, never STARTTLS.
//
// How the two record sets are combined (XEP-0368 §3, where mixing the
// priorities is a SHOULD and preferring one kind a MAY): one list, by
// priority across both sets, so that the operator's priorities decide;
// within one priority, the _xmpps-server targets come first (each set in
// its own weighted order), since direct TLS saves round trips and cannot
// be stripped, as Prosody also tries it first. A "." under
// _xmpps-server._tcp only says that there is no direct TLS; then
// _xmpp-server._tcp decides, and no fallback to the domain's addresses
// is made (XEP-0368 §5).
//
// When the SRV lookups get no answer at all (a DNS failure rather than
// "no such record"), the fallback is tried, as RFC 6120 §3.2.1 step 9
// says; once SRV records were received and none can be reached, it is
// not (step 8).
package resolve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/idna"
)

// DefaultPort is the port of the fallback process (RFC 6120 §3.2.2,
// §14.7): the domain's own addresses on the IANA port of xmpp-server.
const DefaultPort = 5269

// defaultTimeout is the limit of one DNS lookup, and of one connection
// attempt, when none is given.
const defaultTimeout = 10 * time.Second

// The services looked up (RFC 6120 §3.2.1, XEP-0368 §3).
const (
	serviceSTARTTLS  = "xmpp-server"
	serviceDirectTLS = "xmpps-server"
)

// Target is one place to try.
type Target struct {
	Host      string // the SRV target, or the domain itself on fallback; no final dot
	Port      int
	DirectTLS bool // found under _xmpps-server: TLS at once with ALPN xmpp-server (XEP-0368)
}

// String is host:port, with " (direct TLS)" for a DirectTLS target.
func (t Target) String() string {
	s := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	if t.DirectTLS {
		s += " (direct TLS)"
	}
	return s
}

// The reasons an *Error gives, for errors.Is.
var (
	// ErrNoService: the domain says it offers no XMPP server-to-server
	// service, by a single SRV record whose target is "." (RFC 2782;
	// RFC 6120 §3.2.1 step 3), or by "." under _xmpps-server._tcp and no record
	// under _xmpp-server._tcp (XEP-0368 §5). Final: asking again will not
	// change it until the remote domain's DNS does.
	ErrNoService = errors.New("domain offers no XMPP service")
	// ErrNotFound: the domain has no SRV record and no A or AAAA record:
	// it does not exist, or not for XMPP (RFC 6120 §3.2.2).
	ErrNotFound = errors.New("no XMPP server found")
	// ErrLookup: DNS did not answer, or answered with an error, so that
	// where to connect is unknown. Temporary, usually.
	ErrLookup = errors.New("DNS lookup failed")
	// ErrUnreachable: there were targets, and none of their addresses
	// took a connection (RFC 6120 §3.2.1 steps 4 to 8).
	ErrUnreachable = errors.New("no XMPP server reachable")
)

// Error is why Targets or Dial found nowhere to connect. errors.Is
// matches its Reason, and its Context: context.DeadlineExceeded or
// context.Canceled when the caller's context ended the search, and only
// then (a lookup or connection attempt that ran out of its own time is
// one of the failures Detail tells about).
type Error struct {
	Domain  string // the domain resolved, as given
	Reason  error  // ErrNoService, ErrNotFound, ErrLookup or ErrUnreachable
	Detail  string // in words: what was tried and why each failed
	Context error  // the caller's context's error, if it ended the search
}

func (e *Error) Error() string {
	if e.Context != nil {
		return e.Detail + ": " + e.Context.Error()
	}
	return e.Detail
}

// Unwrap is Reason and, when set, Context.
func (e *Error) Unwrap() []error {
	if e.Context != nil {
		return []error{e.Reason, e.Context}
	}
	return []error{e.Reason}
}

// Resolver finds the targets of remote domains. The zero value uses the
// system's configuration. It is safe for concurrent use.
type Resolver struct {
	// Server is the DNS server to ask ("127.0.0.1:5353"); "" means the
	// system's configuration (/etc/resolv.conf and /etc/hosts, Go's
	// resolver). /etc/hosts is read in both cases, for the addresses of
	// names with a dot (names are looked up absolute, with the final dot,
	// so that no search domain of resolv.conf is tried, and Go's resolver
	// matches an absolute single-label name such as "localhost." to no
	// entry of /etc/hosts).
	Server  string
	Timeout time.Duration // per lookup; 0 = 10s
}

// resolver is Go's own resolver, asking r.Server when it is set.
func (r *Resolver) resolver() *net.Resolver {
	if r.Server == "" {
		return &net.Resolver{PreferGo: true}
	}
	server := r.Server
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return defaultTimeout
}

// candidate is a target with the addresses already looked up, if any.
type candidate struct {
	Target
	addrs []netip.Addr // nil: not looked up yet
}

// Targets returns the targets for domain in the order to try: SRV records
// (direct TLS and STARTTLS) ordered per RFC 2782, or, when there is none,
// the domain itself on 5269 with STARTTLS (RFC 6120 §3.2.2). An error
// when the domain decidedly has no XMPP service ("." target) or does not
// exist; it is an *Error.
//
// domain may be internationalised: it is looked up by its A-labels
// (RFC 5891), and a fallback Target's Host is that form. An IP address
// (RFC 7622 §3.2) is its own target, on 5269.
func (r *Resolver) Targets(ctx context.Context, domain string) ([]Target, error) {
	cands, err := r.targets(ctx, domain)
	if err != nil {
		return nil, err
	}
	out := make([]Target, len(cands))
	for i, c := range cands {
		out[i] = c.Target
	}
	return out, nil
}

// srvAnswer is the outcome of one SRV lookup.
type srvAnswer struct {
	name     string // the name asked: _xmpp-server._tcp.example.test
	direct   bool   // _xmpps-server
	records  []*net.SRV
	noSvc    bool   // a single "." target
	notFound bool   // NXDOMAIN or no SRV record
	failed   string // why the lookup failed otherwise, in words
}

// usable reports whether the answer has targets.
func (a *srvAnswer) usable() bool { return len(a.records) > 0 }

func (r *Resolver) targets(ctx context.Context, domain string) ([]candidate, error) {
	fail := func(reason error, format string, args ...any) ([]candidate, error) {
		return nil, &Error{Domain: domain, Reason: reason, Detail: fmt.Sprintf(format, args...), Context: ctx.Err()}
	}
	host, ip, err := aLabels(domain)
	if err != nil {
		return fail(ErrNotFound, "%q is not a domain name: %v", domain, err)
	}
	if ip.IsValid() {
		return []candidate{{Target{Host: ip.String(), Port: DefaultPort}, []netip.Addr{ip}}}, nil
	}

	var direct, starttls srvAnswer
	var wg sync.WaitGroup
	wg.Go(func() { direct = r.lookupSRV(ctx, serviceDirectTLS, host) })
	wg.Go(func() { starttls = r.lookupSRV(ctx, serviceSTARTTLS, host) })
	wg.Wait()
	if ctx.Err() != nil {
		return fail(ErrLookup, "%s: looking up its SRV records", host)
	}

	switch {
	case direct.usable() || starttls.usable():
		return merge(&direct, &starttls), nil
	case starttls.noSvc && direct.failed == "":
		return fail(ErrNoService, "%s: %s says no service (target '.')", host, starttls.name)
	case starttls.noSvc:
		return fail(ErrLookup, "%s: %s says no service (target '.') and %s",
			host, starttls.name, direct.failed)
	case direct.noSvc && starttls.notFound:
		return fail(ErrNoService, "%s: %s says no direct TLS (target '.') and %s has no record",
			host, direct.name, starttls.name)
	case direct.noSvc:
		return fail(ErrLookup, "%s: %s says no direct TLS (target '.') and %s",
			host, direct.name, starttls.failed)
	}

	// No SRV record: the fallback process (RFC 6120 §3.2.2).
	addrs, why, notFound := r.lookupAddrs(ctx, host)
	switch {
	case len(addrs) > 0:
		return []candidate{{Target{Host: host, Port: DefaultPort}, addrs}}, nil
	case ctx.Err() != nil:
		return fail(ErrLookup, "%s: no SRV record; looking up its addresses", host)
	case notFound && starttls.notFound && direct.notFound:
		return fail(ErrNotFound, "no SRV and no A/AAAA record for %s", host)
	}
	var whys []string
	for _, a := range []*srvAnswer{&starttls, &direct} {
		if a.failed != "" {
			whys = append(whys, a.failed)
		}
	}
	if notFound {
		whys = append(whys, "no A/AAAA record for "+host)
	} else {
		whys = append(whys, why)
	}
	return fail(ErrLookup, "%s: %s", host, strings.Join(whys, "; "))
}

// merge makes one list of both record sets (XEP-0368 §3): by priority,
// and within one priority the direct TLS records first, each set in the
// order RFC 2782 gives it. Go's LookupSRV already sorts by priority and
// orders each priority by weighted random selection as RFC 2782
// describes, so a stable sort by priority alone keeps that order. (Go
// puts records of weight 0 after the weighted ones of their priority,
// where RFC 2782 gives them "a very small chance" of coming first; and
// records all of weight 0 stay in the order of the answer, which RFC
// 2782 allows: "any order".)
func merge(answers ...*srvAnswer) []candidate {
	type rec struct {
		c    candidate
		prio uint16
	}
	var recs []rec
	for _, a := range answers { // direct first
		for _, s := range a.records {
			if s.Target == "." {
				continue // "." among other records: no target (RFC 2782)
			}
			recs = append(recs, rec{candidate{Target: Target{
				Host:      strings.TrimSuffix(s.Target, "."),
				Port:      int(s.Port),
				DirectTLS: a.direct,
			}}, s.Priority})
		}
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return cmp.Compare(a.prio, b.prio) })
	out := make([]candidate, len(recs))
	for i, r := range recs {
		out[i] = r.c
	}
	return out
}

// lookupSRV asks for the SRV records of _service._tcp.host.
func (r *Resolver) lookupSRV(ctx context.Context, service, host string) srvAnswer {
	a := srvAnswer{name: "_" + service + "._tcp", direct: service == serviceDirectTLS}
	lctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	_, records, err := r.resolver().LookupSRV(lctx, service, "tcp", host+".")
	// Go drops records whose target is not a valid name, and returns the
	// others with an error: those are still an answer.
	var usable []*net.SRV
	for _, s := range records {
		if s.Target != "." {
			usable = append(usable, s)
		}
	}
	switch {
	case len(usable) > 0:
		a.records = records
	case len(records) > 0:
		a.noSvc = true // "." alone (or only "." targets)
	case err == nil || isNotFound(err):
		a.notFound = true
	default:
		a.failed = fmt.Sprintf("looking up %s.%s: %s", a.name, host, dnsWhy(err, r.timeout()))
	}
	return a
}

// lookupAddrs asks for the A and AAAA records of host. It returns the
// addresses, or why there are none and whether that is because DNS says
// there are none.
func (r *Resolver) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, string, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, "", false
	}
	lctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	addrs, err := r.resolver().LookupNetIP(lctx, "ip", host+".")
	if len(addrs) > 0 {
		for i, a := range addrs {
			addrs[i] = a.Unmap()
		}
		return addrs, "", false
	}
	if err == nil || isNotFound(err) {
		return nil, "no A/AAAA record for " + host, true
	}
	return nil, "looking up " + host + ": " + dnsWhy(err, r.timeout()), false
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// dnsWhy says in words why a lookup failed.
func dnsWhy(err error, timeout time.Duration) string {
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.IsTimeout {
			return "no answer from DNS within " + timeout.String()
		}
		return de.Err
	}
	return err.Error()
}

// lookupProfile converts a domain to A-labels for a lookup (RFC 5891
// §5), refusing empty or overlong labels and names (RFC 1035 §2.3.4).
var lookupProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))

// aLabels is domain as looked up in DNS: lower case A-labels without the
// final dot (RFC 5890 §2.3.2.1, RFC 6120 §3.2.1), or an IP address (RFC
// 7622 §3.2, an IPv6 one in brackets).
func aLabels(domain string) (string, netip.Addr, error) {
	d := strings.TrimSuffix(domain, ".")
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		ip, err := netip.ParseAddr(d[1 : len(d)-1])
		if err != nil || !ip.Is6() {
			return "", netip.Addr{}, fmt.Errorf("not an IPv6 address in brackets")
		}
		return "", ip, nil
	}
	if ip, err := netip.ParseAddr(d); err == nil && ip.Is4() {
		return "", ip, nil
	}
	if d == "" {
		return "", netip.Addr{}, errors.New("empty")
	}
	a, err := lookupProfile.ToASCII(d)
	if err != nil {
		return "", netip.Addr{}, err
	}
	return strings.ToLower(a), netip.Addr{}, nil
}

// Dial connects to the first target that answers: every address (A and
// AAAA) of each target in turn, each with timeout (0 = 10s), as RFC 6120
// §3.2.1 steps 4 to 7 say, and no fallback after SRV targets (step 8). It returns the connection and the target it
// reached; the connection is plain TCP, and for a DirectTLS target the
// caller starts TLS on it at once (ALPN "xmpp-server", SNI the domain:
// XEP-0368 §3). Errors are *Error and say in words what was tried and
// why each failed.
func (r *Resolver) Dial(ctx context.Context, domain string, timeout time.Duration) (net.Conn, Target, error) {
	return r.DialWith(ctx, domain, timeout, nil)
}

// DialWith is Dial with a step that a connection must pass before its
// target counts as reached, such as the TLS handshake of a direct TLS
// target: when it fails, the connection is closed and the next address or
// target is tried, as when the connection is refused (a direct TLS SRV
// record that points at something else must not hide the STARTTLS
// ones). step returns the connection to use (the TLS one); nil step:
// none.
func (r *Resolver) DialWith(ctx context.Context, domain string, timeout time.Duration, step func(net.Conn, Target) (net.Conn, error)) (net.Conn, Target, error) {
	cands, err := r.targets(ctx, domain)
	if err != nil {
		return nil, Target{}, err
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	host, _, _ := aLabels(domain)
	if host == "" {
		host = cands[0].Host // an IP address
	}
	var whys []string
	for _, c := range cands {
		addrs := c.addrs
		if addrs == nil {
			var why string
			addrs, why, _ = r.lookupAddrs(ctx, c.Host)
			if len(addrs) == 0 {
				if ctx.Err() != nil {
					break
				}
				whys = append(whys, why+tlsNote(c.Target))
				continue
			}
		}
		for _, ip := range addrs {
			d := net.Dialer{Timeout: timeout}
			ap := netip.AddrPortFrom(ip, uint16(c.Port))
			conn, err := d.DialContext(ctx, "tcp", ap.String())
			if err == nil && step != nil {
				var next net.Conn
				if next, err = step(conn, c.Target); err != nil {
					conn.Close()
					if ctx.Err() != nil {
						break
					}
					whys = append(whys, fmt.Sprintf("%s (%s%s): %v", ap, c.Host, tlsNote(c.Target), err))
					continue
				}
				conn = next
			}
			if err == nil {
				return conn, c.Target, nil
			}
			if ctx.Err() != nil {
				break
			}
			whys = append(whys, dialWhy(err, ap, c.Target, timeout))
		}
		if ctx.Err() != nil {
			break
		}
	}
	detail := host + ": could not connect"
	if len(whys) > 0 {
		detail += ": " + strings.Join(whys, "; ")
	}
	return nil, Target{}, &Error{Domain: domain, Reason: ErrUnreachable, Detail: detail, Context: ctx.Err()}
}

// tlsNote marks what was tried for a direct TLS target.
func tlsNote(t Target) string {
	if t.DirectTLS {
		return " (direct TLS)"
	}
	return ""
}

// dialWhy says in words why connecting to ap, an address of t, failed.
func dialWhy(err error, ap netip.AddrPort, t Target, timeout time.Duration) string {
	where := fmt.Sprintf("%s (%s%s)", ap, t.Host, tlsNote(t))
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused by " + where
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable for " + where
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable: " + where
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer within " + timeout.String() + " from " + where
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return where + ": " + err.Error()
}
