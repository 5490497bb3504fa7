package disco

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/caps"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
)

// TestVer checks the verification string against XEP-0115 §5.2 (simple
// generation example), whatever order identities and features come in.
func TestVer(t *testing.T) {
	exodus := []Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}}
	tests := []struct {
		name       string
		identities []Identity
		features   []string
		forms      []Form
		want       string
	}{
		{
			// §5.3 (complex generation example): an extended
			// information form, fields and values unsorted.
			name: "XEP-0115 §5.3, with a form",
			identities: []Identity{
				{Category: "client", Type: "pc", Lang: "en", Name: "Psi 0.11"},
				{Category: "client", Type: "pc", Lang: "el", Name: "Ψ 0.11"},
			},
			features: []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
				"http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"},
			forms: []Form{{Type: "urn:xmpp:dataforms:softwareinfo", Fields: []dispatch.Field{
				{Var: "ip_version", Type: "text-multi", Values: []string{"ipv6", "ipv4"}},
				{Var: "software", Values: []string{"Psi"}},
				{Var: "software_version", Values: []string{"0.11"}},
				{Var: "os", Values: []string{"Mac"}},
				{Var: "os_version", Values: []string{"10.5.1"}},
			}}},
			want: "q07IKJEyjvHSyhy//CH0CxmKi8w=",
		},
		{
			name:       "XEP-0115 §5.2",
			identities: exodus,
			features: []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
				"http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"},
			want: "QgayPKawpkPSDYmwT/WM94uAlu0=",
		},
		{
			name:       "XEP-0115 §5.2, features unsorted",
			identities: exodus,
			features: []string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#items",
				"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info"},
			want: "QgayPKawpkPSDYmwT/WM94uAlu0=",
		},
		{
			// S = "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<" (§5.3's
			// identities, without its features and form), computed with
			// `printf %s "$S" | openssl dgst -binary -sha1 | base64`.
			name: "identities sorted by xml:lang",
			identities: []Identity{
				{Category: "client", Type: "pc", Lang: "en", Name: "Psi 0.11"},
				{Category: "client", Type: "pc", Lang: "el", Name: "Ψ 0.11"},
			},
			want: "w2/nbx8akAKAbBLRbxPes1t3R1w=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ver(tt.identities, tt.features, tt.forms); got != tt.want {
				t.Errorf("Ver = %s, want %s", got, tt.want)
			}
		})
	}
}

// sender records replies.
type sender struct{ replies [][]byte }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, raw)
	return true
}

func newMux(t *testing.T) (*dispatch.Mux, *sender) {
	t.Helper()
	m := dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	out := &sender{}
	m.SetSender(out)
	Register(m)
	m.AddFeatures("urn:xmpp:ping", "jabber:iq:version")
	return m, out
}

func ask(t *testing.T, m *dispatch.Mux, out *sender, raw string) []byte {
	t.Helper()
	s, err := stanza.Parse([]byte(raw), bytes.IndexByte([]byte(raw), '>')+1)
	if err != nil {
		t.Fatal(err)
	}
	out.replies = nil
	m.HandleServer(context.Background(), s)
	if len(out.replies) != 1 {
		t.Fatalf("got %d replies to %s", len(out.replies), raw)
	}
	return out.replies[0]
}

// TestCaps: the stream feature carries the verification string of the
// server's own disco#info (XEP-0115 §6.3), and disco#info for the node
// 'node#ver' answers the same identity and features (§6.2).
func TestCaps(t *testing.T) {
	m, out := newMux(t)
	ver := Ver([]Identity{{Category: "server", Type: "im", Name: "Starling"}},
		[]string{NSInfo, NSItems, "urn:xmpp:ping", "jabber:iq:version"}, nil)
	if got := ServerVer(m); got != ver {
		t.Fatalf("ServerVer = %s, want %s", got, ver)
	}
	wantC := "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://starling.im' ver='" + ver + "'/>"
	if err := xmlcmp.Equal([]byte(wantC), Caps(m), ""); err != nil {
		t.Errorf("Caps = %s: %v", Caps(m), err)
	}
	features := `<identity category='server' type='im' name='Starling'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='jabber:iq:version'/>
		<feature var='urn:xmpp:ping'/>`
	tests := []struct {
		name, in, want string
	}{
		{
			name: "server, no node",
			in:   `<iq from='a@example.org/r' to='example.org' type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			want: `<iq from='example.org' to='a@example.org/r' type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#info'>` + features + `</query></iq>`,
		},
		{
			name: "server, caps node",
			in:   `<iq from='a@example.org/r' to='example.org' type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + ver + `'/></iq>`,
			want: `<iq from='example.org' to='a@example.org/r' type='result' id='2'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + ver + `'>` + features + `</query></iq>`,
		},
		{
			name: "server, stale caps node",
			in:   `<iq from='a@example.org/r' to='example.org' type='get' id='3'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#QgayPKawpkPSDYmwT/WM94uAlu0='/></iq>`,
			want: `<iq from='example.org' to='a@example.org/r' type='error' id='3'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "own account, caps node is not the account's",
			in:   `<iq from='a@example.org/r' type='get' id='4'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + ver + `'/></iq>`,
			want: `<iq to='a@example.org/r' type='error' id='4'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ask(t, m, out, tt.in)
			if err := xmlcmp.Equal([]byte(tt.want), got, "jabber:client"); err != nil {
				t.Errorf("got %s\nwant %s\n%v", got, tt.want, err)
			}
		})
	}
}

// TestCapsFollowsFeatures: a newly registered feature changes the
// verification string, and the old caps node is no longer answered.
func TestCapsFollowsFeatures(t *testing.T) {
	m, _ := newMux(t)
	before := ServerVer(m)
	m.AddFeatures("vcard-temp")
	if after := ServerVer(m); after == before {
		t.Errorf("ver %s unchanged after a new feature", after)
	}
}

// TestRegistered: what modules register is what disco answers: the
// server's identities and items, an account's identities and features;
// the server's capabilities count every identity.
func TestRegistered(t *testing.T) {
	m, out := newMux(t)
	before := ServerVer(m)
	m.AddIdentity(Identity{Category: "pubsub", Type: "service", Name: "Pub & Sub"})
	m.AddItem(dispatch.Item{JID: "conference.example.org", Name: "Chat rooms"})
	m.AddAccountIdentity(Identity{Category: "pubsub", Type: "pep"})
	m.AddAccountFeatures("urn:xmpp:mam:2")
	if ServerVer(m) == before {
		t.Error("an identity did not change the capabilities")
	}
	for _, tc := range []struct{ send, want string }{
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im' name='Starling'/><identity category='pubsub' type='service' name='Pub &amp; Sub'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='jabber:iq:version'/><feature var='urn:xmpp:ping'/></query></iq>`},
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='2'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.example.org' name='Chat rooms'/></query></iq>`},
		{`<iq from='alice@example.org/a' to='alice@example.org' type='get' id='3'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			`<iq from='alice@example.org' to='alice@example.org/a' type='result' id='3'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='account' type='registered'/><identity category='pubsub' type='pep'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='urn:xmpp:mam:2'/></query></iq>`},
	} {
		got := ask(t, m, out, tc.send)
		if err := xmlcmp.Equal([]byte(tc.want), got, "jabber:client"); err != nil {
			t.Errorf("%s\nwant %s\n%v", got, tc.want, err)
		}
	}
}

// TestServerForms: the forms registered with AddServerForm are in the
// server's disco#info (XEP-0128 §2), after the features, and in its caps
// node's answer, never in an account's; they count in the verification
// string (XEP-0115 §5.4) as they are when it is computed; a form without
// fields, or with the FORM_TYPE of an earlier one, is left out.
func TestServerForms(t *testing.T) {
	m, out := newMux(t)
	before := ServerVer(m)
	var admins []string
	m.AddServerForm(func() Form {
		if admins == nil {
			return Form{Type: "http://jabber.org/network/serverinfo"}
		}
		return Form{Type: "http://jabber.org/network/serverinfo", Fields: []dispatch.Field{
			{Var: "admin-addresses", Values: admins},
			{Var: "abuse-addresses", Type: "list-multi"},
		}}
	})
	m.AddServerForm(func() Form {
		return Form{Type: "http://jabber.org/network/serverinfo", Fields: []dispatch.Field{{Var: "other"}}}
	})
	m.AddServerForm(func() Form {
		return Form{Type: "urn:example:a", Fields: []dispatch.Field{{Var: "x", Values: []string{"<&>"}}}}
	})
	withA := ServerVer(m)
	if withA == before {
		t.Error("a form did not change the capabilities")
	}
	admins = []string{"xmpp:admin@example.org", "mailto:admin@example.org"}
	ver := ServerVer(m)
	if ver == withA {
		t.Error("a form's new values did not change the capabilities")
	}
	want := Ver([]Identity{{Category: "server", Type: "im", Name: "Starling"}},
		[]string{NSInfo, NSItems, "urn:xmpp:ping", "jabber:iq:version"},
		[]Form{
			{Type: "urn:example:a", Fields: []dispatch.Field{{Var: "x", Values: []string{"<&>"}}}},
			{Type: "http://jabber.org/network/serverinfo", Fields: []dispatch.Field{
				{Var: "abuse-addresses"}, {Var: "admin-addresses", Values: []string{"mailto:admin@example.org", "xmpp:admin@example.org"}}}},
		})
	if ver != want {
		t.Errorf("ServerVer = %s, want %s", ver, want)
	}
	info := `<identity category='server' type='im' name='Starling'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='jabber:iq:version'/>
		<feature var='urn:xmpp:ping'/>
		<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>
			<field var='admin-addresses'><value>xmpp:admin@example.org</value><value>mailto:admin@example.org</value></field>
			<field var='abuse-addresses' type='list-multi'/>
		</x>
		<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:example:a</value></field>
			<field var='x'><value>&lt;&amp;&gt;</value></field>
		</x>`
	for _, tc := range []struct{ send, want string }{
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#info'>` + info + `</query></iq>`},
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + ver + `'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='2'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + ver + `'>` + info + `</query></iq>`},
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='3'><query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.im#` + withA + `'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='error' id='3'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`},
		{`<iq from='alice@example.org/a' to='alice@example.org' type='get' id='4'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			`<iq from='alice@example.org' to='alice@example.org/a' type='result' id='4'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='account' type='registered'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/></query></iq>`},
	} {
		got := ask(t, m, out, tc.send)
		if err := xmlcmp.Equal([]byte(tc.want), got, "jabber:client"); err != nil {
			t.Errorf("%s\nwant %s\n%v", got, tc.want, err)
		}
	}
	// What a client computes from the answer is the advertised 'ver'.
	got := ask(t, m, out, `<iq from='alice@example.org/a' to='example.org' type='get' id='5'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	start := bytes.Index(got, []byte("<query"))
	parsed, err := caps.ParseInfo(got[start:bytes.LastIndex(got, []byte("</iq>"))])
	if err != nil {
		t.Fatal(err)
	}
	if v, err := caps.Ver(parsed, "sha-1"); err != nil || v != ver {
		t.Errorf("the answer hashes to %s (%v), the server advertises %s", v, err, ver)
	}
}

// nodes is a module's nodes: "cmds" has an item, for alice only, and
// "cmds/a" an identity and a feature.
type nodes struct{}

func (nodes) NodeInfo(_ context.Context, req dispatch.Request, node string) ([]Identity, []string, bool) {
	if node != "cmds/a" {
		return nil, nil, false
	}
	return []Identity{{Category: "automation", Type: "command-node", Name: "A"}}, []string{"jabber:x:data"}, true
}

func (nodes) NodeItems(_ context.Context, req dispatch.Request, node string) ([]dispatch.Item, bool) {
	if node != "cmds" || req.Stanza.From.Localpart() != "alice" {
		return nil, false
	}
	return []dispatch.Item{{JID: req.To.String(), Node: "cmds/a", Name: "A"}}, true
}

// TestNodes: disco#info and disco#items of a node (XEP-0030 §3.2, §4.2)
// are the module's that has it, with the node in the answer, and
// item-not-found for a node nobody has or shows the requester.
func TestNodes(t *testing.T) {
	m, out := newMux(t)
	m.AddNodes(nodes{})
	m.AddServerForm(func() Form { return Form{Type: "urn:x", Fields: []dispatch.Field{{Var: "a", Values: []string{"b"}}}} })
	notFound := `<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`
	for _, tc := range []struct{ send, want string }{
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#items' node='cmds'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='1'><query xmlns='http://jabber.org/protocol/disco#items' node='cmds'><item jid='example.org' node='cmds/a' name='A'/></query></iq>`},
		{`<iq from='bob@example.org/a' to='example.org' type='get' id='2'><query xmlns='http://jabber.org/protocol/disco#items' node='cmds'/></iq>`,
			`<iq from='example.org' to='bob@example.org/a' type='error' id='2'>` + notFound + `</iq>`},
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='3'><query xmlns='http://jabber.org/protocol/disco#info' node='cmds/a'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='result' id='3'><query xmlns='http://jabber.org/protocol/disco#info' node='cmds/a'><identity category='automation' type='command-node' name='A'/><feature var='jabber:x:data'/></query></iq>`},
		{`<iq from='alice@example.org/a' to='example.org' type='get' id='4'><query xmlns='http://jabber.org/protocol/disco#info' node='other'/></iq>`,
			`<iq from='example.org' to='alice@example.org/a' type='error' id='4'>` + notFound + `</iq>`},
	} {
		got := ask(t, m, out, tc.send)
		if err := xmlcmp.Equal([]byte(tc.want), got, "jabber:client"); err != nil {
			t.Errorf("%s\nwant %s\n%v", got, tc.want, err)
		}
	}
}
