package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// query asks s one question over network ("udp" or "tcp").
func query(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	s := start(t)
	s.SetA("Host.Example.Test.", netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1"))
	s.SetSRV("_xmpp-server._tcp.example.test",
		SRV{Target: "host.example.test", Port: 5269, Priority: 10, Weight: 5})
	s.SetSRV("_xmpps-server._tcp.example.test", SRV{Target: "."})

	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string // each answer's data, in order
	}{
		{"host.example.test", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.2"}},
		{"HOST.example.TEST", dns.TypeAAAA, dns.RcodeSuccess, []string{"::1"}},
		{"host.example.test", dns.TypeSRV, dns.RcodeSuccess, nil},
		{"host.example.test", dns.TypeMX, dns.RcodeSuccess, nil},
		{"_xmpp-server._tcp.example.test", dns.TypeSRV, dns.RcodeSuccess, []string{"10 5 5269 host.example.test."}},
		{"_xmpp-server._tcp.example.test", dns.TypeA, dns.RcodeSuccess, nil},
		{"_xmpps-server._tcp.example.test", dns.TypeSRV, dns.RcodeSuccess, []string{"0 0 0 ."}},
		{"example.test", dns.TypeA, dns.RcodeSuccess, nil}, // exists: names below it have records
		{"missing.test", dns.TypeSRV, dns.RcodeNameError, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			r := query(t, s, network, tt.name, tt.qtype)
			var got []string
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				case *dns.SRV:
					got = append(got, fmt.Sprintf("%d %d %d %s", rr.Priority, rr.Weight, rr.Port, rr.Target))
				}
			}
			if r.Rcode != tt.rcode || !r.Authoritative || !slices.Equal(got, tt.answer) {
				t.Errorf("%s %s %s: rcode %s aa %v answer %q, want %s aa true answer %q",
					network, tt.name, dns.TypeToString[tt.qtype], dns.RcodeToString[r.Rcode],
					r.Authoritative, got, dns.RcodeToString[tt.rcode], tt.answer)
			}
		}
	}
}

// TestGoResolver checks that Go's own resolver reads the answers,
// including a large one that is truncated over UDP and asked again over
// TCP, while the records change underneath.
func TestGoResolver(t *testing.T) {
	s := start(t)
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}))
	}
	s.SetA("big.example.test", many...)
	s.SetSRV("_xmpp-server._tcp.example.test", SRV{Target: "big.example.test.", Port: 5269})

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
	ctx := context.Background()

	done := make(chan struct{})
	go func() { // a writer racing the lookups, for the race detector
		defer close(done)
		for i := range 50 {
			s.SetA(fmt.Sprintf("other%d.example.test", i), netip.MustParseAddr("127.0.0.3"))
		}
	}()
	addrs, err := r.LookupNetIP(ctx, "ip4", "big.example.test.")
	if err != nil || len(addrs) != len(many) {
		t.Errorf("LookupNetIP: %d addresses, %v; want %d", len(addrs), err, len(many))
	}
	_, srvs, err := r.LookupSRV(ctx, "xmpp-server", "tcp", "example.test.")
	if err != nil || len(srvs) != 1 || srvs[0].Target != "big.example.test." || srvs[0].Port != 5269 {
		t.Errorf("LookupSRV: %v, %v", srvs, err)
	}
	_, err = r.LookupNetIP(ctx, "ip", "nowhere.example.test.")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupNetIP of an unknown name: %v, want not found", err)
	}
	<-done
}

func TestClose(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close() // a second Close is harmless
	// Both ports are free again.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP %s after Close: %v", addr, err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP %s after Close: %v", addr, err)
	}
	ln.Close()
}

// TestEmptyNonTerminal checks that a name with records only below it
// exists (NODATA), as RFC 8020 §2 requires: example.test when only
// _xmpp-server._tcp.example.test was set.
func TestEmptyNonTerminal(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetSRV("_xmpp-server._tcp.example.test", SRV{Target: "xmpp.example.test", Port: 5269})
	c := new(dns.Client)
	for name, want := range map[string]int{"example.test.": dns.RcodeSuccess, "_tcp.example.test.": dns.RcodeSuccess, "other.test.": dns.RcodeNameError} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != want || len(r.Answer) != 0 {
			t.Errorf("%s: rcode %s with %d answers, want %s and none", name, dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[want])
		}
	}
}

// TestRestart checks that the address is free again as soon as Close
// returns: tests start a server on the same fixed address one after
// another (port 53 for peers' resolv.conf).
func TestRestart(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	for range 20 {
		s.Close()
		if s, err = Start(addr); err != nil {
			t.Fatalf("start again on %s: %v", addr, err)
		}
	}
	s.Close()
}
