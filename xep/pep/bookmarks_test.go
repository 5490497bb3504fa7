package pep

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
)

// request is an IQ as dispatch hands it to an AfterSet observer.
func request(t *testing.T, from, payload string) dispatch.Request {
	t.Helper()
	st, err := stanza.ParseElement([]byte("<iq type='set' id='x' from='" + from + "'>" + payload + "</iq>"))
	if err != nil {
		t.Fatal(err)
	}
	name, p, _ := st.Payload()
	return dispatch.Request{Stanza: st, To: st.From.Bare(), Name: name, Payload: p}
}

// nativeItems are the XEP-0402 items of alice, by id.
func nativeItems(t *testing.T, f *fixture) map[string]string {
	t.Helper()
	items, err := f.s.Store.PubSubItems(t.Context(), "localhost", "alice", NSBookmarks, storage.PubSubItemsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, it := range items {
		out[it.ID] = string(it.Payload)
	}
	return out
}

func privateDoc(t *testing.T, f *fixture, user string) string {
	t.Helper()
	d, err := f.s.Store.Document(t.Context(), "localhost", user, privateKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(d)
}

func legacyPEP(t *testing.T, f *fixture) string {
	t.Helper()
	items, err := f.s.Store.PubSubItems(t.Context(), "localhost", "alice", NSLegacyBookmarks, storage.PubSubItemsQuery{})
	if err != nil || len(items) != 1 || items[0].ID != legacyItem {
		t.Fatalf("storage:bookmarks node: %v %v", items, err)
	}
	return string(items[0].Payload)
}

// events are the ids of the bookmark notifications (published and
// retracted) alice's session got, in order.
func events(got []string, node string) []string {
	var ids []string
	for _, m := range got {
		if !strings.Contains(m, "node='"+node+"'") {
			continue
		}
		for _, x := range eventID.FindAllStringSubmatch(m, -1) {
			kind := "+"
			if x[1] == "retract" {
				kind = "-"
			}
			ids = append(ids, kind+x[2])
		}
	}
	return ids
}

var eventID = regexp.MustCompile(`<(item|retract) id='([^']*)'`)

// TestBookmarksSync: XEP-0402 §5.3 both ways, through all three forms.
func TestBookmarksSync(t *testing.T) {
	f := newFixture(t)
	f.s.Options().MaxNodes = 10
	ctx := t.Context()
	const priv = "<storage xmlns='storage:bookmarks'>" +
		"<conference jid='tea@muc.example' name='Tea &amp; cake' autojoin='true'><nick>Al</nick><x xmlns='urn:example:ext' v='1'/></conference>" +
		"<url name='Home' url='https://example.org/'/>" +
		"<conference jid='ops@muc.example'><password>s3</password></conference>" +
		"</storage>"

	// Gajim or Dino stores the list in private XML storage.
	if err := f.s.Store.PutDocument(ctx, "localhost", "alice", privateKey, []byte(priv)); err != nil {
		t.Fatal(err)
	}
	f.s.privateSet(ctx, request(t, "alice@localhost/phone", "<query xmlns='jabber:iq:private'>"+priv+"</query>"))
	got := nativeItems(t, f)
	want := map[string]string{
		"tea@muc.example": "<conference xmlns='urn:xmpp:bookmarks:1' name='Tea &amp; cake' autojoin='true'><nick>Al</nick><extensions><x xmlns='urn:example:ext' v='1'/></extensions></conference>",
		"ops@muc.example": "<conference xmlns='urn:xmpp:bookmarks:1'><password>s3</password></conference>",
	}
	if len(got) != 2 || got["tea@muc.example"] != want["tea@muc.example"] || got["ops@muc.example"] != want["ops@muc.example"] {
		t.Fatalf("XEP-0402 items: %q", got)
	}
	if l := legacyPEP(t, f); l != priv {
		t.Errorf("storage:bookmarks node: %s", l)
	}
	node, _ := f.s.Store.PubSubNode(ctx, "localhost", "alice", NSBookmarks)
	if node.Config.AccessModel != storage.AccessWhitelist || node.Config.SendLastPublishedItem != "never" || node.Config.MaxItems != storage.PubSubMaxItemsMax {
		t.Errorf("XEP-0402 node configuration: %+v", node.Config)
	}
	// Only the owner is notified of whitelist nodes.
	if ev := events(f.alice.take(), NSBookmarks); len(ev) != 2 {
		t.Errorf("alice's notifications: %q", ev)
	}
	if got := f.bob.take(); len(got) != 0 {
		t.Errorf("bob got %q", got)
	}

	// Conversations adds one over XEP-0402: both old forms follow, the
	// URL bookmark kept.
	pub := "<pubsub xmlns='" + NS + "'><publish node='urn:xmpp:bookmarks:1'><item id='new@muc.example'><conference xmlns='urn:xmpp:bookmarks:1' name='New' autojoin='1'/></item></publish>" +
		"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + NSPublishOptions + "</value></field>" +
		"<field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>max</value></field>" +
		"<field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#persist_items'><value>true</value></field></x></publish-options></pubsub>"
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", pub); err != nil {
		t.Fatalf("publish with XEP-0402's publish-options: %v", err)
	}
	wantPriv := "<storage xmlns='storage:bookmarks'>" +
		"<conference jid='tea@muc.example' name='Tea &amp; cake' autojoin='true'><nick>Al</nick><x xmlns='urn:example:ext' v='1'/></conference>" +
		"<conference jid='ops@muc.example'><password>s3</password></conference>" +
		"<conference jid='new@muc.example' name='New' autojoin='true'></conference>" +
		"<url name='Home' url='https://example.org/'/></storage>"
	if d := privateDoc(t, f, "alice"); d != wantPriv {
		t.Errorf("private storage after a XEP-0402 publish:\n%s\nwant\n%s", d, wantPriv)
	}
	if l := legacyPEP(t, f); l != wantPriv {
		t.Errorf("storage:bookmarks node after a XEP-0402 publish: %s", l)
	}
	if ev := events(f.alice.take(), NSLegacyBookmarks); len(ev) != 1 || ev[0] != "+current" {
		t.Errorf("storage:bookmarks notifications: %q", ev)
	}

	// Retracting one removes it from the old forms.
	retract := "<pubsub xmlns='" + NS + "'><retract node='urn:xmpp:bookmarks:1' notify='true'><item id='ops@muc.example'/></retract></pubsub>"
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", retract); err != nil {
		t.Fatal(err)
	}
	if d := privateDoc(t, f, "alice"); strings.Contains(d, "ops@") || !strings.Contains(d, "new@") {
		t.Errorf("private storage after a retraction: %s", d)
	}
	f.alice.take()

	// Monal publishes a replacement list on the storage:bookmarks node:
	// tea renamed, new gone, ops back; unchanged items are not notified.
	legacy := "<storage xmlns='storage:bookmarks'>" +
		"<conference jid='tea@muc.example' name='Tea' autojoin='true'><nick>Al</nick><x xmlns='urn:example:ext' v='1'/></conference>" +
		"<conference jid='ops@muc.example' autojoin='false'><password>s3</password></conference></storage>"
	pub = "<pubsub xmlns='" + NS + "'><publish node='storage:bookmarks'><item id='current'>" + legacy + "</item></publish></pubsub>"
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", pub); err != nil {
		t.Fatal(err)
	}
	got = nativeItems(t, f)
	if len(got) != 2 || !strings.Contains(got["tea@muc.example"], "name='Tea'") || got["ops@muc.example"] != want["ops@muc.example"] {
		t.Errorf("XEP-0402 items after a storage:bookmarks publish: %q", got)
	}
	if ev := events(f.alice.take(), NSBookmarks); strings.Join(ev, " ") != "+tea@muc.example +ops@muc.example -new@muc.example" {
		t.Errorf("XEP-0402 notifications: %q", ev)
	}
	if d := privateDoc(t, f, "alice"); d != legacy {
		t.Errorf("private storage after a storage:bookmarks publish: %s", d)
	}

	// The same list again changes nothing and notifies nobody of XEP-0402.
	f.s.privateSet(ctx, request(t, "alice@localhost/phone", "<query xmlns='jabber:iq:private'>"+legacy+"</query>"))
	if ev := events(f.alice.take(), NSBookmarks); len(ev) != 0 {
		t.Errorf("an unchanged list notified %q", ev)
	}
	// An empty element removes them all.
	f.s.privateSet(ctx, request(t, "alice@localhost/phone", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"))
	if got := nativeItems(t, f); len(got) != 0 {
		t.Errorf("after an empty list: %q", got)
	}
	// Someone else's private set converts nothing of alice's.
	r := request(t, "bob@localhost/desk", "<query xmlns='jabber:iq:private'>"+legacy+"</query>")
	r.To = jid.MustParse("alice@localhost")
	f.s.privateSet(ctx, r)
	if got := nativeItems(t, f); len(got) != 0 {
		t.Errorf("after bob's set to alice: %q", got)
	}
}

// TestBookmarksMigrate: bookmarks kept in private storage before the
// PEP forms existed are what a first XEP-0402 read returns.
func TestBookmarksMigrate(t *testing.T) {
	f := newFixture(t)
	f.s.Options().MaxNodes = 10
	ctx := context.Background()
	old := "<storage xmlns='storage:bookmarks'><conference jid='old@muc.example' name='Old'/></storage>"
	if err := f.s.Store.PutDocument(ctx, "localhost", "bob", privateKey, []byte(old)); err != nil {
		t.Fatal(err)
	}
	res, err := f.iq(t, f.s.handle, "bob@localhost/desk", "bob@localhost", "get", "<pubsub xmlns='"+NS+"'><items node='urn:xmpp:bookmarks:1'/></pubsub>")
	if err != nil || !strings.Contains(string(res), "<item id='old@muc.example'><conference xmlns='urn:xmpp:bookmarks:1' name='Old'>") {
		t.Errorf("first read: %s %v", res, err)
	}
	// Nobody else's read migrates (or sees) them.
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "get", "<pubsub xmlns='"+NS+"'><items node='urn:xmpp:bookmarks:1'/></pubsub>"); cond(err) != stanza.ItemNotFound {
		t.Errorf("alice's own, with nothing stored: %v", err)
	}
}
