package stanza

import "testing"

// Payload finds the same first child, with the same resolved name, as
// encoding/xml does (decodePayload, which Payload falls back to).
func TestPayloadMatchesDecoder(t *testing.T) {
	for _, raw := range []string{
		`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<iq xmlns='jabber:client' type='set' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`,
		`<iq xmlns='jabber:client' type='get' id='1'><query/></iq>`,
		`<iq type='get' id='1'>text <p:q xmlns:p='urn:x'><a/></p:q><other xmlns='urn:y'/></iq>`,
		`<iq xmlns:p='urn:z' type='get' id='1'><p:ping/></iq>`,
		`<iq type='get' id='1'><![CDATA[<fake/>]]><real xmlns='urn:r'/></iq>`,
		`<iq type='result' id='1'/>`,
		`<iq type='result' id='1'>   </iq>`,
		`<iq type='get' id='1'><q xmlns='urn:a&amp;b'/></iq>`,
	} {
		st := &Stanza{Raw: []byte(raw)}
		n, b, ok := st.Payload()
		wn, wb, wok := decodePayload([]byte(raw))
		if n != wn || string(b) != string(wb) || ok != wok {
			t.Errorf("%s:\n got %v %q %v\nwant %v %q %v", raw, n, b, ok, wn, wb, wok)
		}
	}
}
