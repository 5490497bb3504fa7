package browser

// The group chat check of TestBrowser (issue 15): Converse.js creates a
// room on conference.<domain> and posts in it; a TCP client (bob,
// internal/xmpptest) enters and writes there too.

import (
	"encoding/xml"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// groupchat is the room of one run of the driver (--muc-room), and bob's
// session for it.
type groupchat struct {
	// skip says why the check does not run: the server has no MUC
	// service (an anchor; the check does not configure one).
	skip                 string
	bob                  *xmpptest.Client
	room, nick, peerNick string
	expect, say          string
}

// mucStanza is what bob reads of a room's stanzas.
type mucStanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Body    string `xml:"body"`
	User    *struct {
		Item struct {
			Role        string `xml:"role,attr"`
			Affiliation string `xml:"affiliation,attr"`
		} `xml:"item"`
		Status []struct {
			Code string `xml:"code,attr"`
		} `xml:"status"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
	OccupantID *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Identities []struct {
		Category string `xml:"category,attr"`
		Type     string `xml:"type,attr"`
	} `xml:"query>identity"`
}

func (s *mucStanza) occupantID() string {
	if s.OccupantID == nil {
		return ""
	}
	return s.OccupantID.ID
}

// nextMUC reads what bob receives until a stanza matches, within
// stepTimeout.
func nextMUC(t *testing.T, bob *xmpptest.Client, what string, match func(*mucStanza) bool) *mucStanza {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		el, err := bob.Next()
		if err != nil {
			t.Fatalf("bob waiting for %s: %v", what, err)
		}
		var s mucStanza
		if err := xml.Unmarshal(el.Raw, &s); err == nil && match(&s) {
			t.Logf("bob: %s", el.Raw)
			return &s
		}
		t.Logf("bob passes over %s", el.Raw)
	}
	t.Fatalf("bob did not receive %s within %v", what, stepTimeout)
	return nil
}

// newGroupchat logs in a session of bob's for the room and asks the
// service conference.<domain> for its identity; without a MUC service an
// anchor's check is skipped.
func newGroupchat(t *testing.T, srv *server, transport string) *groupchat {
	t.Helper()
	tag := randomTag()
	g := &groupchat{
		bob:      xmpptest.Login(t, srv.starttls, srv.domain, "bob", srv.passwords["bob"], srv.mech, "browser-muc-"+tag),
		room:     "room-" + tag + "@conference." + srv.domain,
		nick:     "Alice " + transport,
		peerNick: "Bob-" + tag,
		expect:   fmt.Sprintf("Hello room, from a TCP client <&> ☃ %s", tag),
		say:      fmt.Sprintf("Hi room, Converse over %s here %s", transport, tag),
	}
	service := "conference." + srv.domain
	g.bob.Send(fmt.Sprintf("<iq type='get' id='svc-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", tag, service))
	info := nextMUC(t, g.bob, "the disco#info of "+service, func(s *mucStanza) bool { return s.XMLName.Local == "iq" && s.ID == "svc-"+tag })
	if info.Type != "result" || !slices.ContainsFunc(info.Identities, func(i struct {
		Category string `xml:"category,attr"`
		Type     string `xml:"type,attr"`
	}) bool {
		return i.Category == "conference" && i.Type == "text"
	}) {
		if srv.name != "Starling" {
			g.skip = fmt.Sprintf("%s has no MUC service at %s (disco#info: type %s, identities %+v); the check does not configure an anchor's components", srv.name, service, info.Type, info.Identities)
			return g
		}
		t.Fatalf("the disco#info of %s is of type %s with the identities %+v, want conference/text (XEP-0045 §6.1)", service, info.Type, info.Identities)
	}
	return g
}

// args are the driver's arguments for the room.
func (g *groupchat) args() []string {
	if g.skip != "" {
		return nil
	}
	return []string{"--muc-room", g.room, "--muc-nick", g.nick, "--muc-peer-nick", g.peerNick, "--muc-expect", g.expect, "--muc-say", g.say}
}

// check: Converse has entered the room it created (201) and configured
// with the defaults, as its owner and a moderator, and its disco#info
// counts one occupant (XEP-0045 §6.4, §10.1); bob enters, sees Converse's
// alice there with her occupant id (XEP-0421) and writes; Converse shows
// his message, from his occupant JID with his occupant id, lists him in
// the room's sidebar and counts two occupants; alice's message, typed in
// the room, reaches bob from her occupant JID with her occupant id; alice
// leaves the room (and Converse keeps its bookmark of it, made when it
// entered, without autojoin), and bob sees her go (§7.14).
//
// The room here is the default, temporary one, which keeps no archive.
// The room's archive (XEP-0313 at the room's JID, stanza ids by the
// room) is checked with real libraries in conformance/imclients
// (checkMUC: slixmpp's xep_0313 and nbxmpp's MAM module as Gajim uses
// it); Converse's history of a persistent room from it is not checked
// here.
func (g *groupchat) check(t *testing.T, d *driver) {
	if g.skip != "" {
		t.Skip(g.skip)
	}
	e := d.next(t, "muc-joined")
	t.Logf("Converse entered %s as %q (%s, %s), the room's disco#info counting %d; the room view says %q", e.JID, e.Nick, e.Role, e.Affiliation, e.Count, e.Texts)
	if e.JID != g.room || e.Nick != g.nick || e.Role != "moderator" || e.Affiliation != "owner" || e.Count != 1 {
		t.Errorf("Converse entered %q as %q, %s, %s, the room's disco#info counting %d; want %s as %q, moderator, owner, 1 (XEP-0045 §10.1.1, §6.4)", e.JID, e.Nick, e.Role, e.Affiliation, e.Count, g.room, g.nick)
	}

	bob := g.bob
	bob.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>", g.room, g.peerNick))
	p := nextMUC(t, bob, "alice's presence in "+g.room, func(s *mucStanza) bool {
		return s.XMLName.Local == "presence" && s.From == g.room+"/"+g.nick
	})
	if p.User == nil || p.User.Item.Role != "moderator" || p.User.Item.Affiliation != "owner" || p.occupantID() == "" {
		t.Errorf("bob sees Converse's alice in %s as %+v with the occupant id %q; want the owner and a moderator with an occupant id", g.room, p.User, p.occupantID())
	}
	aliceOID := p.occupantID()
	self := nextMUC(t, bob, "his own presence in "+g.room, func(s *mucStanza) bool {
		return s.XMLName.Local == "presence" && s.From == g.room+"/"+g.peerNick
	})
	if self.Type == "error" || self.User == nil || !slices.ContainsFunc(self.User.Status, func(s struct {
		Code string `xml:"code,attr"`
	}) bool {
		return s.Code == "110"
	}) {
		t.Fatalf("bob could not enter %s: his presence is of type %q with %+v", g.room, self.Type, self.User)
	}
	bobOID := self.occupantID()
	bob.Send(fmt.Sprintf("<message to='%s' type='groupchat' id='muc-%s'><body>%s</body></message>", g.room, randomTag(), xmlEscape(g.expect)))

	e = d.next(t, "muc-received")
	if e.From != g.room+"/"+g.peerNick || e.Type != "groupchat" || e.Body != g.expect || e.Nick != g.peerNick || e.OccupantID != bobOID {
		t.Errorf("Converse shows bob's message from %q (nick %q), type %q, body %q, occupant id %q; want from %s/%s, groupchat, %q, %q", e.From, e.Nick, e.Type, e.Body, e.OccupantID, g.room, g.peerNick, g.expect, bobOID)
	}
	e = d.next(t, "muc-occupants")
	t.Logf("Converse's sidebar: %q, listing %q; the room's disco#info counts %d", e.Text, e.Texts, e.Count)
	if !slices.Contains(e.Texts, g.nick) || !slices.Contains(e.Texts, g.peerNick) || len(e.Texts) != 2 || e.Text != "2 Participants" || e.Count != 2 {
		t.Errorf("Converse's sidebar says %q and lists %q, the room's disco#info counting %d; want 2 Participants, %q and %q, 2", e.Text, e.Texts, e.Count, g.nick, g.peerNick)
	}

	e = d.next(t, "muc-sent")
	checkPNG(t, e.Path)
	t.Logf("screenshot: %s", e.Path)
	m := nextMUC(t, bob, "alice's message in "+g.room, func(s *mucStanza) bool { return s.XMLName.Local == "message" && s.Body == g.say })
	if m.From != g.room+"/"+g.nick || m.Type != "groupchat" || m.occupantID() != aliceOID {
		t.Errorf("bob received Converse's message from %q, type %q, occupant id %q; want from %s/%s, groupchat, %q (XEP-0045 §7.4, XEP-0421)", m.From, m.Type, m.occupantID(), g.room, g.nick, aliceOID)
	}

	// alice leaves; bob sees her go.
	e = d.next(t, "muc-left")
	if e.Type != "result" {
		t.Errorf("the server answered Converse's publish of the bookmark of %s to %s, on leaving the room, with %q: %s", g.room, e.Node, e.Type, e.Answer)
	}
	// (Converse may send its presence to the room again before: passed over.)
	p = nextMUC(t, bob, "alice leaving "+g.room, func(s *mucStanza) bool {
		return s.XMLName.Local == "presence" && s.From == g.room+"/"+g.nick && s.Type == "unavailable"
	})
	if p.User == nil || p.User.Item.Role != "none" {
		t.Errorf("bob sees Converse's alice leave %s with %+v; want role none (XEP-0045 §7.14)", g.room, p.User)
	}
}
