package pep

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

func testPNG(t *testing.T, c uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.RGBA{c, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func vcardDoc(t *testing.T, f *fixture) string {
	t.Helper()
	d, err := f.s.Store.Document(t.Context(), "localhost", "alice", storage.VCardKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

func publishAvatar(t *testing.T, f *fixture, data []byte, id string) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString(data)
	for _, p := range []string{
		"<publish node='urn:xmpp:avatar:data'><item id='" + id + "'><data xmlns='urn:xmpp:avatar:data'>" + b64 + "</data></item></publish>",
		"<publish node='urn:xmpp:avatar:metadata'><item id='" + id + "'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='" + id + "' bytes='1' type='image/png' url='https://example.org/a.png'/><info id='" + id + "' bytes='1' type='image/png'/></metadata></item></publish>",
	} {
		if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+p+"</pubsub>"); err != nil {
			t.Fatal(err)
		}
	}
}

// presence runs presenceHash on raw, from alice's session.
func sendPresence(t *testing.T, f *fixture, raw string) string {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	e := &c2s.ClientStanza{Session: f.alice, Stanza: st}
	if f.s.presenceHash(t.Context(), e) {
		t.Fatal("presenceHash stopped the presence")
	}
	return string(e.Stanza.Raw)
}

// TestAvatarConversion: XEP-0398 §3.1, §3.2 and §4.
func TestAvatarConversion(t *testing.T) {
	f := newFixture(t)
	f.s.Options().MaxNodes = 10
	ctx := t.Context()

	// No avatar: presence goes as it came.
	const bare = "<presence from='alice@localhost/phone'/>"
	if got := sendPresence(t, f, bare); got != bare {
		t.Errorf("no avatar: %s", got)
	}
	f.s.photos.forget("alice@localhost")

	// A vCard stored earlier keeps its other fields.
	if err := f.s.Store.PutDocument(ctx, "localhost", "alice", storage.VCardKey, []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/gif</TYPE><BINVAL>R0lG</BINVAL></PHOTO></vCard>")); err != nil {
		t.Fatal(err)
	}
	img := testPNG(t, 1)
	id := sha1Hex(img)
	publishAvatar(t, f, img, id)
	want := "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(img) + "</BINVAL></PHOTO></vCard>"
	if got := vcardDoc(t, f); got != want {
		t.Errorf("vCard after a PEP avatar:\n%s\nwant\n%s", got, want)
	}

	for _, tc := range []struct{ in, want string }{
		{bare, "<presence from='alice@localhost/phone'><x xmlns='vcard-temp:x:update'><photo>" + id + "</photo></x></presence>"},
		{"<presence from='alice@localhost/phone' to='room@muc.example/al'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
			"<presence from='alice@localhost/phone' to='room@muc.example/al'><x xmlns='http://jabber.org/protocol/muc'/><x xmlns='vcard-temp:x:update'><photo>" + id + "</photo></x></presence>"},
		{"<presence from='alice@localhost/phone'><show>away</show><x xmlns='vcard-temp:x:update'/></presence>",
			"<presence from='alice@localhost/phone'><show>away</show><x xmlns='vcard-temp:x:update'><photo>" + id + "</photo></x></presence>"},
		// The client's own photo element, empty or not, is left alone.
		{"<presence from='alice@localhost/phone'><x xmlns='vcard-temp:x:update'><photo/></x></presence>", ""},
		{"<presence from='alice@localhost/phone'><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>", ""},
		{"<presence from='alice@localhost/phone' type='unavailable'/>", ""},
		{"<presence from='alice@localhost/phone' to='bob@localhost' type='subscribe'/>", ""},
	} {
		w := tc.want
		if w == "" {
			w = tc.in
		}
		if got := sendPresence(t, f, tc.in); got != w {
			t.Errorf("presence %s:\n got %s\nwant %s", tc.in, got, w)
		}
	}

	// An old client sets a vCard photo: it becomes the PEP avatar, and
	// alice's sessions are told.
	f.alice.take()
	img2 := testPNG(t, 2)
	id2 := sha1Hex(img2)
	b64 := base64.StdEncoding.EncodeToString(img2)
	vc := "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + b64[:10] + "\n" + b64[10:] + "</BINVAL></PHOTO></vCard>"
	if err := f.s.Store.PutDocument(ctx, "localhost", "alice", storage.VCardKey, []byte(vc)); err != nil {
		t.Fatal(err)
	}
	f.s.vcardSet(ctx, request(t, "alice@localhost/phone", vc))
	items, err := f.s.Store.PubSubItems(ctx, "localhost", "alice", NSAvatarData, storage.PubSubItemsQuery{IDs: []string{id2}})
	if err != nil || len(items) != 1 || string(items[0].Payload) != "<data xmlns='urn:xmpp:avatar:data'>"+b64+"</data>" {
		t.Fatalf("data item: %v %v", items, err)
	}
	in, ok, err := f.s.avatar(ctx, jid.MustParse("alice@localhost"))
	if err != nil || !ok || in.ID != id2 || in.Bytes != strconv.Itoa(len(img2)) || in.Type != "image/png" || in.Width != "3" || in.Height != "2" {
		t.Errorf("metadata: %+v %v %v", in, ok, err)
	}
	if ev := events(f.alice.take(), NSAvatarMetadata); len(ev) != 1 || ev[0] != "+"+id2 {
		t.Errorf("metadata notifications: %q", ev)
	}
	if got := sendPresence(t, f, bare); !strings.Contains(got, "<photo>"+id2+"</photo>") {
		t.Errorf("presence after the vCard photo: %s", got)
	}
	// The same vCard again publishes nothing.
	f.s.vcardSet(ctx, request(t, "alice@localhost/phone", vc))
	if got := f.alice.take(); len(got) != 0 {
		t.Errorf("the same photo again: %q", got)
	}

	// Metadata whose data is not its SHA-1 leaves the vCard alone.
	bad := testPNG(t, 3)
	publishAvatar(t, f, bad, id)
	if got := vcardDoc(t, f); got != vc {
		t.Errorf("vCard after a mismatching avatar: %s", got)
	}

	// Disabling the avatar (empty metadata, XEP-0084 §4.2) removes the
	// photo, keeping the rest.
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set",
		"<pubsub xmlns='"+NS+"'><publish node='urn:xmpp:avatar:metadata'><item id='none'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub>"); err != nil {
		t.Fatal(err)
	}
	if got := vcardDoc(t, f); got != "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>" {
		t.Errorf("vCard after disabling the avatar: %s", got)
	}
	if got := sendPresence(t, f, bare); got != bare {
		t.Errorf("presence without an avatar: %s", got)
	}
}

// BenchmarkPresenceHash is XEP-0398 §4 on the presence path: an account
// without an avatar (the hash cached as none: nothing added) and one with
// (the presence rewritten with it).
func BenchmarkPresenceHash(b *testing.B) {
	for _, name := range []string{"none", "avatar"} {
		b.Run(name, func(b *testing.B) {
			s := &Service{}
			hash := ""
			if name == "avatar" {
				hash = "8ac21996bb7f2aa6f610f46d81a90497ac80009e"
			}
			s.photos.set("alice@localhost", hash)
			st, err := stanza.ParseElement([]byte("<presence from='alice@localhost/phone'><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='HqysBISGPrtMkgelPAooM8V38OQ='/></presence>"))
			if err != nil {
				b.Fatal(err)
			}
			e := &c2s.ClientStanza{Stanza: st}
			b.ReportAllocs()
			for b.Loop() {
				e.Stanza = st
				s.presenceHash(b.Context(), e)
			}
		})
	}
}

// itemReads counts the reads of the avatar metadata node.
type itemReads struct {
	storage.Store
	n atomic.Int64
}

func (r *itemReads) PubSubItems(ctx context.Context, host, user, node string, q storage.PubSubItemsQuery) ([]storage.PubSubItem, error) {
	if node == NSAvatarMetadata {
		r.n.Add(1)
	}
	return r.Store.PubSubItems(ctx, host, user, node, q)
}

// TestAvatarHashCached: the avatar hash added to presence (XEP-0398 §4,
// XEP-0153 §3.1) is read from storage once and kept across logins, none
// included; each change of the avatar this module sees (a publish, a
// vCard set, a retraction) puts the new hash in presence at the next
// login without reading storage for it.
func TestAvatarHashCached(t *testing.T) {
	f := newFixture(t)
	f.s.Options().MaxNodes = 10
	ctx := t.Context()
	reads := &itemReads{Store: f.s.Store.(storage.Store)}
	f.s.Store = reads
	const bare = "<presence from='alice@localhost/phone'/>"
	login := func(want string) {
		t.Helper()
		before := reads.n.Load()
		got := sendPresence(t, f, bare)
		if want == "" && got != bare || want != "" && !strings.Contains(got, "<photo>"+want+"</photo>") {
			t.Errorf("presence %s, want the hash %q", got, want)
		}
		if n := reads.n.Load() - before; n != 0 {
			t.Errorf("%d reads of the metadata node at presence, want 0 (cached)", n)
		}
	}
	if got := sendPresence(t, f, bare); got != bare {
		t.Errorf("no avatar: %s", got)
	}
	if n := reads.n.Load(); n != 1 {
		t.Errorf("%d reads at the first presence, want 1", n)
	}
	login("") // a later login: "none" was kept

	img := testPNG(t, 1)
	id := sha1Hex(img)
	publishAvatar(t, f, img, id)
	login(id)

	img2 := testPNG(t, 2)
	id2 := sha1Hex(img2)
	vc := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(img2) + "</BINVAL></PHOTO></vCard>"
	if err := f.s.Store.PutDocument(ctx, "localhost", "alice", storage.VCardKey, []byte(vc)); err != nil {
		t.Fatal(err)
	}
	f.s.vcardSet(ctx, request(t, "alice@localhost/phone", vc))
	login(id2)

	for _, it := range []string{id2} { // the last item, the only one kept
		if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set",
			"<pubsub xmlns='"+NS+"'><retract node='urn:xmpp:avatar:metadata'><item id='"+it+"'/></retract></pubsub>"); err != nil {
			t.Fatal(err)
		}
	}
	login("")
}

// TestPhotoCacheBounded: the least recently used account goes first, and
// a hash read before a change is not cached over it.
func TestPhotoCacheBounded(t *testing.T) {
	c := &photoCache{max: 2}
	c.set("a", "1")
	c.set("b", "2")
	c.get("a")
	c.set("c", "3")
	if _, ok := c.get("b"); ok {
		t.Error("b kept: the least recently used should have gone")
	}
	if h, ok := c.get("a"); !ok || h != "1" {
		t.Errorf("a: %q %v", h, ok)
	}
	if len(c.m) != 2 || c.lru.Len() != 2 {
		t.Errorf("%d entries, %d in order; want 2", len(c.m), c.lru.Len())
	}
	v := c.version()
	c.set("d", "4")
	c.forget("d")
	c.load("d", "old", v)
	if _, ok := c.get("d"); ok {
		t.Error("a hash read before a change was cached")
	}
	c.load("d", "new", c.version())
	if h, _ := c.get("d"); h != "new" {
		t.Errorf("d: %q, want new", h)
	}
}
