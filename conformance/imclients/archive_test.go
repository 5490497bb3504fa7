package imclients

import (
	"fmt"
	"slices"
	"strings"
)

// The message archive (XEP-0313) with stanza ids (XEP-0359) beside carbons
// and offline delivery (issue 13).

// archived is a message the archive check expects in alice's archive: its
// id, who sent it to whom, and the stanza-id by alice's bare JID it was
// seen with live (by a session, a carbon or offline delivery).
type archived struct {
	id, from, to, sid string
}

// checkArchive: message archive management (XEP-0313) with stanza ids
// (XEP-0359), carbons (XEP-0280) and offline delivery, on both libraries.
//
// alice logs in twice, on the check's library and the other, both with
// carbons, and bob once. bob first writes alice a marker message, whose
// stanza-id by alice's bare JID is where the check's part of her archive
// starts (earlier checks wrote there too), as a client that last saw it
// would sync from it. Then, live: bob writes 10 messages to alice's first
// session and 2 to her second, and her first writes 3 to bob; each is
// received by its addressee and carbon-copied to alice's other session,
// and the delivered message and its carbon must carry the same stanza-id
// by alice (the sent carbons the one of alice's archive; bob's copy of
// hers carries his own archive's, by bob, if any). Then alice has no
// session, and bob writes 8 messages to her bare JID; a new session of
// alice's that does not use the archive gets them by offline delivery
// (RFC 6121 §8.5.2.2.1), exactly once, in order, each with the stanza-id
// by alice. Last, a fresh session of alice's pages through her archive
// after the marker with the library's MAM query, 5 messages a page (RSM,
// XEP-0059): the 23 messages must come in the order they were sent, once
// each, in pages of 5, 5, 5, 5 and 3 of which only the last says
// complete, each result's id being the stanza-id seen live or offline, and
// each page's RSM first and last its first and last result's ids.
func checkArchive(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	alice := c.srv.bare("alice")
	a1 := c.loginArgs(c.lib, []string{"--mam"}, "alice/1")[0]
	a2 := c.loginWith(other, "alice/2")[0]
	b := c.login("bob/1")[0]
	for _, ag := range []*agent{a1, a2, b} {
		ag.ok(cmd("presence", "status", ""))
	}
	for _, ag := range []*agent{a1, a2} {
		ag.ok(cmd("carbons-enable"))
	}
	isMessage := func(id string) func(event) bool {
		return func(e event) bool { return e.Event == "message" && e.ID == id }
	}
	isCarbon := func(id string) func(event) bool {
		return func(e event) bool { return e.Event == "carbon" && e.ID == id }
	}

	// The marker.
	marker := "arc-" + c.tag + "-marker"
	b.ok(cmd("send", "to", a1.jid, "body", "the archive check starts here "+c.tag, "id", marker))
	m := a1.wait("the marker "+marker, isMessage(marker))
	a2.wait("the carbon of the marker "+marker, isCarbon(marker))
	after := stanzaIDBy(m.StanzaIDs, alice)
	if after == "" {
		if c.srv.proc == nil {
			t.Skipf("%s stamps no stanza-id by %s on delivered messages (%+v): no archive to check", c.srv.anchor, alice, m.StanzaIDs)
		}
		t.Fatalf("%s got %s without a stanza-id by %s (XEP-0359 §3): %+v", a1, marker, alice, m.StanzaIDs)
	}

	var want []archived
	n := 0
	// live has from write count messages to to; to must receive each and
	// copied, alice's other session, a carbon of kind of each, both with
	// the same stanza-id by alice.
	live := func(from, to, copied *agent, kind string, count int) {
		t.Helper()
		var ids []string
		for range count {
			n++
			id := fmt.Sprintf("arc-%s-%02d", c.tag, n)
			ids = append(ids, id)
			from.ok(cmd("send", "to", to.jid, "body", fmt.Sprintf("archived %d of %s", n, c.tag), "id", id))
		}
		for _, id := range ids {
			got := to.wait("the message "+id, isMessage(id))
			cc := copied.wait("the "+kind+" carbon of "+id, isCarbon(id))
			sid := stanzaIDBy(cc.StanzaIDs, alice)
			if to != b {
				if d := stanzaIDBy(got.StanzaIDs, alice); d == "" || d != sid {
					t.Errorf("%s got %s with the stanza-id by alice %q, its carbon at %s %q (all: %+v, %+v); want one, the same", to, id, d, copied, sid, got.StanzaIDs, cc.StanzaIDs)
				}
			} else if d := stanzaIDBy(got.StanzaIDs, alice); d != "" {
				t.Errorf("bob got alice's %s with a stanza-id claiming to be by alice: %+v", id, got.StanzaIDs)
			}
			if sid == "" {
				t.Errorf("%s got the %s carbon of %s without a stanza-id by alice: %+v", copied, kind, id, cc.StanzaIDs)
			}
			want = append(want, archived{id: id, from: from.jid, to: to.jid, sid: sid})
		}
	}
	live(b, a1, a2, "received", 10)
	live(b, a2, a1, "received", 2)
	live(a1, b, a2, "sent", 3)

	// Offline: alice has no session; bob writes to her bare JID.
	a1.quit()
	a2.quit()
	var offline []string
	for range 8 {
		n++
		id := fmt.Sprintf("arc-%s-%02d", c.tag, n)
		offline = append(offline, id)
		b.ok(cmd("send", "to", alice, "body", fmt.Sprintf("archived %d of %s, sent while alice is offline", n, c.tag), "id", id))
	}
	// A round trip of bob's own: the server has routed all eight (it
	// handles a stream's stanzas in order) before alice comes back.
	b.ok(cmd("roster-get"))
	a3 := c.login("alice/3")[0]
	a3.ok(cmd("presence", "status", ""))
	a3.wait("the last offline message "+offline[len(offline)-1], isMessage(offline[len(offline)-1]))
	var got []string
	for _, e := range a3.eventsUntil(len(a3.events) - 1) {
		if e.Event != "message" || !slices.Contains(offline, e.ID) {
			continue
		}
		got = append(got, e.ID)
		sid := stanzaIDBy(e.StanzaIDs, alice)
		if sid == "" || e.Delay == nil {
			t.Errorf("%s got the offline message %s without a stanza-id by alice or a delay: %+v", a3, e.ID, e)
		}
		want = append(want, archived{id: e.ID, from: b.jid, to: alice, sid: sid})
	}
	if !slices.Equal(got, offline) {
		t.Fatalf("%s got the offline messages %q, want %q once each, in order", a3, got, offline)
	}
	a3.quit()

	// The archive, after the marker, 5 a page.
	a4 := c.loginArgs(c.lib, []string{"--mam"}, "alice/4")[0]
	var results []mamResult
	var sizes []int
	for page := 1; ; page++ {
		if page > 10 {
			t.Fatalf("%s: still not complete after %d pages of 5 (%d results)", a4, page-1, len(results))
		}
		r := a4.ok(cmd("mam-page", "max", 5, "after", after))
		sizes = append(sizes, len(r.Page))
		if len(r.Page) > 0 && (r.First != r.Page[0].ResultID || r.Last != r.Page[len(r.Page)-1].ResultID) {
			t.Errorf("%s: page %d has RSM first %q and last %q, but its results run from %q to %q", a4, page, r.First, r.Last, r.Page[0].ResultID, r.Page[len(r.Page)-1].ResultID)
		}
		results = append(results, r.Page...)
		if r.Complete {
			break
		}
		if len(r.Page) == 0 {
			t.Fatalf("%s: page %d is empty but not complete", a4, page)
		}
		after = r.Last
	}
	a4.quit()
	b.quit()
	if !slices.Equal(sizes, []int{5, 5, 5, 5, 3}) {
		t.Errorf("%s paged through the archive in pages of %v, want [5 5 5 5 3], the last complete", a4, sizes)
	}
	var ids, wantIDs []string
	for _, r := range results {
		ids = append(ids, r.ID)
	}
	for _, w := range want {
		wantIDs = append(wantIDs, w.id)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("%s found the messages %q in the archive, want %q: each once, in the order sent", a4, ids, wantIDs)
	}
	for i, r := range results {
		w := want[i]
		if r.ResultID != w.sid {
			t.Errorf("%s: the archive has %s as %q, but it was delivered with the stanza-id %q", a4, w.id, r.ResultID, w.sid)
		}
		if r.From != w.from || bareOf(r.To) != bareOf(w.to) || r.Type != "chat" || !strings.Contains(r.Body, c.tag) {
			t.Errorf("%s: the archive has %s as %+v, want a chat message from %s to %s", a4, w.id, r, w.from, w.to)
		}
	}
}

func bareOf(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}
