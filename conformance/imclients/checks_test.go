package imclients

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// checkRoster: alice's first resource adds a contact through the library's
// roster API, and removes it. Her second resource, which fetched the roster
// and so is an interested resource (RFC 6121 §2.1.6), gets a push for each
// (§2.3.2, §2.5.2): the item as set, with subscription "none", then the item
// with subscription "remove"; a fetch afterwards no longer lists it.
func checkRoster(c *check) {
	t := c.t
	s := c.login("alice/1", "alice/2")
	r1, r2 := s[0], s[1]
	r1.ok(cmd("roster-get"))
	r2.ok(cmd("roster-get"))

	contact := "contact-" + c.tag + "@" + c.srv.domain
	name := "Contact " + c.tag
	r1.ok(cmd("roster-add", "jid", contact, "name", name, "groups", []string{"IM clients"}))
	push := r2.wait("a roster push for "+contact, isPushFor(contact))
	want := rosterItem{JID: contact, Name: name, Subscription: "none", Groups: []string{"IM clients"}}
	if !push.Item.equal(want) {
		t.Errorf("%s got the push %+v, want %+v", r2, *push.Item, want)
	}

	r1.ok(cmd("roster-remove", "jid", contact))
	push = r2.wait("a second roster push for "+contact, isPushFor(contact))
	if push.Item.Subscription != "remove" {
		t.Errorf("%s got the push %+v after the removal, want subscription \"remove\"", r2, *push.Item)
	}
	if it, found := find(r2.ok(cmd("roster-get")).Roster, contact); found {
		t.Errorf("%s's roster still lists %+v after the removal", r2, it)
	}
	r1.quit()
	r2.quit()
}

// checkSubscription: alice and bob, both available, subscribe to each
// other with the library's calls, each approving the other's request when
// it arrives (RFC 6121 §3.1.2–§3.1.5). Each sees the request come from the
// other's bare JID and the approval come back; both get the roster push
// that makes the other "both", and a fetch of each roster shows the other
// with subscription "both" and no pending request.
//
// It first removes each from the other's roster (§2.5.2), which cancels any
// subscription: on an anchor, the other library's run (or an earlier run
// of the suite) has left them subscribed. On Starling each library has a
// fresh server, and removing an item that is not there is item-not-found
// (§2.5.3).
func checkSubscription(c *check) {
	t := c.t
	s := c.login("alice/1", "bob/1")
	a, b := s[0], s[1]
	alice, bob := c.srv.bare("alice"), c.srv.bare("bob")
	for _, p := range []struct {
		ag      *agent
		contact string
	}{{a, bob}, {b, alice}} {
		if r := p.ag.do(cmd("roster-remove", "jid", p.contact)); r.Error != "" && r.Error != "item-not-found" {
			t.Fatalf("%s: removing %s from the roster: %s", p.ag, p.contact, r.Error)
		}
	}
	for _, ag := range s {
		ag.ok(cmd("roster-get"))
		ag.ok(cmd("presence", "status", ""))
	}

	subscribe := func(from, to *agent, fromBare, toBare string) {
		t.Helper()
		from.ok(cmd("subscribe", "jid", toBare))
		to.wait("a subscription request from "+fromBare, isPresence(fromBare, "subscribe"))
		to.ok(cmd("approve", "jid", fromBare))
		from.wait("the approval from "+toBare, isPresence(toBare, "subscribed"))
	}
	subscribe(a, b, alice, bob)
	subscribe(b, a, bob, alice)

	for _, p := range []struct {
		ag      *agent
		contact string
	}{{a, bob}, {b, alice}} {
		p.ag.wait("the roster push making "+p.contact+" both", func(e event) bool {
			return isPushFor(p.contact)(e) && e.Item.Subscription == "both"
		})
		it, found := find(p.ag.ok(cmd("roster-get")).Roster, p.contact)
		if !found || it.Subscription != "both" || it.Ask != "" {
			t.Errorf("%s's roster has %s as %+v (found: %v), want subscription both and no ask", p.ag, p.contact, it, found)
		}
	}
	a.quit()
	b.quit()
}

// checkPresence: alice and bob, subscribed to each other both ways (as the
// subscription check leaves them), each send available presence with a
// status text (RFC 6121 §4.2). Each sees the other's full JID available
// with that text, by broadcast or in answer to its own probe (§4.2.2,
// §4.3). When bob disconnects, alice gets unavailable presence from him
// (§4.5.2); bob's next session sees alice again, and gets unavailable
// presence when she disconnects.
func checkPresence(c *check) {
	t := c.t
	s := c.login("alice/1", "bob/1")
	a, b := s[0], s[1]
	alice, bob := c.srv.bare("alice"), c.srv.bare("bob")
	for _, p := range []struct {
		ag      *agent
		contact string
	}{{a, bob}, {b, alice}} {
		if it, _ := find(p.ag.ok(cmd("roster-get")).Roster, p.contact); it.Subscription != "both" {
			t.Fatalf("%s's roster has %s as %+v: this check needs the subscription both ways that the subscription check makes", p.ag, p.contact, it)
		}
	}

	statusA, statusB := "alice is in "+c.tag, "bob is in "+c.tag
	a.ok(cmd("presence", "status", statusA))
	b.ok(cmd("presence", "status", statusB))
	seesAvailable(c, a, b, statusB)
	seesAvailable(c, b, a, statusA)

	b.quit()
	a.wait("unavailable presence from "+b.jid, isPresence(b.jid, "unavailable"))

	b2 := c.login("bob/2")[0]
	statusB2 := "bob is back in " + c.tag
	b2.ok(cmd("presence", "status", statusB2))
	seesAvailable(c, b2, a, statusA)
	seesAvailable(c, a, b2, statusB2)
	a.quit()
	b2.wait("unavailable presence from "+a.jid, isPresence(a.jid, "unavailable"))
	b2.quit()
}

// seesAvailable waits for available presence from other's full JID at
// viewer and checks its status text.
func seesAvailable(c *check, viewer, other *agent, status string) {
	c.t.Helper()
	p := viewer.wait("available presence from "+other.jid, isPresence(other.jid, "available"))
	if p.Status != status {
		c.t.Errorf("%s sees %s available with status %q, want %q", viewer, other.jid, p.Status, status)
	}
}

// checkBlocking: bob, available, blocks alice with the library's XEP-0191
// call, and his blocklist then lists her (§3.2, §3.3). Alice's chat message
// to bob's bare JID comes back to her as an error from bob's bare JID,
// <service-unavailable/> (§3.3: the server answers a blocked contact's
// message as if the user did not exist). That error shows the server has
// dealt with her message; carol's message to bob, sent after it, then
// arrives, and nothing of alice's arrived before it, so hers was dropped,
// not late. Once bob unblocks alice (§3.4), her next message arrives.
//
// carol is the control because any message of alice's is blocked; an
// anchor must have the account.
func checkBlocking(c *check) {
	t := c.t
	s := c.login("alice/1", "bob/1", "carol/1")
	a, b, k := s[0], s[1], s[2]
	alice, bob := c.srv.bare("alice"), c.srv.bare("bob")
	b.ok(cmd("presence", "status", ""))

	b.ok(cmd("block", "jid", alice))
	if l := b.ok(cmd("blocklist")).Blocklist; !slices.Contains(l, alice) {
		t.Errorf("%s's blocklist is %q after blocking %s", b, l, alice)
	}

	blocked := "blocked-" + c.tag
	a.ok(cmd("send", "to", bob, "body", "you will not see this "+c.tag, "id", blocked))
	bounce := a.wait("the error for message "+blocked, func(e event) bool { return e.Event == "message" && e.ID == blocked })
	if bounce.Type != "error" || bounce.Error != "service-unavailable" || bounce.From != bob {
		t.Errorf("%s got back %+v for its message to blocking %s, want an error from %s with <service-unavailable/>", a, bounce, bob, bob)
	}

	control := "control-" + c.tag
	k.ok(cmd("send", "to", bob, "body", "carol's control "+c.tag, "id", control))
	got, i := b.waitIndex("carol's message "+control, func(e event) bool { return e.Event == "message" && e.ID == control })
	if got.From != k.jid || got.Body != "carol's control "+c.tag {
		t.Errorf("%s got the control message as %+v, want it from %s", b, got, k.jid)
	}
	for _, e := range b.eventsUntil(i) {
		if e.Event == "message" && (e.ID == blocked || strings.Contains(e.Body, "you will not see this")) {
			t.Errorf("%s received alice's message although it blocks her: %+v", b, e)
		}
	}

	b.ok(cmd("unblock", "jid", alice))
	unblocked := "unblocked-" + c.tag
	a.ok(cmd("send", "to", bob, "body", "after the unblock "+c.tag, "id", unblocked))
	got = b.wait("alice's message "+unblocked, func(e event) bool { return e.Event == "message" && e.ID == unblocked })
	if got.From != a.jid || got.Type != "chat" {
		t.Errorf("%s got alice's message after the unblock as %+v, want a chat message from %s", b, got, a.jid)
	}
	for _, ag := range s {
		ag.quit()
	}
}

// checkVCard: alice publishes her vCard with FN and NICKNAME through the
// library's vcard-temp call (XEP-0054 §3.2); bob fetches it from her bare
// JID with his (§3.3) and gets both values back.
func checkVCard(c *check) {
	s := c.login("alice/1", "bob/1")
	a, b := s[0], s[1]
	want := map[string]string{"FN": "Alice " + c.tag, "NICKNAME": "alice-" + c.tag}
	a.ok(cmd("vcard-set", "fn", want["FN"], "nickname", want["NICKNAME"]))
	got := b.ok(cmd("vcard-get", "jid", c.srv.bare("alice"))).VCard
	for k, v := range want {
		if got[k] != v {
			c.t.Errorf("%s fetched alice's vCard with %s %q, want %q (whole vCard: %q)", b, k, got[k], v, got)
		}
	}
	a.quit()
	b.quit()
}

// checkCarbons: alice logs in twice, once on the check's library and once
// on the other, and both enable carbons with their library's call
// (XEP-0280 §4); bob, on the check's library, is her contact, and all
// three are available (ejabberd copies to available resources only). Bob
// writes to each of alice's full JIDs in turn: the addressed session gets
// the message and the other a received carbon of it (§7). Each of
// alice's sessions writes to bob in turn: bob gets the message and the
// other a sent carbon (§8). Each carbon, as the library unwrapped it,
// holds the message as sent (from, to, type chat, id, body); slixmpp
// reports the wrapper's from too, which must be alice's bare JID (nbxmpp
// drops a carbon from anyone else before reporting it). A session that got
// a message itself gets no carbon of it, nor of what it sent.
func checkCarbons(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	s := c.login("alice/1", "bob/1")
	a1, b := s[0], s[1]
	a2 := c.loginWith(other, "alice/2")[0]
	alice := c.srv.bare("alice")
	for _, ag := range []*agent{a1, a2, b} {
		ag.ok(cmd("presence", "status", ""))
	}
	for _, ag := range []*agent{a1, a2} {
		ag.ok(cmd("carbons-enable"))
	}

	var ids []string
	expect := func(ag *agent, kind string, from, to *agent, id, body string) {
		t.Helper()
		e := ag.wait("a "+kind+" carbon of "+id, func(e event) bool { return e.Event == "carbon" && e.ID == id })
		if e.Kind != kind || e.From != from.jid || e.To != to.jid || e.Type != "chat" || e.Body != body {
			t.Errorf("%s got the carbon %+v, want a %s carbon of the chat message %s from %s to %s with body %q", ag, e, kind, id, from.jid, to.jid, body)
		}
		if e.CarbonFrom != "" && e.CarbonFrom != alice {
			t.Errorf("%s got a carbon from %s, want it from alice's bare JID %s", ag, e.CarbonFrom, alice)
		}
	}
	// exchange has from write to to, checks that to got it, and that
	// copied, alice's other session, got it as a carbon of kind.
	exchange := func(kind string, from, to, copied *agent) {
		id, body := kind+"-"+copied.lib+"-"+c.tag, kind+" "+from.jid+" "+to.jid
		ids = append(ids, id)
		from.ok(cmd("send", "to", to.jid, "body", body, "id", id))
		m := to.wait("the message "+id, func(e event) bool { return e.Event == "message" && e.ID == id })
		if m.From != from.jid || m.Body != body {
			t.Errorf("%s got %s's message as %+v", to, from, m)
		}
		expect(copied, kind, from, to, id, body)
	}
	for _, p := range [][2]*agent{{a1, a2}, {a2, a1}} {
		exchange("received", b, p[0], p[1]) // §7: bob writes to one of alice's sessions
		exchange("sent", p[0], b, p[1])     // §8: one of alice's sessions writes to bob
	}
	// Everything has arrived once its stream closes cleanly: no session
	// got a second copy of any of these messages.
	for _, ag := range []*agent{a1, a2, b} {
		ag.quit()
		seen := map[string]int{}
		for _, e := range ag.eventsUntil(len(ag.events) - 1) {
			if (e.Event == "message" || e.Event == "carbon") && slices.Contains(ids, e.ID) {
				seen[e.ID]++
			}
		}
		for id, n := range seen {
			if n > 1 {
				t.Errorf("%s got message %s %d times (directly or as a carbon)", ag, id, n)
			}
		}
	}
}

// checkOffline: alice sends a chat message to bob's bare JID while he has
// no session, and closes her stream. When bob next logs in and sends
// available presence, he gets it (RFC 6121 §8.5.2.2.1, XEP-0160 §2).
func checkOffline(c *check) {
	deliverOffline(c, nil)
}

// checkOfflineRestart is checkOffline with Starling stopped by SIGTERM and
// started again on the same data between alice's message and bob's login:
// the message is stored durably, on each backend. Skipped on an anchor,
// which this test did not start and does not restart.
func checkOfflineRestart(c *check) {
	if c.srv.proc == nil {
		c.t.Skipf("%s was not started by this test and is not restarted; the offline check covers the rest", c.srv.anchor)
	}
	deliverOffline(c, c.srv.restart)
}

// deliverOffline has alice send to bob while he is offline, runs between
// (if not nil) once her stream is closed, then logs bob in and checks the
// message he gets: from alice's full JID, the same body and type, with a
// XEP-0203 delay from the server's domain whose stamp lies between the
// sending and the delivery (XEP-0160 §2, XEP-0203 §4).
func deliverOffline(c *check, between func(*testing.T)) {
	t := c.t
	a := c.login("alice/1")[0]
	id := "offline-" + c.tag
	body := "while you were away " + c.tag
	// A stamp may have whole seconds only (Prosody's do).
	sent := time.Now().Truncate(time.Second)
	a.ok(cmd("send", "to", c.srv.bare("bob"), "body", body, "id", id))
	// Her stream closes cleanly only after the server has read, and so
	// routed and stored, everything she sent before.
	a.quit()
	if between != nil {
		between(t)
	}

	b := c.login("bob/1")[0]
	b.ok(cmd("presence", "status", ""))
	m := b.wait("the offline message "+id, func(e event) bool { return e.Event == "message" && e.ID == id })
	received := time.Now()
	if m.From != a.jid || m.To != c.srv.bare("bob") || m.Body != body || m.Type != "chat" {
		t.Errorf("%s got the offline message as %+v, want a chat message from %s to %s with body %q", b, m, a.jid, c.srv.bare("bob"), body)
	}
	switch {
	case m.Delay == nil:
		t.Errorf("%s got the offline message without a XEP-0203 delay: %+v", b, m)
	default:
		if m.Delay.From != c.srv.domain {
			t.Errorf("the offline message's delay is from %q, want the server, %q", m.Delay.From, c.srv.domain)
		}
		stamp, err := time.Parse(time.RFC3339Nano, m.Delay.Stamp)
		if err != nil || stamp.Before(sent) || stamp.After(received) {
			t.Errorf("the offline message's delay stamp %q (%v) is not between the sending (%v) and the delivery (%v)", m.Delay.Stamp, err, sent, received)
		}
	}
	b.quit()
}

// cmd builds a command: its name, then key, value pairs.
func cmd(name string, kv ...any) map[string]any {
	m := map[string]any{"cmd": name}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// isPushFor matches a roster push about jid.
func isPushFor(jid string) func(event) bool {
	return func(e event) bool { return e.Event == "roster-push" && e.Item != nil && e.Item.JID == jid }
}

// isPresence matches presence of the given type ("available" for none)
// from the given JID.
func isPresence(from, typ string) func(event) bool {
	return func(e event) bool { return e.Event == "presence" && e.From == from && e.Type == typ }
}

// find returns roster's item for jid.
func find(roster []rosterItem, jid string) (rosterItem, bool) {
	for _, it := range roster {
		if it.JID == jid {
			return it, true
		}
	}
	return rosterItem{}, false
}

func (r *rosterItem) equal(o rosterItem) bool {
	return r.JID == o.JID && r.Name == o.Name && r.Subscription == o.Subscription && r.Ask == o.Ask && slices.Equal(r.Groups, o.Groups)
}
