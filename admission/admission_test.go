package admission

import (
	"net"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		addr   net.Addr
		prefix int
		want   string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5222}, 64, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 5222}, 64, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 5222}, 64, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 5222}, 64, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 5222}, 48, "2001:db8:1::/48"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::6"), Port: 5222}, 128, "2001:db8::6"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5222, Zone: "eth0"}, 64, "fe80::/64"},
		{fakeAddr("[2001:db8:1:2::9]:443"), 64, "2001:db8:1:2::/64"}, // a proxy's forwarded address
		{fakeAddr("198.51.100.1"), 64, "198.51.100.1"},
		{fakeAddr("pipe"), 64, "pipe"},
	} {
		if got := Key(tc.addr, tc.prefix); got != tc.want {
			t.Errorf("Key(%v, %d) = %q, want %q", tc.addr, tc.prefix, got, tc.want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// TestUnauthenticated: streams are admitted under the cap, refused (and
// counted while refused) up to twice it, dropped beyond; leaving gives a
// place back, and nothing is left once all have left.
func TestUnauthenticated(t *testing.T) {
	var u Counter
	want := []Verdict{Admitted, Admitted, Refused, Refused, Dropped, Dropped}
	for i, w := range want {
		if got := u.Enter("a", 2); got != w {
			t.Fatalf("stream %d: %v, want %v", i, got, w)
		}
	}
	if u.Enter("b", 2) != Admitted {
		t.Fatal("another address was not admitted")
	}
	u.Leave("a")
	if u.Enter("a", 2) != Refused {
		t.Fatal("a place given back was not reused")
	}
	for range 4 {
		u.Leave("a")
	}
	u.Leave("b")
	if len(u.n) != 0 {
		t.Fatalf("counts left: %v", u.n)
	}
}
