package websocket

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// peer is what the server believes about the client of one HTTP request.
type peer struct {
	// addr is the client's address: the connection's peer, or the address
	// trusted proxies report in X-Forwarded-For.
	addr netip.Addr
	port uint16 // 0 when a proxy reported addr
	// secure reports that the client reached us over TLS: the connection
	// is TLS, or a trusted proxy says so in X-Forwarded-Proto.
	secure bool
	// host is the host (and port) the client asked for: the Host header,
	// or X-Forwarded-Host from a trusted proxy.
	host string
}

// peerOf applies the trusted proxies' headers to r. A header counts only
// when the connection comes from a trusted proxy; X-Forwarded-For is read
// from the right, skipping trusted proxies, so that a client cannot
// choose its address by sending the header itself.
func peerOf(r *http.Request, trusted []netip.Prefix) peer {
	p := peer{secure: r.TLS != nil, host: r.Host}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return p
	}
	p.addr, p.port = ap.Addr().Unmap(), ap.Port()
	if !isTrusted(p.addr, trusted) {
		return p
	}
	for _, v := range slices.Backward(headerList(r.Header, "X-Forwarded-For")) {
		a, err := netip.ParseAddr(v)
		if err != nil {
			break
		}
		p.addr, p.port = a.Unmap(), 0
		if !isTrusted(p.addr, trusted) {
			break
		}
	}
	// The rightmost value is the one the proxy we talk to wrote.
	if protos := headerList(r.Header, "X-Forwarded-Proto"); len(protos) > 0 {
		p.secure = p.secure || strings.EqualFold(protos[len(protos)-1], "https")
	}
	if hosts := headerList(r.Header, "X-Forwarded-Host"); len(hosts) > 0 {
		p.host = hosts[len(hosts)-1]
	}
	return p
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// headerList splits every value of a comma-separated header, in order.
func headerList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// netAddr is the client's address for c2s.
func (p peer) netAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.addr, p.port))
}
