package imclients

import (
	"slices"
	"strings"
)

// Bookmarks across their representations (issue 14): XEP-0402 native
// bookmarks in PEP, the XEP-0048 storage:bookmarks element in private
// XML storage (XEP-0049) and in the PEP node storage:bookmarks, which a
// server advertising urn:xmpp:bookmarks:1#compat and #compat-pep keeps
// in step (XEP-0402's compatibility notes).

// The account features of XEP-0402 (its compatibility notes) and
// XEP-0411 (bookmarks conversion) that Starling advertises.
const (
	nsBookmarksCompat    = "urn:xmpp:bookmarks:1#compat"
	nsBookmarksCompatPEP = "urn:xmpp:bookmarks:1#compat-pep"
	nsBookmarkConversion = "urn:xmpp:bookmarks-conversion:0"
)

// bookmark is one conference bookmark as a library parsed it.
type bookmark struct {
	JID      string `json:"jid"`
	Name     string `json:"name"`
	Nick     string `json:"nick"`
	Autojoin bool   `json:"autojoin"`
}

// checkBookmarks: alice logs in on nbxmpp, which picks its bookmarks
// module as Gajim does from her account's disco#info (native XEP-0402
// with #compat-pep and pubsub#config-node-max, the PEP node
// storage:bookmarks with bookmarks conversion, private storage
// otherwise) and has urn:xmpp:bookmarks:1+notify in its entity
// capabilities, and on slixmpp, whose xep_0048 keeps the XEP-0048 list
// in private storage (slixmpp 1.8 has no XEP-0402), each change a read
// of the whole list and a write of it back, as old clients do. On
// Starling nbxmpp must pick native bookmarks, and the account must
// advertise #compat, #compat-pep and bookmarks conversion.
//
// The check's library writes first: it adds a bookmark (a fresh room
// JID with a name, a nick and autojoin), which the other must then see
// with every one of those values; the other adds a second (autojoin
// false) and removes the first, and the first sees each change; last the
// first removes the second, and the other sees no bookmark of this check
// left. nbxmpp sees a change as the XEP-0402 notification of the item
// (its retraction for a removal) when it uses native bookmarks, and
// then fetches the list; slixmpp fetches the list from
// private storage and, where the account advertises #compat-pep, from
// the PEP node storage:bookmarks too (XEP-0048 in PEP): the same list in
// each. Only bookmarks of this check's rooms count: an anchor's account
// keeps those of other runs.
func checkBookmarks(c *check) {
	t := c.t
	other := "nbxmpp"
	if c.lib == other {
		other = "slixmpp"
	}
	requireLibrary(t, other)
	args := []string{"--bookmarks"}
	first := c.loginArgs(c.lib, args, "alice/1")[0]
	second := c.loginArgs(other, args, "alice/2")[0]
	nb := first
	if second.lib == "nbxmpp" {
		nb = second
	}
	// nbxmpp's caps, with urn:xmpp:bookmarks:1+notify, go on its presence.
	nb.ok(cmd("presence", "status", ""))

	r := nb.ok(cmd("bookmarks-get"))
	module, features := r.Module, r.Features
	t.Logf("%s: the account's bookmark features %q; Gajim's rule picks %s", nb, features, module)
	if c.srv.proc != nil {
		for _, f := range []string{nsBookmarksCompat, nsBookmarksCompatPEP, nsBookmarkConversion} {
			if !slices.Contains(features, f) {
				t.Errorf("alice's account does not advertise %s (its bookmark features: %q)", f, features)
			}
		}
		if module != "NativeBookmarks" {
			t.Fatalf("%s picks %s for bookmarks, want NativeBookmarks (XEP-0402): Gajim's rule needs %s and pubsub#config-node-max (features %q)",
				nb, module, nsBookmarksCompatPEP, features)
		}
	}
	native := module == "NativeBookmarks"
	compatPEP := slices.Contains(features, nsBookmarksCompatPEP)

	room1 := bookmark{JID: "bm1-" + c.tag + "@conference." + c.srv.domain, Name: "Bookmark one " + c.tag, Nick: "alice-" + c.tag, Autojoin: true}
	room2 := bookmark{JID: "bm2-" + c.tag + "@conference." + c.srv.domain, Name: "Bookmark two " + c.tag, Nick: "alice2-" + c.tag}

	// sees checks that ag has exactly want among this check's bookmarks,
	// after the change to changed (added, or removed) made by the other
	// session.
	sees := func(ag *agent, changed bookmark, removed bool, want ...bookmark) {
		t.Helper()
		if ag == nb {
			if native {
				what := "the bookmark notification of " + changed.JID
				if removed {
					what = "the retraction of the bookmark " + changed.JID
				}
				e := ag.wait(what, func(e event) bool {
					return e.Event == "bookmark-event" && e.ID == changed.JID && e.Retracted == removed
				})
				switch {
				case e.From != c.srv.bare("alice"):
					t.Errorf("%s got %s from %q, want it from alice's bare JID %s", ag, what, e.From, c.srv.bare("alice"))
				case !removed && (e.Bookmark == nil || *e.Bookmark != changed):
					t.Errorf("%s got the notification of the bookmark %s as %+v, want %+v", ag, changed.JID, e.Bookmark, changed)
				}
			}
			sameBookmarks(c, ag, "its bookmarks ("+module+")", ag.ok(cmd("bookmarks-get")).Bookmarks, want)
			return
		}
		sameBookmarks(c, ag, "its bookmarks in private storage", ag.ok(cmd("bookmarks-get", "method", "private")).Bookmarks, want)
		if compatPEP {
			sameBookmarks(c, ag, "the PEP node storage:bookmarks", ag.ok(cmd("bookmarks-get", "method", "pep")).Bookmarks, want)
		}
	}
	add := func(ag *agent, b bookmark) {
		t.Helper()
		ag.ok(cmd("bookmark-add", "jid", b.JID, "name", b.Name, "nick", b.Nick, "autojoin", b.Autojoin))
	}
	remove := func(ag *agent, b bookmark) {
		t.Helper()
		ag.ok(cmd("bookmark-remove", "jid", b.JID))
	}

	add(first, room1)
	sees(second, room1, false, room1)
	add(second, room2)
	sees(first, room2, false, room1, room2)
	remove(second, room1)
	sees(first, room1, true, room2)
	remove(first, room2)
	sees(second, room2, true)
	first.quit()
	second.quit()
}

// sameBookmarks checks that got, less the bookmarks of other checks'
// rooms, is want, in any order.
func sameBookmarks(c *check, ag *agent, what string, got, want []bookmark) {
	c.t.Helper()
	var mine []bookmark
	for _, b := range got {
		if strings.Contains(b.JID, c.tag) {
			mine = append(mine, b)
		}
	}
	byJID := func(a, b bookmark) int { return strings.Compare(a.JID, b.JID) }
	slices.SortFunc(mine, byJID)
	want = slices.Clone(want)
	slices.SortFunc(want, byJID)
	if !slices.Equal(mine, want) {
		c.t.Errorf("%s has %s %+v of this check, want %+v (all of them: %+v)", ag, what, mine, want, got)
	}
}
