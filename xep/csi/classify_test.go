package csi

import "testing"

func TestClassify(t *testing.T) {
	const f = `from='bob@localhost/a' to='alice@localhost/phone'`
	tests := []struct {
		name, raw string
		want      class
	}{
		{"available", `<presence ` + f + `><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`, latest},
		{"unavailable", `<presence ` + f + ` type='unavailable'/>`, latest},
		{"empty presence", `<presence ` + f + `/>`, latest},
		{"subscribe", `<presence ` + f + ` type='subscribe'/>`, urgent},
		{"subscribed", `<presence ` + f + ` type="subscribed"/>`, urgent},
		{"presence error", `<presence ` + f + ` type='error'><error type='cancel'/></presence>`, urgent},
		{"muc occupant", `<presence from='room@muc/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>`, latest},
		{"muc self", `<presence from='room@muc/alice'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>`, urgent},
		{"muc kick", `<presence from='room@muc/alice' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><status code="307"/><status code="110"/></x></presence>`, urgent},
		{"iq", `<iq ` + f + ` type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, urgent},
		{"iq result", `<iq ` + f + ` type='result' id='1'/>`, urgent},
		{"not a stanza", `<r xmlns='urn:xmpp:sm:3'/>`, urgent},
		{"body", `<message ` + f + ` type='chat'><body>hi</body></message>`, urgent},
		{"body last", `<message ` + f + ` type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><markable xmlns='urn:xmpp:chat-markers:0'/><body>hi</body></message>`, urgent},
		{"prefixed body", `<cl:message xmlns:cl='jabber:client' ` + f + `><cl:body>hi</cl:body></cl:message>`, urgent},
		{"groupchat body", `<message from='room@muc/bob' type='groupchat'><body>hi all</body></message>`, urgent},
		{"subject", `<message from='room@muc' type='groupchat'><subject>topic</subject></message>`, urgent},
		{"error", `<message ` + f + ` type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, urgent},
		{"chat state", `<message ` + f + ` type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, latest},
		{"chat state, thread, hints", `<message ` + f + ` type='chat'><thread>t</thread><paused xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/><stanza-id xmlns='urn:xmpp:sid:0' id='x' by='alice@localhost'/></message>`, latest},
		{"muc chat state", `<message from='room@muc/bob' type='groupchat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, latest},
		{"receipt", `<message ` + f + `><received xmlns='urn:xmpp:receipts' id='m1'/></message>`, ordered},
		{"marker", `<message ` + f + ` type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/><store xmlns='urn:xmpp:hints'/></message>`, ordered},
		{"chat state and receipt", `<message ` + f + ` type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><received xmlns='urn:xmpp:receipts' id='m1'/></message>`, ordered},
		{"pep event headline", `<message from='bob@localhost' to='alice@localhost/phone' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'><item id='1'/></items></event></message>`, ordered},
		{"pep event", `<message from='bob@localhost' to='alice@localhost/phone'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='eu.siacs.conversations.axolotl.devicelist'/></event></message>`, ordered},
		{"headline, unknown payload", `<message from='news.example' type='headline'><x xmlns='jabber:x:oob'><url>u</url></x></message>`, ordered},
		{"headline with body", `<message from='localhost' type='headline'><body>maintenance at noon</body></message>`, urgent},
		{"omemo", `<message ` + f + ` type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>x</iv></header><payload>y</payload></encrypted><store xmlns='urn:xmpp:hints'/></message>`, urgent},
		{"omemo 2", `<message ` + f + ` type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>y</payload></encrypted></message>`, urgent},
		{"openpgp", `<message ` + f + ` type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>`, urgent},
		{"jingle message", `<message ` + f + ` type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>`, urgent},
		{"invite", `<message from='room@muc' to='alice@localhost'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='bob@localhost'/></x></message>`, urgent},
		{"reaction", `<message ` + f + ` type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction></reactions></message>`, urgent},
		{"empty message", `<message ` + f + `/>`, ordered},
		{"sent carbon with body", `<message from='alice@localhost' to='alice@localhost/phone' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost/laptop' to='bob@localhost' type='chat'><body>hi</body></message></forwarded></sent></message>`, urgent},
		{"received carbon with body", `<message from='alice@localhost' to='alice@localhost/phone' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/><message xmlns='jabber:client' from='bob@localhost/a' to='alice@localhost/laptop' type='chat'><body>hi</body></message></forwarded></received></message>`, urgent},
		{"carbon of a chat state", `<message from='alice@localhost' to='alice@localhost/phone' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost/laptop' to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></sent></message>`, ordered},
		{"carbon of a marker", `<message from='alice@localhost' to='alice@localhost/phone' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/a' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message></forwarded></received></message>`, ordered},
		{"carbon of omemo", `<message from='alice@localhost' to='alice@localhost/phone' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/a' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message></forwarded></received></message>`, urgent},
		{"carbon without a message", `<message from='alice@localhost' type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>`, urgent},
		{"mam result", `<message to='alice@localhost/phone'><result xmlns='urn:xmpp:mam:2' queryid='q' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></result></message>`, urgent},
		{"unknown jabber:client child", `<message ` + f + `><html/></message>`, urgent},
	}
	for _, tt := range tests {
		v := classify([]byte(tt.raw))
		if v.class != tt.want {
			t.Errorf("%s: class %d, want %d", tt.name, v.class, tt.want)
		}
		if v.class == latest && string(v.from) == "" {
			t.Errorf("%s: no sender", tt.name)
		}
	}
}

func TestStartTag(t *testing.T) {
	name, typ, from := startTag([]byte(`<presence  to = "a@b" from='x@y/&apos;z' type='unavailable' xml:lang='en'>`))
	if string(name) != "presence" || string(typ) != "unavailable" || string(from) != "x@y/&apos;z" {
		t.Fatalf("got %q %q %q", name, typ, from)
	}
	name, typ, from = startTag([]byte(`<message/>`))
	if string(name) != "message" || typ != nil || from != nil {
		t.Fatalf("got %q %q %q", name, typ, from)
	}
}

var presence = []byte(`<presence from='bob@example.org/Conversations.x1Yz' to='alice@localhost/phone' xml:lang='en'><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://conversations.im' ver='XUpTs5hPZ0AuXgyLW6D0G4mwWrQ='/><x xmlns='vcard-temp:x:update'><photo>8d7b2ee6a1b5e0f1d4c2a8c1b2f3e4d5a6b7c8d9</photo></x><idle xmlns='urn:xmpp:idle:1' since='2026-12-07T06:00:00Z'/></presence>`)

// BenchmarkHoldPresence is the cost of an inactive session taking a
// presence update that replaces the previous one from the same contact.
func BenchmarkHoldPresence(b *testing.B) {
	h := newHolder(&fakeClient{}, defaultMaxStanzas, defaultMaxBytes)
	b.ReportAllocs()
	for b.Loop() {
		if !h.Hold(presence) {
			b.Fatal("not held")
		}
	}
}

var chat = []byte(`<message from='bob@example.org/Conversations.x1Yz' to='alice@localhost/phone' type='chat' id='a1b2c3'><body>hello there</body><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='a1b2c3'/><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)

// BenchmarkHoldMessage is the cost of an inactive session letting a
// chat message through (nothing held before it).
func BenchmarkHoldMessage(b *testing.B) {
	h := newHolder(&fakeClient{}, defaultMaxStanzas, defaultMaxBytes)
	b.ReportAllocs()
	for b.Loop() {
		if h.Hold(chat) {
			b.Fatal("held")
		}
	}
}
