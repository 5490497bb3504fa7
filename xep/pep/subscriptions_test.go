package pep

import (
	"context"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/stanza"
)

// remoteRoute records what the router hands federation.
type remoteRoute struct {
	mu  sync.Mutex
	got []string
}

func (r *remoteRoute) RouteRemote(_ context.Context, st *stanza.Stanza) {
	r.mu.Lock()
	r.got = append(r.got, string(st.Raw))
	r.mu.Unlock()
}

func (r *remoteRoute) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// subFixture is the fixture with eve (a stranger) available too, alice's
// nickname node published (open access, or model), and the router's
// federation recorded.
func subFixture(t *testing.T, model string) (*fixture, *session, *remoteRoute) {
	t.Helper()
	f := newFixture(t)
	eve := &session{full: jid.MustParse("eve@localhost/tablet"), available: true}
	if err := f.r.Bind(eve, 0); err != nil {
		t.Fatal(err)
	}
	remote := &remoteRoute{}
	f.r.SetRemote(remote)
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+nick+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
	f.configure(t, "pubsub#access_model", model)
	for _, s := range []*session{f.alice, f.bob, f.carol, eve} {
		s.take()
	}
	return f, eve, remote
}

func (f *fixture) configure(t *testing.T, field, value string) {
	t.Helper()
	form := "<pubsub xmlns='" + NSOwner + "'><configure node='urn:xmpp:nickname'><x xmlns='jabber:x:data' type='submit'><field var='" +
		field + "'><value>" + value + "</value></field></x></configure></pubsub>"
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set", form); err != nil {
		t.Fatal(err)
	}
}

// subscribe sends a subscription from from for j to alice's nickname
// node, then what follows its result (dispatch's AfterSet).
func (f *fixture) subscribe(t *testing.T, from, j string) (string, error) {
	t.Helper()
	payload := "<pubsub xmlns='" + NS + "'><subscribe node='urn:xmpp:nickname' jid='" + j + "'/></pubsub>"
	raw := "<iq type='set' id='x' from='" + from + "' to='alice@localhost'>" + payload + "</iq>"
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	name, p, _ := st.Payload()
	req := dispatch.Request{Stanza: st, To: jid.MustParse("alice@localhost"), Name: name, Payload: p}
	res, err := f.s.handle(t.Context(), req)
	if err == nil {
		f.s.subscribed(t.Context(), req)
	}
	return string(res), err
}

func (f *fixture) publishNick(t *testing.T, name string) {
	t.Helper()
	item := "<publish node='urn:xmpp:nickname'><item id='n1'><nick xmlns='http://jabber.org/protocol/nick'>" + name + "</nick></item></publish>"
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+item+"</pubsub>"); err != nil {
		t.Fatal(err)
	}
}

func appErr(err error) string {
	if se, ok := err.(*stanza.Error); ok {
		return se.Condition + " " + string(se.App)
	}
	return cond(err)
}

// TestSubscribe: §6.1's checks and result, and the last item after it
// (§6.1.7) at the subscribed JID.
func TestSubscribe(t *testing.T) {
	f, eve, remote := subFixture(t, "open")
	for _, tc := range []struct {
		from, j string
		want    string // condition and application error
	}{
		{"eve@localhost/tablet", "bob@localhost", stanza.BadRequest + " <invalid-jid"},
		{"eve@localhost/tablet", "eve@localhost/other", stanza.BadRequest + " <invalid-jid"},
		{"eve@localhost/tablet", "", stanza.BadRequest + " <invalid-jid"},
		{"eve@localhost/tablet", "eve@@localhost", stanza.BadRequest + " <invalid-jid"},
	} {
		if _, err := f.subscribe(t, tc.from, tc.j); !strings.HasPrefix(appErr(err), tc.want) {
			t.Errorf("%s subscribes %q: %s, want %s", tc.from, tc.j, appErr(err), tc.want)
		}
	}
	for _, tc := range []struct{ payload, want string }{
		{"<subscribe jid='eve@localhost'/>", stanza.BadRequest + " <nodeid-required"},
		{"<subscribe node='none' jid='eve@localhost'/>", stanza.ItemNotFound + " "},
	} {
		_, err := f.iq(t, f.s.handle, "eve@localhost/tablet", "alice@localhost", "set", "<pubsub xmlns='"+NS+"'>"+tc.payload+"</pubsub>")
		if !strings.HasPrefix(appErr(err), tc.want) {
			t.Errorf("%s: %s, want %s", tc.payload, appErr(err), tc.want)
		}
	}
	if got := eve.take(); len(got) != 0 {
		t.Errorf("eve, refused, got %q", got)
	}

	// Open: a stranger subscribes, by bare JID, and gets the last item
	// there (the router's rules: her available session).
	res, err := f.subscribe(t, "eve@localhost/tablet", "eve@localhost")
	if err != nil || res != "<pubsub xmlns='"+NS+"'><subscription node='urn:xmpp:nickname' jid='eve@localhost' subscription='subscribed'/></pubsub>" {
		t.Fatalf("eve subscribes: %s %v", res, err)
	}
	if got := eve.take(); len(got) != 1 || !strings.Contains(got[0], "to='eve@localhost'") || !strings.Contains(got[0], "<item id='n1'>") {
		t.Errorf("eve's last item: %q", got)
	}
	// A user of another server too, by full JID, routed to federation.
	if _, err := f.subscribe(t, "mallory@remote.test/m", "mallory@remote.test/m"); err != nil {
		t.Fatal(err)
	}
	if got := remote.take(); len(got) != 1 || !strings.Contains(got[0], "to='mallory@remote.test/m'") || !strings.Contains(got[0], "from='alice@localhost'") {
		t.Errorf("mallory's last item: %q", got)
	}

	// send_last_published_item never: no last item; on_sub: one.
	f.configure(t, "pubsub#send_last_published_item", "never")
	if _, err := f.subscribe(t, "eve@localhost/tablet", "eve@localhost/tablet"); err != nil {
		t.Fatal(err)
	}
	if got := eve.take(); len(got) != 0 {
		t.Errorf("never: eve got %q", got)
	}
	f.configure(t, "pubsub#send_last_published_item", "on_sub")
	if _, err := f.subscribe(t, "eve@localhost/tablet", "eve@localhost/tablet"); err != nil {
		t.Fatal(err)
	}
	if got := eve.take(); len(got) != 1 || !strings.Contains(got[0], "to='eve@localhost/tablet'") {
		t.Errorf("on_sub: eve got %q", got)
	}

	// The per-node limit (max_subscriptions_per_node): three are there.
	f.s.Options().MaxSubscriptionsPerNode = 3
	if _, err := f.subscribe(t, "bob@localhost/desk", "bob@localhost"); !strings.HasPrefix(appErr(err), stanza.PolicyViolation+" <too-many-subscriptions") {
		t.Errorf("a fourth subscription: %s", appErr(err))
	}
}

// TestSubscribeAccessModels: the access model decides who subscribes
// (§6.1.3.2–4).
func TestSubscribeAccessModels(t *testing.T) {
	for _, tc := range []struct {
		model, from, want string
	}{
		{"presence", "eve@localhost/tablet", stanza.NotAuthorized + " <presence-subscription-required"},
		{"presence", "mallory@remote.test/m", stanza.NotAuthorized + " <presence-subscription-required"},
		{"presence", "carol@localhost/laptop", ""},
		{"roster", "eve@localhost/tablet", stanza.NotAuthorized + " <not-in-roster-group"},
		{"roster", "bob@localhost/desk", ""},
		{"whitelist", "bob@localhost/desk", stanza.NotAllowed + " <closed-node"},
		{"whitelist", "alice@localhost/phone", ""},
		{"open", "mallory@remote.test/m", ""},
	} {
		f, _, _ := subFixture(t, tc.model)
		_, err := f.subscribe(t, tc.from, jid.MustParse(tc.from).Bare().String())
		if got := appErr(err); (tc.want == "") != (err == nil) || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s subscribes: %s, want %q", tc.model, tc.from, got, tc.want)
		}
	}
	// A whitelist member subscribes.
	f, eve, _ := subFixture(t, "whitelist")
	set := "<pubsub xmlns='" + NSOwner + "'><affiliations node='urn:xmpp:nickname'><affiliation jid='eve@localhost' affiliation='member'/></affiliations></pubsub>"
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set", set); err != nil {
		t.Fatal(err)
	}
	if _, err := f.subscribe(t, "eve@localhost/tablet", "eve@localhost"); err != nil {
		t.Errorf("a member subscribes: %v", err)
	}
	if got := eve.take(); len(got) != 1 {
		t.Errorf("the member's last item: %q", got)
	}
}

// TestUnsubscribe: §6.2 and its errors (§6.2.3).
func TestUnsubscribe(t *testing.T) {
	f, _, _ := subFixture(t, "open")
	if _, err := f.subscribe(t, "eve@localhost/tablet", "eve@localhost"); err != nil {
		t.Fatal(err)
	}
	unsub := func(from, attrs string) error {
		_, err := f.iq(t, f.s.handle, from, "alice@localhost", "set", "<pubsub xmlns='"+NS+"'><unsubscribe "+attrs+"/></pubsub>")
		return err
	}
	for _, tc := range []struct{ from, attrs, want string }{
		{"bob@localhost/desk", "node='urn:xmpp:nickname' jid='eve@localhost'", stanza.Forbidden + " "},
		{"eve@localhost/tablet", "node='urn:xmpp:nickname'", stanza.BadRequest + " <invalid-jid"},
		{"eve@localhost/tablet", "jid='eve@localhost'", stanza.BadRequest + " <nodeid-required"},
		{"eve@localhost/tablet", "node='none' jid='eve@localhost'", stanza.ItemNotFound + " "},
		{"eve@localhost/tablet", "node='urn:xmpp:nickname' jid='eve@localhost' subid='1'", stanza.NotAcceptable + " <invalid-subid"},
		{"eve@localhost/tablet", "node='urn:xmpp:nickname' jid='eve@localhost/tablet'", stanza.UnexpectedRequest + " <not-subscribed"},
		{"eve@localhost/tablet", "node='urn:xmpp:nickname' jid='eve@localhost'", ""},
		{"eve@localhost/tablet", "node='urn:xmpp:nickname' jid='eve@localhost'", stanza.UnexpectedRequest + " <not-subscribed"},
	} {
		err := unsub(tc.from, tc.attrs)
		if got := appErr(err); (tc.want == "") != (err == nil) || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s unsubscribes %s: %s, want %q", tc.from, tc.attrs, got, tc.want)
		}
	}
}

// TestSubscriptionLists: §5.6 (the requester's own, of its bare and
// full JIDs) and §8.8 (the owner's).
func TestSubscriptionLists(t *testing.T) {
	f, _, _ := subFixture(t, "open")
	for _, j := range []string{"eve@localhost", "eve@localhost/tablet"} {
		if _, err := f.subscribe(t, "eve@localhost/tablet", j); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.subscribe(t, "bob@localhost/desk", "bob@localhost/desk"); err != nil {
		t.Fatal(err)
	}
	mine := "<pubsub xmlns='" + NS + "'><subscriptions/></pubsub>"
	res, err := f.iq(t, f.s.handle, "eve@localhost/other", "alice@localhost", "get", mine)
	want := "<pubsub xmlns='" + NS + "'><subscriptions><subscription node='urn:xmpp:nickname' jid='eve@localhost' subscription='subscribed'/>" +
		"<subscription node='urn:xmpp:nickname' jid='eve@localhost/tablet' subscription='subscribed'/></subscriptions></pubsub>"
	if err != nil || string(res) != want {
		t.Errorf("eve's subscriptions:\n\t%s %v\nwant\n\t%s", res, err, want)
	}
	res, err = f.iq(t, f.s.handle, "carol@localhost/laptop", "alice@localhost", "get", "<pubsub xmlns='"+NS+"'><subscriptions node='urn:xmpp:nickname'/></pubsub>")
	if want := "<pubsub xmlns='" + NS + "'><subscriptions node='urn:xmpp:nickname'></subscriptions></pubsub>"; err != nil || string(res) != want {
		t.Errorf("carol's subscriptions: %s %v", res, err)
	}

	// §8.8.1: the owner's view; others are forbidden.
	owner := "<pubsub xmlns='" + NSOwner + "'><subscriptions node='urn:xmpp:nickname'/></pubsub>"
	res, err = f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "get", owner)
	want = "<pubsub xmlns='" + NSOwner + "'><subscriptions node='urn:xmpp:nickname'><subscription jid='bob@localhost/desk' subscription='subscribed'/>" +
		"<subscription jid='eve@localhost' subscription='subscribed'/><subscription jid='eve@localhost/tablet' subscription='subscribed'/></subscriptions></pubsub>"
	if err != nil || string(res) != want {
		t.Errorf("the node's subscriptions:\n\t%s %v\nwant\n\t%s", res, err, want)
	}
	if _, err := f.iq(t, f.s.handleOwner, "eve@localhost/tablet", "alice@localhost", "get", owner); cond(err) != stanza.Forbidden {
		t.Errorf("eve reads the node's subscriptions: %v", err)
	}

	// §8.8.2: the owner changes them, all or nothing.
	set := func(entries string) error {
		_, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set",
			"<pubsub xmlns='"+NSOwner+"'><subscriptions node='urn:xmpp:nickname'>"+entries+"</subscriptions></pubsub>")
		return err
	}
	for _, tc := range []struct{ entries, want string }{
		{"<subscription jid='carol@localhost' subscription='subscribed'/><subscription jid='x@@y' subscription='none'/>", stanza.JIDMalformed},
		{"<subscription jid='carol@localhost' subscription='pending'/>", stanza.FeatureNotImplemented},
		{"<subscription jid='carol@localhost' subscription='lord'/>", stanza.BadRequest},
		{"<subscription jid='carol@localhost' subscription='subscribed'/><subscription jid='eve@localhost' subscription='none'/><subscription jid='nobody@localhost' subscription='none'/>", ""},
	} {
		if got := cond(set(tc.entries)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.entries, got, tc.want)
		}
	}
	got, err := f.s.Store.PubSubSubscriptions(t.Context(), "localhost", "alice", "urn:xmpp:nickname")
	var jids []string
	for _, s := range got {
		jids = append(jids, s.JID)
	}
	if err != nil || strings.Join(jids, " ") != "bob@localhost/desk carol@localhost eve@localhost/tablet" {
		t.Errorf("after the owner's changes: %q %v", jids, err)
	}
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set",
		"<pubsub xmlns='"+NSOwner+"'><subscriptions node='none'><subscription jid='carol@localhost' subscription='subscribed'/></subscriptions></pubsub>"); cond(err) != stanza.ItemNotFound {
		t.Errorf("a missing node's subscriptions: %v", err)
	}
}

// TestSubscriberNotifications: explicit subscribers are notified at the
// JID they subscribed, once per session whatever the paths, while the
// access model lets them read; retractions, purges and deletions too;
// deletion ends the subscriptions; blocking applies.
func TestSubscriberNotifications(t *testing.T) {
	f, eve, remote := subFixture(t, "open")
	// eve (a stranger) by bare JID; bob (a contact with +notify) by
	// bare and full JID; carol (a contact without +notify) by full JID;
	// mallory on another server.
	for _, s := range [][2]string{
		{"eve@localhost/tablet", "eve@localhost"},
		{"bob@localhost/desk", "bob@localhost"},
		{"bob@localhost/desk", "bob@localhost/desk"},
		{"carol@localhost/laptop", "carol@localhost/laptop"},
		{"mallory@remote.test/m", "mallory@remote.test"},
	} {
		if _, err := f.subscribe(t, s[0], s[1]); err != nil {
			t.Fatal(err)
		}
	}
	f.configure(t, "pubsub#send_last_published_item", "on_sub_and_presence") // no change: nothing sent
	for _, s := range []*session{f.alice, f.bob, f.carol, eve} {
		s.take()
	}
	remote.take()

	check := func(what, contains string, want map[*session]string, remoteTo string) {
		t.Helper()
		for sess, to := range want {
			got := sess.take()
			if to == "" {
				if len(got) != 0 {
					t.Errorf("%s: %s got %q", what, sess.full, got)
				}
				continue
			}
			if len(got) != 1 || !strings.Contains(got[0], "to='"+to+"'") || !strings.Contains(got[0], contains) {
				t.Errorf("%s: %s got %q, want one to %s with %s", what, sess.full, got, to, contains)
			}
		}
		got := remote.take()
		if (remoteTo == "") != (len(got) == 0) || len(got) > 1 || len(got) == 1 && !strings.Contains(got[0], "to='"+remoteTo+"'") {
			t.Errorf("%s: federation got %q, want one to %q", what, got, remoteTo)
		}
	}
	all := func(eveTo string) map[*session]string {
		return map[*session]string{f.alice: "alice@localhost/phone", f.bob: "bob@localhost/desk", f.carol: "carol@localhost/laptop", eve: eveTo}
	}
	f.publishNick(t, "Alicia")
	check("publish", "<item id='n1'><nick", all("eve@localhost"), "mallory@remote.test")
	if _, err := f.iq(t, f.s.handle, "alice@localhost/phone", "alice@localhost", "set",
		"<pubsub xmlns='"+NS+"'><retract node='urn:xmpp:nickname'><item id='n1'/></retract></pubsub>"); err != nil {
		t.Fatal(err)
	}
	check("retract", "<retract id='n1'/>", all("eve@localhost"), "mallory@remote.test")
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set",
		"<pubsub xmlns='"+NSOwner+"'><purge node='urn:xmpp:nickname'/></pubsub>"); err != nil {
		t.Fatal(err)
	}
	check("purge", "<purge node='urn:xmpp:nickname'/>", all("eve@localhost"), "mallory@remote.test")

	// Presence access now: eve and mallory may no longer read, and are
	// not notified though still subscribed; carol, a contact, is.
	f.configure(t, "pubsub#access_model", "presence")
	f.publishNick(t, "Al")
	check("presence access", "<nick", all(""), "")

	// Blocking stops what reaches carol.
	f.s.Stopped = func(_ context.Context, st *stanza.Stanza) bool { return st.To.Localpart() == "carol" }
	f.publishNick(t, "A")
	check("carol blocks", "<nick", map[*session]string{f.alice: "alice@localhost/phone", f.bob: "bob@localhost/desk", f.carol: "", eve: ""}, "")
	f.s.Stopped = nil

	// Deletion is notified, and ends the subscriptions.
	f.configure(t, "pubsub#access_model", "open")
	if _, err := f.iq(t, f.s.handleOwner, "alice@localhost/phone", "alice@localhost", "set",
		"<pubsub xmlns='"+NSOwner+"'><delete node='urn:xmpp:nickname'/></pubsub>"); err != nil {
		t.Fatal(err)
	}
	check("delete", "<delete node='urn:xmpp:nickname'/>", all("eve@localhost"), "mallory@remote.test")
	f.publishNick(t, "Alice")
	check("a new node", "<nick", map[*session]string{f.alice: "alice@localhost/phone", f.bob: "bob@localhost/desk", f.carol: "", eve: ""}, "")
	subs, err := f.s.Store.PubSubSubscriptions(t.Context(), "localhost", "alice", "urn:xmpp:nickname")
	if err != nil || len(subs) != 0 {
		t.Errorf("subscriptions of the new node: %v %v", subs, err)
	}
}

// TestRegisterSubscriptionFeatures: the account lists what it does.
func TestRegisterSubscriptionFeatures(t *testing.T) {
	for _, want := range []string{NS + "#subscribe", NS + "#retrieve-subscriptions", NS + "#manage-subscriptions"} {
		found := false
		for _, f := range Features {
			found = found || f == want
		}
		if !found {
			t.Errorf("Features lack %s", want)
		}
	}
}
