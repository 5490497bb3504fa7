package browser

// The profile checks of TestBrowser (see the package comment): bob's
// avatar shown in alice's roster, and alice's bookmarks, both ways
// between Converse and a legacy client.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// profile is what one run of the driver checks beyond the chat: the
// avatar bob published, the bookmark stored for alice before she logged
// in, and the one she adds in Converse.
type profile struct {
	// alice is a TCP session of alice's, never available, which stores
	// and reads her bookmarks as a legacy client does: private XML
	// storage (XEP-0049) of storage:bookmarks (XEP-0048).
	alice *xmpptest.Client
	// avatar is bob's avatar (XEP-0084), a PNG image.
	avatar []byte
	// stored is the bookmark stored before the login, added the one alice
	// adds in Converse.
	stored, added bookmark
}

// bookmark is a bookmarked room, as Converse lists it and as the
// storage:bookmarks <conference/> element holds it.
type bookmark struct {
	JID  string `json:"jid" xml:"jid,attr"`
	Name string `json:"name" xml:"name,attr"`
}

// befriend makes alice and bob mutual contacts (subscription both, RFC
// 6121 §3), unless they are already: bob's avatar is published with the
// presence access model, and Converse shows its roster's contacts.
func befriend(t *testing.T, alice, bob *xmpptest.Client) {
	t.Helper()
	aliceBare, bobBare := bareJID(alice.JID), bareJID(bob.JID)
	// Both interested in roster pushes (RFC 6121 §2.1.6).
	iq(t, bob, "get", "", "<query xmlns='jabber:iq:roster'/>")
	roster := iq(t, alice, "get", "", "<query xmlns='jabber:iq:roster'/>")
	if slices.ContainsFunc(rosterItems(t, roster), func(i rosterItem) bool { return i.JID == bobBare && i.Subscription == "both" }) {
		return
	}
	// alice asks, bob approves.
	alice.Send(fmt.Sprintf("<presence to='%s' type='subscribe'/>", bobBare))
	await(t, bob, "alice's subscription request", isPresence(aliceBare, "subscribe"))
	bob.Send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", aliceBare))
	await(t, alice, "the roster push of bob, subscription to", isPush(t, bobBare, "to"))
	// alice pre-approves bob (§3.4), handled before bob asks: her session,
	// never available, would not be shown his request (§3.1.3). The roster
	// get after it is answered once the server has handled it.
	alice.Send(fmt.Sprintf("<presence to='%s' type='subscribed'/>", bobBare))
	iq(t, alice, "get", "", "<query xmlns='jabber:iq:roster'/>")
	bob.Send(fmt.Sprintf("<presence to='%s' type='subscribe'/>", aliceBare))
	await(t, alice, "the roster push of bob, subscription both", isPush(t, bobBare, "both"))
	await(t, bob, "the roster push of alice, subscription both", isPush(t, aliceBare, "both"))
	t.Logf("alice and bob are mutual contacts")
}

// newProfile makes the profile of one run: bob publishes a new avatar
// (XEP-0084: the data, then the metadata, both nodes readable by his
// contacts), and a new bookmark replaces alice's through private XML
// storage, as Gajim or Dino of old would store it.
func newProfile(t *testing.T, alice, bob *xmpptest.Client, domain string) *profile {
	t.Helper()
	tag := randomTag()
	p := &profile{alice: alice, avatar: randomPNG(t),
		stored: bookmark{JID: "legacy-" + tag + "@conference." + domain, Name: "Stored by a legacy client ☃ & co " + tag},
		added:  bookmark{JID: "converse-" + tag + "@conference." + domain, Name: "Added in Converse ☃ & co " + tag},
	}
	sum := sha1.Sum(p.avatar)
	id := hex.EncodeToString(sum[:])
	cfg, err := png.DecodeConfig(bytes.NewReader(p.avatar))
	if err != nil {
		t.Fatal(err)
	}
	options := "<publish-options><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#access_model'><value>presence</value></field></x></publish-options>"
	iq(t, bob, "set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'>"+
		fmt.Sprintf("<item id='%s'><data xmlns='urn:xmpp:avatar:data'>%s</data></item>", id, base64.StdEncoding.EncodeToString(p.avatar))+
		"</publish>"+options+"</pubsub>")
	iq(t, bob, "set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'>"+
		fmt.Sprintf("<item id='%s'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='%s' bytes='%d' type='image/png' width='%d' height='%d'/></metadata></item>",
			id, id, len(p.avatar), cfg.Width, cfg.Height)+
		"</publish>"+options+"</pubsub>")
	t.Logf("bob published his avatar %s (%d bytes)", id, len(p.avatar))

	iq(t, alice, "set", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"+
		fmt.Sprintf("<conference jid='%s' name='%s' autojoin='false'/>", p.stored.JID, xmlEscape(p.stored.Name))+
		"</storage></query>")
	t.Logf("alice's bookmark %s (%q) stored in private XML storage", p.stored.JID, p.stored.Name)
	return p
}

// args are the driver's arguments for p.
func (p *profile) args() []string {
	return []string{"--avatar", base64.StdEncoding.EncodeToString(p.avatar),
		"--bookmark-jid", p.stored.JID, "--bookmark-name", p.stored.Name,
		"--add-bookmark-jid", p.added.JID, "--add-bookmark-name", p.added.Name}
}

// checkAvatar: the driver reported the image bob's roster entry shows,
// which must be his avatar, the very bytes of the PNG he published.
func (p *profile) checkAvatar(t *testing.T, d *driver, bob string) {
	t.Helper()
	e := d.next(t, "avatar")
	mediaType, data, ok := strings.Cut(strings.TrimPrefix(e.Image, "data:"), ";base64,")
	if !strings.HasPrefix(e.Image, "data:") || !ok {
		t.Fatalf("Converse shows %s's avatar from %.80q, want a data URL", bob, e.Image)
	}
	img, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data), ""))
	if err != nil {
		t.Fatalf("Converse shows %s's avatar from %.80q: %v", bob, e.Image, err)
	}
	if mediaType != "image/png" || !bytes.Equal(img, p.avatar) {
		t.Fatalf("Converse shows for %s an image of type %q (%d bytes), want his avatar, image/png (%d bytes)", bob, mediaType, len(img), len(p.avatar))
	}
	t.Logf("Converse shows bob's avatar in alice's roster (%s, %d bytes)", mediaType, len(img))
}

// checkBookmarks: Converse lists the bookmark stored in private storage
// before the login, with its name; the one alice added in Converse was
// published to her bookmarks, and a legacy client reads it back from
// private storage with the same name, the stored one still beside it.
// Private storage is read once, after the server answered Converse's
// publish: a server keeps the forms in step before it answers (as
// Prosody's mod_bookmarks does), or a legacy client may read stale ones.
func (p *profile) checkBookmarks(t *testing.T, d *driver) {
	t.Helper()
	e := d.next(t, "bookmarks")
	t.Logf("Converse keeps the bookmarks in %s and lists %q", e.Node, e.Bookmarks)
	if !slices.Contains(e.Bookmarks, p.stored) {
		t.Fatalf("Converse lists the bookmarks %q, want %q among them", e.Bookmarks, p.stored)
	}

	e = d.next(t, "bookmarked")
	if e.Type != "result" {
		t.Fatalf("Converse's publish of the bookmark %s to %s was answered %s: %s", p.added.JID, e.Node, e.Type, e.Answer)
	}
	t.Logf("Converse published the bookmark %s to %s", p.added.JID, e.Node)
	answer := iq(t, p.alice, "get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
	var r struct {
		Query struct {
			Storage struct {
				Conferences []bookmark `xml:"storage:bookmarks conference"`
			} `xml:"storage:bookmarks storage"`
		} `xml:"jabber:iq:private query"`
	}
	if err := xml.Unmarshal(answer.Raw, &r); err != nil {
		t.Fatalf("private storage: %s: %v", answer.Raw, err)
	}
	got := r.Query.Storage.Conferences
	for _, want := range []bookmark{p.added, p.stored} {
		if !slices.Contains(got, want) {
			t.Errorf("private XML storage holds the bookmarks %q, want %q among them: %s", got, want, answer.Raw)
		}
	}
	t.Logf("private XML storage holds the bookmarks %q", got)
}

// rosterItem is an item of a roster result or push.
type rosterItem struct {
	JID          string `xml:"jid,attr"`
	Subscription string `xml:"subscription,attr"`
	Ask          string `xml:"ask,attr"`
}

func rosterItems(t *testing.T, el *stream.Element) []rosterItem {
	t.Helper()
	var r struct {
		Items []rosterItem `xml:"jabber:iq:roster query>item"`
	}
	if err := xml.Unmarshal(el.Raw, &r); err != nil {
		t.Fatalf("roster: %s: %v", el.Raw, err)
	}
	return r.Items
}

// isPresence matches presence of type typ from the bare JID from.
func isPresence(from, typ string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Name.Local == "presence" && bareJID(el.AttrValue("from")) == from && el.AttrValue("type") == typ
	}
}

// isPush matches a roster push of jid with subscription sub.
func isPush(t *testing.T, jid, sub string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Name.Local == "iq" && el.AttrValue("type") == "set" &&
			slices.ContainsFunc(rosterItems(t, el), func(i rosterItem) bool { return i.JID == jid && i.Subscription == sub })
	}
}

// iq sends an IQ of type typ with payload from c (to the server when to
// is ""), and returns its result; an error answer fails the test.
func iq(t *testing.T, c *xmpptest.Client, typ, to, payload string) *stream.Element {
	t.Helper()
	id := "browser-" + randomTag()
	attrs := fmt.Sprintf("type='%s' id='%s'", typ, id)
	if to != "" {
		attrs += fmt.Sprintf(" to='%s'", to)
	}
	req := fmt.Sprintf("<iq %s>%s</iq>", attrs, payload)
	c.Send(req)
	el := await(t, c, "the answer to "+req, func(el *stream.Element) bool {
		return el.Name.Local == "iq" && el.AttrValue("id") == id && (el.AttrValue("type") == "result" || el.AttrValue("type") == "error")
	})
	if el.AttrValue("type") != "result" {
		t.Fatalf("%s sent %s and received %s", c.JID, req, el.Raw)
	}
	return el
}

// await reads what c receives until an element match accepts, passing
// over the others (and answering roster pushes, RFC 6121 §2.1.6), for at
// most stepTimeout.
func await(t *testing.T, c *xmpptest.Client, what string, match func(*stream.Element) bool) *stream.Element {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		el, err := c.Next()
		if err != nil {
			t.Fatalf("%s waiting for %s: %v", c.JID, what, err)
		}
		if match(el) {
			return el
		}
		if el.Name.Local == "iq" && el.AttrValue("type") == "set" && len(rosterItems(t, el)) > 0 {
			c.Send(fmt.Sprintf("<iq type='result' id='%s'/>", xmlEscape(el.AttrValue("id"))))
		}
	}
	t.Fatalf("%s did not receive %s within %v", c.JID, what, stepTimeout)
	return nil
}

// randomPNG is a small PNG image of random pixels, new each time.
func randomPNG(t *testing.T) []byte {
	t.Helper()
	const side = 8
	px := make([]byte, side*side*3)
	rand.Read(px)
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for i := 0; i < side*side; i++ {
		img.Set(i%side, i/side, color.NRGBA{px[3*i], px[3*i+1], px[3*i+2], 0xff})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
