package c2s

import (
	"net"
	"testing"
)

func TestClientKey(t *testing.T) {
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
		if got := clientKey(tc.addr, tc.prefix); got != tc.want {
			t.Errorf("clientKey(%v, %d) = %q, want %q", tc.addr, tc.prefix, got, tc.want)
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
	var u unauthenticated
	want := []admission{admitted, admitted, refused, refused, dropped, dropped}
	for i, w := range want {
		if got := u.enter("a", 2); got != w {
			t.Fatalf("stream %d: %v, want %v", i, got, w)
		}
	}
	if u.enter("b", 2) != admitted {
		t.Fatal("another address was not admitted")
	}
	u.leave("a")
	if u.enter("a", 2) != refused {
		t.Fatal("a place given back was not reused")
	}
	for range 4 {
		u.leave("a")
	}
	u.leave("b")
	if len(u.n) != 0 {
		t.Fatalf("counts left: %v", u.n)
	}
}
