package federation

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// pubsubDomain is Prosody's pubsub component, the app server's XMPP Push
// Service in TestPushToProsody.
const pubsubDomain = "pubsub." + prosodyDomain

// TestPushToProsody: push notifications (XEP-0357 §7) published by
// Starling over federation to a real pubsub service, Prosody's pubsub
// component (mod_pubsub) on pubsub.prosody.test, as an app server's
// would be. alice@prosody.test, an admin of the component, plays the app
// server: she creates the node, open to publishers (an app server would
// rather give the user's JID the publish-only affiliation, XEP-0357 §3.2,
// or check a secret), and subscribes to it. alice@starling.test enables push with that node and a
// publish-options form, has no available resource, and bob@starling.test
// writes to her: Prosody's subscriber must receive the published item,
// the summary form in it, and Starling must see the publish answered.
// Dialback both ways (the component's own streams to Starling included):
// nobody trusts the test CA.
func TestPushToProsody(t *testing.T) {
	requirePeers(t)
	w := newWorld(t, aFallback, true)
	w.dns.SetA(pubsubDomain, netip.MustParseAddr(prosodyAddr))
	st, us := w.starling(anchor.DialbackOnly, false)
	_, up := w.peer("prosody", anchor.DialbackOnly, false, func(o *anchor.Options) {
		o.Names = []string{pubsubDomain}
		o.Prosody = fmt.Sprintf(`Component %q "pubsub"
	admins = { %q }
`, pubsubDomain, up0(o))
	})
	node := "push-" + randomHex(6)
	secret := randomHex(10)

	// The app server's side: the node, Starling's user as its
	// publisher, and a subscriber.
	app := login(t, up)
	// Available: the event is a headline to the bare JID (XEP-0060
	// §7.1.2.1), for available resources only (RFC 6121 §8.5.2.1.1).
	app.Send("<presence/>")
	app.roundTrip(t)
	app.iq(t, pubsubDomain, "set", fmt.Sprintf(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node=%q/><configure><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field>`+
		`<field var='pubsub#publish_model'><value>open</value></field></x></configure></pubsub>`, node))
	app.iq(t, pubsubDomain, "set", fmt.Sprintf(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node=%q jid=%q/></pubsub>`, node, up.bare()))
	t.Logf("node %s on %s created, %s subscribed", node, pubsubDomain, up.bare())

	// alice@starling.test enables push (§5), and sends no presence:
	// what comes for her is kept offline.
	alice := login(t, us)
	alice.iq(t, "", "set", fmt.Sprintf(`<enable xmlns='urn:xmpp:push:0' jid=%q node=%q><x xmlns='jabber:x:data' type='submit'>`+
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>`+
		`<field var='secret'><value>%s</value></field></x></enable>`, pubsubDomain, node, secret))
	bobPassword := randomHex(12)
	testbin.AddUser(t, st.bin, st.config, "bob@"+starlingDomain, bobPassword)
	bob := login(t, user{server: "starling", addr: us.addr, domain: starlingDomain, name: "bob", password: bobPassword})
	bob.Send(fmt.Sprintf("<message to='%s' type='chat' id='m1'><body>wake up</body></message>", us.bare()))

	// Prosody's subscriber gets the item Starling published (XEP-0060
	// §7.1.2.1): the notification with the summary, the count only.
	el := app.await(t, "the push notification published on "+node, func(el *stream.Element) bool {
		return el.Name.Local == "message" && xmpptest.Attr(el, "from") == pubsubDomain &&
			strings.Contains(string(el.Raw), "urn:xmpp:push:0")
	})
	var ev struct {
		Items struct {
			Node string `xml:"node,attr"`
			Item []struct {
				Notification struct {
					Fields []struct {
						Var   string `xml:"var,attr"`
						Value string `xml:"value"`
					} `xml:"jabber:x:data x>field"`
				} `xml:"urn:xmpp:push:0 notification"`
			} `xml:"item"`
		} `xml:"http://jabber.org/protocol/pubsub#event event>items"`
	}
	if err := xml.Unmarshal(el.Raw, &ev); err != nil || ev.Items.Node != node || len(ev.Items.Item) != 1 {
		t.Fatalf("event %v: %s", err, el.Raw)
	}
	got := map[string]string{}
	for _, f := range ev.Items.Item[0].Notification.Fields {
		got[f.Var] = f.Value
	}
	if got["FORM_TYPE"] != "urn:xmpp:push:summary" || got["message-count"] != "1" || len(got) != 2 {
		t.Errorf("summary %v, want FORM_TYPE urn:xmpp:push:summary and message-count 1 only: %s", got, el.Raw)
	}
	if strings.Contains(string(el.Raw), secret) || strings.Contains(string(el.Raw), "wake up") {
		t.Errorf("the event shows the secret or the body: %s", el.Raw)
	}
	t.Logf("%s received the notification: %s", up.bare(), el.Raw)

	// The publish's result came back over the component's own stream.
	line, _ := st.proc.WaitLog(t, 0, waitTimeout, "the publish answered", func(line string) bool {
		return strings.Contains(line, `msg="push notification answered"`) && strings.Contains(line, "node="+node)
	})
	t.Logf("starling: %s", line)
}

// up0 is the bare JID of the account alice of the peer o describes.
func up0(o *anchor.Options) string { return "alice@" + o.Domain }
