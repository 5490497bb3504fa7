package xmlcmp

import "testing"

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{`<a x='1' y='2'/>`, `<a y="2" x="1"></a>`, true},
		{`<a x='*'/>`, `<a x='anything'/>`, true},
		{`<a x='1'/>`, `<a x='2'/>`, false},
		{`<a/>`, `<a x='2'/>`, false},
		{`<a x='1'/>`, `<a/>`, false},
		{`<a><b xmlns='urn:x'/></a>`, `<a><p:b xmlns:p='urn:x'/></a>`, true},
		{`<a><b xmlns='urn:x'/></a>`, `<a><b xmlns='urn:y'/></a>`, false},
		{`<a>  <b/>  </a>`, `<a><b/></a>`, true},
		{`<a><t>*</t></a>`, `<a><t>2026-01-01T00:00:00Z</t></a>`, true},
		{`<a><t>x</t></a>`, `<a><t>y</t></a>`, false},
		{`<a><ANY/></a>`, `<a><b/><c/></a>`, true},
		{`<a><b/></a>`, `<a><b/><c/></a>`, false},
		{`<message xmlns='jabber:client'/>`, `<message/>`, true},
		{`<stream:features/>`, `<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>`, true},
		{`<stream:features/>`, `<s:features xmlns:s='http://etherx.jabber.org/streams'/>`, true},
		{`<stream:features/>`, `<features/>`, false},
		{`<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`, `<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>why</text></error>`, true},
		{`<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>why</text></error>`, `<error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`, false},
		{`<a/>`, `<a><text/></a>`, false},
	} {
		err := Equal([]byte(tc.want), []byte(tc.got), "jabber:client")
		if (err == nil) != tc.ok {
			t.Errorf("Equal(%s, %s) = %v, want ok=%v", tc.want, tc.got, err, tc.ok)
		}
	}
}
