package imclients

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"
)

// User avatars (XEP-0084) over personal eventing (XEP-0163), with the
// notifications decided by entity capabilities (XEP-0115; issue 14).

// avatarInfo is one <info/> of a XEP-0084 metadata item as the library
// parsed it (-1 for a number it did not give).
type avatarInfo struct {
	ID     string `json:"id"`
	Bytes  int    `json:"bytes"`
	Type   string `json:"type"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

const avatarSide = 4 // the test avatars are avatarSide × avatarSide PNGs

// checkAvatar: alice on the check's library and bob on the other, mutual
// contacts (as the subscription check leaves them), both with --pep: each
// library's entity capabilities (XEP-0115) on its presence, with
// urn:xmpp:avatar:metadata+notify among the features it answers the
// server's disco#info query with (XEP-0163 §4: the server learns of the
// interest only that way). alice publishes an avatar with her library's
// own call — a fresh PNG, so its id matches nothing an earlier run left —:
// the data node urn:xmpp:avatar:data with the base64 bytes, then the
// metadata node with id = SHA-1 of the bytes, bytes, type, width and
// height (XEP-0084 §4.1, §4.2). bob must receive the metadata notification
// from alice's bare JID with exactly those values (XEP-0084 §4.3, a
// notification or the last item sent when his caps became known), then
// fetch the data item by that id (§4.4), and get the same bytes. Then the
// same with bob publishing and alice receiving. Last, carol, no contact
// of either, asks for each avatar's data item and must be refused: nbxmpp
// publishes with publish-options access_model presence (Gajim's
// non-public avatar), slixmpp with none, so the node has the server's
// default, presence for PEP (XEP-0163 §5); a server's answer here is
// not-authorized with presence-subscription-required (XEP-0060
// §6.5.9.3), and Starling must give exactly that (an anchor may differ:
// Prosody answers forbidden, ejabberd not-authorized; any refusal passes
// there). Then the nbxmpp user makes its avatar public as Gajim does:
// publish-options access_model open, which the presence nodes fail
// (precondition-not-met, XEP-0060 §7.1.5), so nbxmpp reconfigures them and
// publishes again; the other still gets the notification and the bytes,
// and now carol may fetch them too.
func checkAvatar(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	pep := []string{"--pep"}
	a := c.loginArgs(c.lib, pep, "alice/1")[0]
	b := c.loginArgs(other, pep, "bob/1")[0]
	// slixmpp publishes without publish-options, so its nodes keep the
	// configuration they have: on an anchor, the other library's run
	// made them public. Deleted, they come back with the defaults.
	sl := a
	if b.lib == "slixmpp" {
		sl = b
	}
	sl.ok(cmd("avatar-delete"))
	for _, ag := range []*agent{a, b} {
		ag.ok(cmd("presence", "status", ""))
	}
	aliceID, _ := avatarRoundTrip(c, a, b, c.srv.bare("alice"), false)
	bobID, _ := avatarRoundTrip(c, b, a, c.srv.bare("bob"), false)

	s := c.loginArgs(c.lib, pep, "carol/1")[0]
	for _, p := range []struct{ owner, id string }{{c.srv.bare("alice"), aliceID}, {c.srv.bare("bob"), bobID}} {
		r := s.do(cmd("avatar-get", "jid", p.owner, "id", p.id))
		switch {
		case r.Error == "":
			t.Errorf("%s, no contact of %s, fetched the avatar %s (%d base64 characters): the access model must refuse a stranger", s, p.owner, p.id, len(r.Data))
		case c.srv.proc != nil && r.Error != "not-authorized":
			t.Errorf("%s fetching %s's avatar: %s, want not-authorized (XEP-0060 §6.5.9.3, presence access model)", s, p.owner, r.Error)
		default:
			t.Logf("%s fetching %s's avatar: refused with %s", s, p.owner, r.Error)
		}
	}

	// Gajim's "public avatar": the nbxmpp user publishes again with
	// access_model open; the nodes are presence, so the server answers
	// precondition-not-met (XEP-0060 §7.1.5), nbxmpp reconfigures both
	// nodes to the options and publishes again. Then carol may read it.
	nb, peer, owner := a, b, c.srv.bare("alice")
	if b.lib == "nbxmpp" {
		nb, peer, owner = b, a, c.srv.bare("bob")
	}
	id, data := avatarRoundTrip(c, nb, peer, owner, true)
	r := s.ok(cmd("avatar-get", "jid", owner, "id", id))
	if got, err := base64.StdEncoding.DecodeString(r.Data); err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s fetched %s's public avatar %s as %q (%v), not the %d bytes published", s, owner, id, r.Data, err, len(data))
	}
	a.quit()
	b.quit()
	s.quit()
}

// avatarRoundTrip has pub publish a fresh avatar (public: with access
// model open, nbxmpp only), sub receive its metadata notification from
// owner (pub's bare JID) and fetch its data, and checks every value on
// the way. It returns the avatar's id and bytes.
func avatarRoundTrip(c *check, pub, sub *agent, owner string, public bool) (string, []byte) {
	t := c.t
	t.Helper()
	data := randomPNG(t)
	sum := sha1.Sum(data)
	id := hex.EncodeToString(sum[:])
	publish := cmd("avatar-publish", "data", base64.StdEncoding.EncodeToString(data), "type", "image/png",
		"width", avatarSide, "height", avatarSide)
	if public {
		publish["public"] = true
	}
	r := pub.ok(publish)
	if r.ID != id {
		t.Fatalf("%s published its avatar as %q, want the SHA-1 of its bytes %s", pub, r.ID, id)
	}
	n := sub.wait("the avatar metadata notification "+id+" from "+owner, func(e event) bool {
		return e.Event == "avatar-metadata" && e.Avatar != nil && e.Avatar.ID == id
	})
	want := avatarInfo{ID: id, Bytes: len(data), Type: "image/png", Width: avatarSide, Height: avatarSide}
	if n.From != owner || n.ID != id || *n.Avatar != want {
		t.Errorf("%s got the metadata notification from %q, item %q, %+v; want from %s, item %s, %+v", sub, n.From, n.ID, *n.Avatar, owner, id, want)
	}
	g := sub.ok(cmd("avatar-get", "jid", owner, "id", id))
	got, err := base64.StdEncoding.DecodeString(g.Data)
	if err != nil {
		t.Fatalf("%s fetched %s's avatar %s as %q: %v", sub, owner, id, g.Data, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s fetched %s's avatar %s as %d bytes that differ from the %d published", sub, owner, id, len(got), len(data))
	}
	return id, data
}

// randomPNG is an avatarSide-pixel square PNG of random colours.
func randomPNG(t *testing.T) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, avatarSide, avatarSide))
	px := make([]byte, 3*avatarSide*avatarSide)
	rand.Read(px)
	for i := 0; i < avatarSide*avatarSide; i++ {
		img.Set(i%avatarSide, i/avatarSide, color.NRGBA{px[3*i], px[3*i+1], px[3*i+2], 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The account feature of avatar conversion (XEP-0398 §2).
const nsVCardConversion = "urn:xmpp:pep-vcard-conversion:0"

// checkVCardAvatar: avatar conversion between PEP and vcard-temp
// (XEP-0398), between a user on nbxmpp, which publishes and reads avatars
// in PEP only (XEP-0084; --pep, as in checkAvatar), and one on slixmpp
// with vCard-based avatars only (xep_0153, XEP-0153: its PHOTO in the
// vCard, its hash on its presence); alice is on the check's library, bob
// on the other, mutual contacts (as the subscription check leaves them).
// On Starling the account must advertise urn:xmpp:pep-vcard-conversion:0;
// an anchor that does not is skipped.
//
// PEP to vCard: the nbxmpp user sets its vCard with FN and NICKNAME
// (XEP-0054), publishes a fresh avatar and sends presence again, as Gajim
// does after changing its avatar. The slixmpp user fetches the nbxmpp
// user's vCard and must find a PHOTO with TYPE image/png and a BINVAL of
// exactly the bytes published (XEP-0398 §3.1), FN and NICKNAME as they
// were, and gets the nbxmpp user's presence with the
// vcard-temp:x:update photo the SHA-1 of those bytes, which the server
// put there (XEP-0398 §4; nbxmpp sends none, as Gajim sends none to a
// server with avatar conversion).
//
// vCard to PEP: the slixmpp user sets a vCard with a new PHOTO
// (xep_0153 set_avatar: the vCard fetched, PHOTO set, published). The
// nbxmpp user must get the avatar metadata notification from the slixmpp
// user's bare JID with item and info id the SHA-1 of the new bytes, their
// size and type (and width and height, if given, right), and fetch
// exactly those bytes from urn:xmpp:avatar:data (XEP-0398 §3.2).
//
// The check's library goes first.
func checkVCardAvatar(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	args := map[string][]string{"nbxmpp": {"--pep"}, "slixmpp": {"--vcard-avatar"}}
	a := c.loginArgs(c.lib, args[c.lib], "alice/1")[0]
	b := c.loginArgs(other, args[other], "bob/1")[0]
	nb, sl := a, b
	if nb.lib != "nbxmpp" {
		nb, sl = b, a
	}
	nbOwner, slOwner := c.srv.bare(strings.Split(nb.name, "/")[0]), c.srv.bare(strings.Split(sl.name, "/")[0])

	features := nb.ok(cmd("disco-features", "jid", nbOwner)).Features
	if !slices.Contains(features, nsVCardConversion) {
		if c.srv.proc == nil {
			t.Skipf("%s does not advertise %s on accounts (features %q)", c.srv.anchor, nsVCardConversion, features)
		}
		t.Errorf("%s's account does not advertise %s (features %q)", nbOwner, nsVCardConversion, features)
	}
	for _, ag := range []*agent{a, b} {
		ag.ok(cmd("presence", "status", ""))
	}

	pepToVCard := func() {
		t.Helper()
		card := map[string]string{"FN": "Avatar " + c.tag, "NICKNAME": "avatar-" + c.tag}
		nb.ok(cmd("vcard-set", "fn", card["FN"], "nickname", card["NICKNAME"]))
		data := randomPNG(t)
		id := sha1Hex(data)
		r := nb.ok(cmd("avatar-publish", "data", base64.StdEncoding.EncodeToString(data), "type", "image/png",
			"width", avatarSide, "height", avatarSide))
		if r.ID != id {
			t.Fatalf("%s published its avatar as %q, want the SHA-1 of its bytes %s", nb, r.ID, id)
		}
		nb.ok(cmd("presence", "status", "new avatar "+id))

		v := sl.ok(cmd("vcard-get", "jid", nbOwner)).VCard
		got, err := base64.StdEncoding.DecodeString(v["PHOTO/BINVAL"])
		switch {
		case v["PHOTO/BINVAL"] == "":
			t.Errorf("%s fetched %s's vCard without a PHOTO BINVAL after %s published the PEP avatar %s (vCard: %q)", sl, nbOwner, nb, id, v)
		case err != nil || !bytes.Equal(got, data):
			t.Errorf("%s fetched %s's vCard PHOTO as %d bytes (%v) that differ from the %d of the PEP avatar %s", sl, nbOwner, len(got), err, len(data), id)
		}
		if v["PHOTO/TYPE"] != "image/png" {
			t.Errorf("%s fetched %s's vCard PHOTO with TYPE %q, want image/png", sl, nbOwner, v["PHOTO/TYPE"])
		}
		for k, want := range card {
			if v[k] != want {
				t.Errorf("%s fetched %s's vCard with %s %q after the PEP avatar %s, want the %q set before it: the PHOTO goes into the vCard, the rest stays", sl, nbOwner, k, v[k], id, want)
			}
		}
		sl.wait("presence from "+nb.jid+" with the vcard-temp:x:update photo "+id, func(e event) bool {
			return isPresence(nb.jid, "available")(e) && e.Photo != nil && *e.Photo == id
		})
	}

	vcardToPEP := func() {
		t.Helper()
		data := randomPNG(t)
		id := sha1Hex(data)
		r := sl.ok(cmd("vcard-avatar-set", "data", base64.StdEncoding.EncodeToString(data), "type", "image/png"))
		if r.ID != id {
			t.Fatalf("%s set its vCard avatar as %q, want the SHA-1 of its bytes %s", sl, r.ID, id)
		}
		n := nb.wait("the avatar metadata notification "+id+" from "+slOwner, func(e event) bool {
			return e.Event == "avatar-metadata" && e.Avatar != nil && e.Avatar.ID == id
		})
		in := *n.Avatar
		if n.From != slOwner || n.ID != id || in.Bytes != len(data) || in.Type != "image/png" ||
			(in.Width != -1 && in.Width != avatarSide) || (in.Height != -1 && in.Height != avatarSide) {
			t.Errorf("%s got the metadata notification from %q, item %q, %+v; want from %s, item %s, %d bytes of image/png (%d×%d if given)",
				nb, n.From, n.ID, in, slOwner, id, len(data), avatarSide, avatarSide)
		}
		g := nb.ok(cmd("avatar-get", "jid", slOwner, "id", id))
		if got, err := base64.StdEncoding.DecodeString(g.Data); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s fetched %s's avatar %s as %d bytes (%v) that differ from the %d of the vCard PHOTO", nb, slOwner, id, len(got), err, len(data))
		}
		nb.wait("presence from "+sl.jid+" with the vcard-temp:x:update photo "+id, func(e event) bool {
			return isPresence(sl.jid, "available")(e) && e.Photo != nil && *e.Photo == id
		})
	}

	if c.lib == "nbxmpp" {
		pepToVCard()
		vcardToPEP()
	} else {
		vcardToPEP()
		pepToVCard()
	}
	a.quit()
	b.quit()
}

// sha1Hex is the hex SHA-1 of data: a XEP-0084 and XEP-0153 avatar id.
func sha1Hex(data []byte) string {
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}
