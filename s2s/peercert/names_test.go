package peercert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	ca := newCA(t, "Test CA", nil)
	tests := []struct {
		name string
		mod  func(*x509.Certificate)
		want []string
	}{
		{"dns", withDNS("a.example", "*.b.example"), []string{"a.example", "*.b.example"}},
		{"every type, in order", withSAN(
			xmppAddr("x.example"),
			srvName("_xmpp-server.s.example"),
			dnsName("d.example"),
			srvName("_xmpp-client.c.example"),
			xmppAddr("admin@x.example"),
			xmppAddr("x.example/resource"),
		), []string{"d.example", "_xmpp-server.s.example", "x.example"}},
		{"srv service case kept", withSAN(srvName("_XMPP-Server.s.example")), []string{"_XMPP-Server.s.example"}},
		{"srv without domain", withSAN(srvName("_xmpp-server")), nil},
		{"xmppaddr U-label", withSAN(xmppAddr("bücher.example")), []string{"bücher.example"}},
		{"duplicates once", withSAN(dnsName("a.example"), xmppAddr("a.example"), dnsName("a.example")), []string{"a.example"}},
		{"control characters left out", withSAN(xmppAddr("a.example\nforged log line"), dnsName("b.example")), []string{"b.example"}},
		{"cn without san", withCN("c.example"), []string{"c.example"}},
		{"cn with email san", all(withCN("c.example"), withSAN(emailName("a@c.example"))), []string{"c.example"}},
		{"cn with dns", all(withCN("c.example"), withDNS("d.example")), []string{"d.example"}},
		{"cn with uri", all(withCN("c.example"), withSAN(uriName("xmpp:c.example"))), nil},
		{"cn with srv-id of another service", all(withCN("c.example"), withSAN(srvName("_xmpp-client.c.example"))), nil},
		{"cn with xmppaddr JID", all(withCN("c.example"), withSAN(xmppAddr("admin@c.example"))), nil},
		{"cn with malformed xmppaddr", all(withCN("c.example"), withSAN(otherName(oidXmppAddr, asn1.TagIA5String, "c.example"))), nil},
		{"two cns", func(c *x509.Certificate) {
			c.Subject.ExtraNames = []pkix.AttributeTypeAndValue{
				{Type: oidCommonName, Value: "a.example"},
				{Type: oidCommonName, Value: "b.example"},
			}
		}, nil},
		{"unknown othername ignored", all(withCN("c.example"), withSAN(otherName(asn1.ObjectIdentifier{1, 2, 3}, asn1.TagUTF8String, "x"))), []string{"c.example"}},
		{"nothing", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.issue(t, tt.mod)
			if got := Names(leaf); !slices.Equal(got, tt.want) {
				t.Errorf("Names = %q, want %q", got, tt.want)
			}
		})
	}
	if got := Names(nil); got != nil {
		t.Errorf("Names(nil) = %q", got)
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		presented, domain string
		want              bool
	}{
		{"example.org", "example.org", true},
		{"EXAMPLE.org.", "example.ORG", true},
		{"example.org", "www.example.org", false},
		{"www.example.org", "example.org", false},
		{"*.example.org", "a.example.org", true},
		{"*.example.org", "xn--bcher-kva.example.org", true},
		{"*.example.org", "a.b.example.org", false},
		{"*.example.org", "example.org", false},
		{"*.example.org", ".example.org", false},
		{"*", "example", false},
		{"*.", "example", false},
		{"*.*.example.org", "a.b.example.org", false},
		{"a.*.example.org", "a.b.example.org", false},
		{"f*.example.org", "foo.example.org", false},
		{"*o.example.org", "foo.example.org", false},
		{"xn--bcher-kva.example", "bücher.example", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		{"*.bücher.example", "a.xn--bcher-kva.example", true},
		{"", "example.org", false},
	}
	for _, tt := range tests {
		ref, ok := normReference(tt.domain)
		if !ok {
			if tt.want {
				t.Errorf("normReference(%q) refused", tt.domain)
			}
			continue
		}
		if got := matchPattern(tt.presented, ref); got != tt.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tt.presented, tt.domain, got, tt.want)
		}
	}
}

// FuzzNames feeds arbitrary bytes as the subjectAltName extension: the
// otherName parsing must never panic, and what Names returns is printable.
func FuzzNames(f *testing.F) {
	f.Add(sanValue(dnsName("a.example"), xmppAddr("x.example"), srvName("_xmpp-server.s.example")))
	f.Add(sanValue(xmppAddr("bücher.example"), srvName("_xmpp-client.c.example"), uriName("xmpp:u.example")))
	f.Add(sanValue(otherName(oidXmppAddr, asn1.TagIA5String, "x"), otherName(oidDNSSRV, asn1.TagUTF8String, "_xmpp-server.é")))
	f.Add(sanValue(otherName(asn1.ObjectIdentifier{1, 2, 3}, asn1.TagUTF8String, "x")))
	f.Add(sanValue())
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte{0xa0, 0x03, 0x06, 0x01, 0x2b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, san []byte) {
		leaf := &x509.Certificate{
			Subject:    pkix.Name{CommonName: "cn.example"},
			Extensions: []pkix.Extension{{Id: oidSubjectAltName, Value: san}},
		}
		names := Names(leaf)
		for _, n := range names {
			if n == "" || !printable(n) {
				t.Errorf("Names returned %q", n)
			}
		}
		ids := identities(leaf)
		if _, _, anyXmpp, anySRV := otherNames(leaf); (anyXmpp || anySRV) && ids.cn != "" {
			t.Errorf("CN-ID %q despite an otherName identifier", ids.cn)
		}
		ids.match("example.org")
	})
}
