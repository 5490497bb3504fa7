// Package admission counts, per client address, the connections that have
// not authenticated yet, so that one address cannot hold an unbounded
// number of them ([limits] max_unauthenticated_per_address; RFC 6120
// §13.9). Client and server streams use it alike.
package admission

import (
	"net"
	"net/netip"
	"sync"
)

// Key is a client's address as the per-address limits count it: the
// IP address, an IPv4-mapped one as IPv4, and an IPv6 one by its network of
// v6Prefix bits, since one host or home usually holds a whole /64
// (RFC 6177 §3). An address that is not IP (a test's pipe) is its string.
func Key(a net.Addr, v6Prefix int) string {
	var ip netip.Addr
	switch t := a.(type) {
	case *net.TCPAddr:
		ip = t.AddrPort().Addr()
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		} else if p, err := netip.ParseAddr(a.String()); err == nil {
			ip = p
		} else {
			return a.String()
		}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() && v6Prefix < 128 {
		if p, err := ip.Prefix(v6Prefix); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// Verdict is what a new stream's address is allowed.
type Verdict int

const (
	Admitted Verdict = iota // under the cap
	Refused                 // at the cap: answered <policy-violation/>, counted while that is sent
	Dropped                 // far beyond it: closed at once, nothing spent on it
)

// Counter counts, per client key, the streams that have not
// authenticated yet, those being refused included ([limits]
// max_unauthenticated_per_address). mu guards n. The zero value is ready.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Enter admits a new stream from key under max: admitted below it,
// refused from max to twice max (both counted: Leave must follow),
// dropped beyond (not counted), so that neither the streams nor their
// refusals from one address grow without bound.
func (u *Counter) Enter(key string, max int) Verdict {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := u.n[key]
	if n >= 2*max {
		return Dropped
	}
	if u.n == nil {
		u.n = make(map[string]int)
	}
	u.n[key] = n + 1
	if n >= max {
		return Refused
	}
	return Admitted
}

// Leave gives back the place of a stream that entered.
func (u *Counter) Leave(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n := u.n[key]; n > 1 {
		u.n[key] = n - 1
	} else {
		delete(u.n, key)
	}
}
