package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/dnstest"
)

// env is a DNS server on loopback and a Resolver asking it.
type env struct {
	dns *dnstest.Server
	r   *Resolver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{dns: s, r: &Resolver{Server: s.Addr(), Timeout: 5 * time.Second}}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// listen accepts connections on addr until the test ends, and returns
// its address and the connections' local addresses as they come.
func listen(t *testing.T, addr string) (netip.AddrPort, <-chan net.Addr) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan net.Addr, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			got <- c.LocalAddr()
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), got
}

// refused is an address and port on loopback where nothing listens.
func refused(t *testing.T, host string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

func targets(t *testing.T, e *env, domain string) []Target {
	t.Helper()
	got, err := e.r.Targets(context.Background(), domain)
	if err != nil {
		t.Fatalf("Targets(%q): %v", domain, err)
	}
	return got
}

func TestPriorityOrder(t *testing.T) {
	e := newEnv(t)
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: "c.example.test.", Port: 5271, Priority: 30},
		dnstest.SRV{Target: "a.example.test.", Port: 5269, Priority: 10},
		dnstest.SRV{Target: "b.example.test.", Port: 5270, Priority: 20},
	)
	want := []Target{
		{Host: "a.example.test", Port: 5269},
		{Host: "b.example.test", Port: 5270},
		{Host: "c.example.test", Port: 5271},
	}
	for range 5 {
		if got := targets(t, e, "example.test"); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// TestWeightOrder checks the weighted random order within a priority
// (RFC 2782): a record of weight 90 comes before one of weight 10 about
// nine times in ten, and one of weight 0 comes after the weighted ones.
func TestWeightOrder(t *testing.T) {
	e := newEnv(t)
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: "zero.example.test", Port: 1, Priority: 5, Weight: 0},
		dnstest.SRV{Target: "light.example.test", Port: 2, Priority: 5, Weight: 10},
		dnstest.SRV{Target: "heavy.example.test", Port: 3, Priority: 5, Weight: 90},
		dnstest.SRV{Target: "later.example.test", Port: 4, Priority: 6, Weight: 1000},
	)
	const n = 200
	heavyFirst := 0
	for range n {
		got := targets(t, e, "example.test")
		if len(got) != 4 || got[2].Host != "zero.example.test" || got[3].Host != "later.example.test" {
			t.Fatalf("got %v: want the weight 0 record third and priority 6 last", got)
		}
		if got[0].Host == "heavy.example.test" {
			heavyFirst++
		}
	}
	// Expected 180 of 200 (standard deviation about 4): 150 and 199 are
	// seven and four deviations away, and all 200 has chance 0.9^200.
	if heavyFirst < 150 || heavyFirst == n {
		t.Errorf("weight 90 first in %d of %d lookups, want about %d", heavyFirst, n, n*9/10)
	}
}

func TestNoService(t *testing.T) {
	e := newEnv(t)
	// The domain has an address too: "." forbids the fallback to it.
	e.dns.SetA("example.test", ip("127.0.0.2"))
	e.dns.SetSRV("_xmpp-server._tcp.example.test", dnstest.SRV{Target: "."})
	// No direct TLS, and no STARTTLS record either: no fallback (XEP-0368 §5).
	e.dns.SetA("tls.test", ip("127.0.0.2"))
	e.dns.SetSRV("_xmpps-server._tcp.tls.test", dnstest.SRV{Target: "."})

	for _, tt := range []struct{ domain, msg string }{
		{"example.test", "example.test: _xmpp-server._tcp says no service (target '.')"},
		{"tls.test", "tls.test: _xmpps-server._tcp says no direct TLS (target '.') and _xmpp-server._tcp has no record"},
	} {
		_, err := e.r.Targets(context.Background(), tt.domain)
		if !errors.Is(err, ErrNoService) || err.Error() != tt.msg {
			t.Errorf("Targets(%q): %v, want ErrNoService %q", tt.domain, err, tt.msg)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Targets(%q): %v matches context.DeadlineExceeded", tt.domain, err)
		}
		conn, _, err := e.r.Dial(context.Background(), tt.domain, time.Second)
		if conn != nil || !errors.Is(err, ErrNoService) {
			t.Errorf("Dial(%q): %v, want ErrNoService", tt.domain, err)
		}
	}
}

func TestDotAmongRecords(t *testing.T) {
	e := newEnv(t)
	// "." is "no service" only alone (RFC 2782); beside others it is skipped.
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: ".", Priority: 1},
		dnstest.SRV{Target: "xmpp.example.test", Port: 5269, Priority: 2})
	// "." under _xmpps-server only removes direct TLS.
	e.dns.SetSRV("_xmpps-server._tcp.example.test", dnstest.SRV{Target: "."})
	want := []Target{{Host: "xmpp.example.test", Port: 5269}}
	if got := targets(t, e, "example.test"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFallback(t *testing.T) {
	e := newEnv(t)
	e.dns.SetA("example.test", ip("127.0.0.2"), ip("::1"))
	// A name with SRV records of no kind asked for (NODATA) falls back too.
	e.dns.SetA("nodata.test", ip("127.0.0.2"))
	e.dns.SetSRV("_xmpp-server._tcp.nodata.test")
	e.dns.SetSRV("_xmpps-server._tcp.nodata.test")

	for _, domain := range []string{"example.test", "Example.Test.", "nodata.test"} {
		want := []Target{{Host: strings.ToLower(strings.TrimSuffix(domain, ".")), Port: 5269}}
		if got := targets(t, e, domain); !reflect.DeepEqual(got, want) {
			t.Errorf("Targets(%q) = %v, want %v", domain, got, want)
		}
	}
}

// TestFallbackDial connects by the fallback, which can only be on 5269:
// on a loopback address of its own, so as not to meet other tests.
func TestFallbackDial(t *testing.T) {
	e := newEnv(t)
	addr, accepted := listen(t, "127.0.52.69:5269")
	e.dns.SetA("example.test", addr.Addr())
	conn, target, err := e.r.Dial(context.Background(), "example.test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if want := (Target{Host: "example.test", Port: 5269}); target != want {
		t.Errorf("target %v, want %v", target, want)
	}
	if got := (<-accepted).String(); got != addr.String() {
		t.Errorf("reached %s, want %s", got, addr)
	}
}

func TestDirectTLSFirst(t *testing.T) {
	e := newEnv(t)
	// Same priority: direct TLS first. Lower priority number wins across
	// both sets (XEP-0368 §3: priorities mixed).
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: "starttls.example.test", Port: 5269, Priority: 10},
		dnstest.SRV{Target: "first.example.test", Port: 5269, Priority: 5},
		dnstest.SRV{Target: "last.example.test", Port: 5269, Priority: 20})
	e.dns.SetSRV("_xmpps-server._tcp.example.test",
		dnstest.SRV{Target: "direct.example.test", Port: 5270, Priority: 10},
		dnstest.SRV{Target: "direct-later.example.test", Port: 443, Priority: 15})
	want := []Target{
		{Host: "first.example.test", Port: 5269},
		{Host: "direct.example.test", Port: 5270, DirectTLS: true},
		{Host: "starttls.example.test", Port: 5269},
		{Host: "direct-later.example.test", Port: 443, DirectTLS: true},
		{Host: "last.example.test", Port: 5269},
	}
	if got := targets(t, e, "example.test"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}

	// Direct TLS alone, with "." for STARTTLS: the direct TLS targets.
	e.dns.SetSRV("_xmpp-server._tcp.only.test", dnstest.SRV{Target: "."})
	e.dns.SetSRV("_xmpps-server._tcp.only.test", dnstest.SRV{Target: "xmpp.only.test", Port: 5223})
	want = []Target{{Host: "xmpp.only.test", Port: 5223, DirectTLS: true}}
	if got := targets(t, e, "only.test"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t)
	for _, domain := range []string{"nowhere.test", "Nowhere.Test."} {
		_, err := e.r.Targets(context.Background(), domain)
		const msg = "no SRV and no A/AAAA record for nowhere.test"
		if !errors.Is(err, ErrNotFound) || err.Error() != msg {
			t.Errorf("Targets(%q): %v, want ErrNotFound %q", domain, err, msg)
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrLookup) {
			t.Errorf("Targets(%q): %v matches a timeout or lookup failure", domain, err)
		}
		var re *Error
		if !errors.As(err, &re) || re.Domain != domain {
			t.Errorf("Targets(%q): %#v, want an *Error of that domain", domain, err)
		}
	}
	for _, domain := range []string{"", ".", "a..test", strings.Repeat("a", 64) + ".test", "under_score.test"} {
		_, err := e.r.Targets(context.Background(), domain)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "is not a domain name") {
			t.Errorf("Targets(%q): %v, want ErrNotFound: not a domain name", domain, err)
		}
	}
}

func TestDialSkipsRefused(t *testing.T) {
	e := newEnv(t)
	gone := refused(t, "127.0.0.2")
	up, accepted := listen(t, "127.0.0.1:0")
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: "down.example.test", Port: gone.Port(), Priority: 1},
		dnstest.SRV{Target: "noaddr.example.test", Port: 5269, Priority: 2},
		dnstest.SRV{Target: "up.example.test", Port: up.Port(), Priority: 3})
	e.dns.SetA("down.example.test", gone.Addr())
	e.dns.SetA("up.example.test", up.Addr())

	conn, target, err := e.r.Dial(context.Background(), "example.test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if want := (Target{Host: "up.example.test", Port: int(up.Port())}); target != want {
		t.Errorf("target %v, want %v", target, want)
	}
	if got := (<-accepted).String(); got != up.String() {
		t.Errorf("reached %s, want %s", got, up)
	}

	// Nothing up: every failure in words.
	e.dns.SetA("up.example.test", gone.Addr())
	e.dns.SetSRV("_xmpps-server._tcp.example.test",
		dnstest.SRV{Target: "tls.example.test", Port: 5223, Priority: 4})
	_, _, err = e.r.Dial(context.Background(), "example.test", time.Second)
	want := fmt.Sprintf("example.test: could not connect: connection refused by %s (down.example.test); "+
		"no A/AAAA record for noaddr.example.test; connection refused by %s (up.example.test); "+
		"no A/AAAA record for tls.example.test (direct TLS)", gone, netip.AddrPortFrom(gone.Addr(), up.Port()))
	if !errors.Is(err, ErrUnreachable) || err.Error() != want {
		t.Errorf("Dial: %v\nwant ErrUnreachable %q", err, want)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial: %v matches context.DeadlineExceeded", err)
	}
}

func TestDialIPv6(t *testing.T) {
	e := newEnv(t)
	up, accepted := listen(t, "[::1]:0")
	gone := refused(t, "127.0.0.2")
	// One target, two addresses: the IPv4 one refuses, the IPv6 one answers.
	e.dns.SetSRV("_xmpp-server._tcp.example.test",
		dnstest.SRV{Target: "v6.example.test", Port: up.Port()})
	e.dns.SetA("v6.example.test", ip("::1"))
	e.dns.SetSRV("_xmpp-server._tcp.mixed.test",
		dnstest.SRV{Target: "both.mixed.test", Port: up.Port()})
	e.dns.SetA("both.mixed.test", gone.Addr(), ip("::1"))

	for _, domain := range []string{"example.test", "mixed.test"} {
		conn, target, err := e.r.Dial(context.Background(), domain, time.Second)
		if err != nil {
			t.Fatalf("Dial(%q): %v", domain, err)
		}
		conn.Close()
		if target.Port != int(up.Port()) {
			t.Errorf("Dial(%q): target %v", domain, target)
		}
		if got := (<-accepted).String(); got != up.String() {
			t.Errorf("Dial(%q) reached %s, want %s", domain, got, up)
		}
	}
}

func TestInternationalised(t *testing.T) {
	e := newEnv(t)
	e.dns.SetSRV("_xmpp-server._tcp.xn--bcher-kva.test",
		dnstest.SRV{Target: "xmpp.xn--bcher-kva.test", Port: 5269})
	e.dns.SetA("xn--caf-dma.test", ip("127.0.0.2"))
	for _, tt := range []struct {
		domain string
		want   []Target
	}{
		{"bücher.test", []Target{{Host: "xmpp.xn--bcher-kva.test", Port: 5269}}},
		{"café.test", []Target{{Host: "xn--caf-dma.test", Port: 5269}}},
	} {
		if got := targets(t, e, tt.domain); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Targets(%q) = %v, want %v", tt.domain, got, tt.want)
		}
	}
}

func TestIPAddressDomain(t *testing.T) {
	e := newEnv(t)
	for domain, want := range map[string]Target{
		"[::1]":     {Host: "::1", Port: 5269},
		"127.0.0.2": {Host: "127.0.0.2", Port: 5269},
	} {
		if got := targets(t, e, domain); !reflect.DeepEqual(got, []Target{want}) {
			t.Errorf("Targets(%q) = %v, want %v", domain, got, want)
		}
	}
}

// silentDNS is a UDP and TCP address that takes queries and never
// answers them.
func silentDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// TestTimeouts tells the caller's deadline apart from a lookup that
// found no answer within its own time.
func TestTimeouts(t *testing.T) {
	server := silentDNS(t)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := &Resolver{Server: server}
	_, err := r.Targets(ctx, "example.test")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLookup) {
		t.Errorf("Targets past the caller's deadline: %v, want DeadlineExceeded and ErrLookup", err)
	}
	_, _, err = r.Dial(ctx, "example.test", time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial past the caller's deadline: %v, want DeadlineExceeded", err)
	}

	r = &Resolver{Server: server, Timeout: 100 * time.Millisecond}
	_, err = r.Targets(context.Background(), "example.test")
	if !errors.Is(err, ErrLookup) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Targets with a silent DNS server: %v, want ErrLookup without DeadlineExceeded", err)
	}
	if err != nil && !strings.Contains(err.Error(), "no answer from DNS within 100ms") {
		t.Errorf("Targets with a silent DNS server: %q does not say DNS did not answer", err)
	}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	e := newEnv(t)
	e.dns.SetA("example.test", ip("127.0.0.2"))
	_, _, err = e.r.Dial(canceled, "example.test", time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a canceled context: %v, want context.Canceled", err)
	}
}
