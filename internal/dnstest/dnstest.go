// Package dnstest is a small authoritative DNS server for tests: it
// answers A, AAAA and SRV queries (RFC 1035, RFC 3596, RFC 2782) from
// records a test sets, over UDP and TCP on one loopback address, so that
// code resolving XMPP servers (RFC 6120 §3.2, XEP-0368) is exercised end
// to end through a real resolver and real DNS messages.
//
// A name that was never set gets NXDOMAIN; a name that was set, but has
// no record of the type asked for, gets NOERROR with no answer (NODATA).
// Every answer is authoritative, so that stub resolvers such as Go's do
// not take an empty one for a lame referral. An answer too large for the
// client's UDP buffer is truncated (TC), and the client retries over TCP.
package dnstest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// ttl is the time to live of every record served, in seconds.
const ttl = 5

// SRV is one SRV record (RFC 2782). Target is a host name, with or
// without the final dot, or "." for "no such service here".
type SRV struct {
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// records are the records of one name.
type records struct {
	addrs []netip.Addr
	srv   []SRV
}

// Server answers A, AAAA and SRV queries from its records over UDP and
// TCP on one loopback address.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server
	// pc and ln are closed by Close itself, so that the address is free
	// when it returns (Shutdown leaves that to goroutines that may not
	// have run yet).
	pc      net.PacketConn
	ln      net.Listener
	running sync.WaitGroup // the serving goroutines

	mu    sync.RWMutex        // guards names
	names map[string]*records // by canonical name: lower case, final dot

	closeOnce sync.Once
	closeErr  error
}

// Start listens on addr ("127.0.0.1:0" picks a port; "127.0.0.53:53"
// works as root) and serves until Close.
func Start(addr string) (*Server, error) {
	pc, ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{addr: pc.LocalAddr().String(), names: map[string]*records{}, pc: pc, ln: ln}
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		failed := make(chan error, 1)
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			failed <- srv.ActivateAndServe()
		}()
		// Wait until serving: a Shutdown before that would fail, and
		// Close would leave the server running.
		select {
		case <-started:
		case err := <-failed:
			s.Close()
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("dnstest: serving on %s: %w", s.addr, err)
		}
	}
	return s, nil
}

// listen binds UDP on addr and TCP on the same address and port. With
// port 0, the port UDP got may be taken for TCP: then it tries again.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnstest: %w", err)
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnstest: %w", err)
		}
		_, got, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, got))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if i+1 >= tries {
			return nil, nil, fmt.Errorf("dnstest: %w", err)
		}
	}
}

// Addr is the server's address, host:port, the same for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops serving on both transports. It may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
		s.pc.Close()
		s.ln.Close()
		s.running.Wait()
	})
	return s.closeErr
}

// canonical is name in lower case with the final dot.
func canonical(name string) string { return dns.CanonicalName(name) }

// SetA sets the A and AAAA records of name: its IPv4 addresses (an
// IPv4-mapped IPv6 address counts as IPv4) answer A queries, the others
// AAAA queries. With no address, name exists with no address record.
// Names are case-insensitive, with or without the final dot. Safe for
// concurrent use while serving.
func (s *Server) SetA(name string, addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.entry(name)
	r.addrs = append([]netip.Addr(nil), addrs...)
}

// SetSRV sets the SRV records of name, such as
// "_xmpp-server._tcp.example.test". With no record, name exists with no
// SRV record. Names are case-insensitive, with or without the final dot.
// Safe for concurrent use while serving.
func (s *Server) SetSRV(name string, records ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.entry(name)
	r.srv = append([]SRV(nil), records...)
}

// entry is name's records, created empty if needed; s.mu must be held.
func (s *Server) entry(name string) *records {
	key := canonical(name)
	r := s.names[key]
	if r == nil {
		r = &records{}
		s.names[key] = r
	}
	return r
}

// hasBelow reports whether a name below name has records: name then
// exists, with no records of its own (an empty non-terminal, RFC 8020
// §2: NXDOMAIN would deny everything below it). s.mu must be held.
func (s *Server) hasBelow(name string) bool {
	for n := range s.names {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// serve answers one query.
func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.Compress = true
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.Rcode = dns.RcodeNotImplemented
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
	s.mu.RLock()
	r, ok := s.names[name]
	if !ok && !s.hasBelow(name) {
		m.Rcode = dns.RcodeNameError
	} else if ok && q.Qclass == dns.ClassINET || q.Qclass == dns.ClassANY {
		for _, a := range r.addrs {
			a = a.Unmap()
			switch {
			case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
				h := hdr
				h.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: h, A: a.AsSlice()})
			case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
				h := hdr
				h.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: a.AsSlice()})
			}
		}
		if q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY {
			for _, rec := range r.srv {
				h := hdr
				h.Rrtype = dns.TypeSRV
				target := rec.Target
				if strings.TrimSuffix(target, ".") == "" {
					target = "."
				}
				m.Answer = append(m.Answer, &dns.SRV{
					Hdr: h, Priority: rec.Priority, Weight: rec.Weight,
					Port: rec.Port, Target: dns.Fqdn(target),
				})
			}
		}
	}
	s.mu.RUnlock()
	if w.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
			m.SetEdns0(uint16(size), false)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
