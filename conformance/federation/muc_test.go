package federation

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

// The group chat services (XEP-0045): Starling's (xep/muc, on by default
// at conference.<host>) and the one TestMUCFederation gives Prosody (its
// muc component).
const (
	starlingMUC = "conference." + starlingDomain
	prosodyMUC  = "conference." + prosodyDomain
)

// TestMUCFederation: group chat across federation, between Starling and
// each peer, in each trust mode, found by A records (aFallback).
//
// In a room on Starling's service, created by alice@starling.test and
// accepted as an instant room (XEP-0045 §10.1.2), the peer's alice
// joins; both see each other's presence, messages go both ways through
// the room, private messages both ways through it, then the peer's user
// leaves and Starling's sees it (see mucOnStarling). This takes streams
// to a service domain of Starling's (the peer's user to
// conference.starling.test) and from it (the room to the peer's user):
// the peer authenticates conference.starling.test, whose name the
// certificate has (w.starling), and reaches it through its hosts file or
// DNS, like starling.test.
//
// With Prosody, the reverse too: alice@starling.test joins a room of
// Prosody's muc component on conference.prosody.test (mucOnProsody).
// ejabberd's anchor has no MUC service.
func TestMUCFederation(t *testing.T) {
	requirePeers(t)
	for _, peer := range []string{"prosody", "ejabberd"} {
		for _, mode := range modes {
			t.Run(peer+"/"+mode.String(), func(t *testing.T) {
				w := newWorld(t, aFallback, true)
				// Starling's service is at Starling's address,
				// where the peer connects to it and, for
				// dialback, verifies its streams: in the peer's
				// hosts file and in DNS, as newWorld has the
				// domains. Prosody's is at Prosody's, in DNS for
				// Starling.
				w.hosts[starlingMUC] = starlingAddr
				w.dns.SetA(starlingMUC, netip.MustParseAddr(starlingAddr))
				st, us := w.starling(mode, mode == anchor.External)
				var more []func(*anchor.Options)
				if peer == "prosody" {
					w.dns.SetA(prosodyMUC, netip.MustParseAddr(prosodyAddr))
					more = append(more, func(o *anchor.Options) {
						o.Names = []string{prosodyMUC}
						o.Prosody = fmt.Sprintf("Component %q \"muc\"\n", prosodyMUC)
					})
				}
				p, up := w.peer(peer, mode, false, more...)
				mucOnStarling(t, us, up)
				// Both streams between the service and the peer
				// authenticated as testStarlingWith's between
				// the hosts do.
				toStarling, toPeer := external, external
				switch {
				case mode == anchor.DialbackOnly:
					toStarling, toPeer = dialback, dialback
				case mode == anchor.ExternalOrDialback && peer == "ejabberd":
					toPeer = dialback
				}
				checkAuth(t, p, starlingMUC, toPeer, toStarling)
				st.checkServiceAuth(t, starlingMUC, p.Domain, toStarling, toPeer)
				if peer == "prosody" {
					mucOnProsody(t, up, us)
					// Prosody's component, a domain of its
					// own, authenticated to Starling and
					// Starling to it.
					st.checkAuth(t, prosodyMUC, toStarling, toPeer)
				}
			})
		}
	}
}

// mucOnStarling: local, a user of Starling, creates a room on
// starlingMUC; remote, a user of a peer, joins it, and they talk through
// it. Every stanza the room sends is checked when it arrives: from the
// occupant's JID in the room, to the user's full JID, with the
// occupant's occupant-id (XEP-0421), the one the room gave the occupant
// in its own presence; and at the end, that none arrived twice.
func mucOnStarling(t *testing.T, ul, ur user) {
	t.Helper()
	tag := randomHex(4)
	room := "fed-" + tag + "@" + starlingMUC
	local, remote := newMUCSession(t, ul), newMUCSession(t, ur)
	const localNick, remoteNick = "Starling alice", "Remote alice"

	// §10.1.1: local creates the room (201), §10.1.2: an instant room.
	local.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, localNick))
	self := local.awaitPresence(t, room+"/"+localNick, "", 110)
	if !slices.Contains(self.codes(), 201) {
		t.Fatalf("the new room's first presence has no status 201: %s", self.raw)
	}
	localOID := self.oid(t)
	local.awaitSubject(t, room)
	local.iq(t, room, "set", "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>")
	t.Logf("%s created %s (instant), occupant-id %s", local.jid, room, localOID)

	// §7.2.3: remote enters: it gets local's presence, then its own
	// (110) and the subject; local gets remote's, with its real JID
	// (local is a moderator, the room semi-anonymous).
	remote.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/><status>from %s</status></presence>", room, remoteNick, ur.server))
	seen := remote.awaitPresence(t, room+"/"+localNick, "")
	if got := seen.oid(t); got != localOID {
		t.Errorf("%s sees %s with occupant-id %s, the room gave it %s", remote.jid, localNick, got, localOID)
	}
	if it := seen.item(t); it.Affiliation != "owner" || it.Role != "moderator" || it.JID != "" {
		t.Errorf("%s sees %s as %+v, want owner, moderator, no real JID: %s", remote.jid, localNick, it, seen.raw)
	}
	rself := remote.awaitPresence(t, room+"/"+remoteNick, "", 110)
	remoteOID := rself.oid(t)
	remote.awaitSubject(t, room)
	joined := local.awaitPresence(t, room+"/"+remoteNick, "")
	if got := joined.oid(t); got != remoteOID {
		t.Errorf("%s sees %s with occupant-id %s, the room gave it %s", local.jid, remoteNick, got, remoteOID)
	}
	if it := joined.item(t); it.Affiliation != "none" || it.Role != "participant" || it.JID != remote.jid {
		t.Errorf("%s sees %s as %+v, want none, participant, jid %s: %s", local.jid, remoteNick, it, remote.jid, joined.raw)
	}
	if joined.Status != "from "+ur.server {
		t.Errorf("%s sees %s's status %q, want %q: %s", local.jid, remoteNick, joined.Status, "from "+ur.server, joined.raw)
	}
	t.Logf("%s joined %s as %s, occupant-id %s; each sees the other", remote.jid, room, remoteNick, remoteOID)

	// §7.4: messages through the room, both ways, reflected to their
	// senders too.
	for _, c := range []struct {
		from, to *mucSession
		nick     string
		oid      string
	}{{local, remote, localNick, localOID}, {remote, local, remoteNick, remoteOID}} {
		id := "g-" + c.from.u.server + "-" + tag
		body := fmt.Sprintf("%s to the room %s <&> héllo", c.from.u.server, tag)
		c.from.Send(fmt.Sprintf("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>", room, id, escape(body)))
		for _, s := range []*mucSession{c.to, c.from} {
			s.awaitMessage(t, room+"/"+c.nick, "groupchat", id, body, c.oid)
		}
		t.Logf("groupchat %s from %s reached both occupants", id, c.nick)
	}

	// §7.5: private messages through the room, both ways: from the
	// sender's occupant JID, with the muc#user marker.
	for _, c := range []struct {
		from, to       *mucSession
		fromNick, nick string
	}{{remote, local, remoteNick, localNick}, {local, remote, localNick, remoteNick}} {
		id := "p-" + c.from.u.server + "-" + tag
		body := fmt.Sprintf("psst from %s %s", c.from.u.server, tag)
		c.from.Send(fmt.Sprintf("<message to='%s/%s' type='chat' id='%s'><body>%s</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>", room, c.nick, id, escape(body)))
		el := c.to.awaitMessage(t, room+"/"+c.fromNick, "chat", id, body, "")
		if !strings.Contains(string(el.Raw), "http://jabber.org/protocol/muc#user") {
			t.Errorf("the private message has no muc#user element: %s", el.Raw)
		}
		t.Logf("private message %s from %s to %s delivered", id, c.fromNick, c.nick)
	}

	// A last message from local: the room sends it to remote after
	// everything before, on the same stream.
	last := "g-last-" + tag
	local.Send(fmt.Sprintf("<message to='%s' type='groupchat' id='%s'><body>last %s</body></message>", room, last, tag))
	remote.awaitMessage(t, room+"/"+localNick, "groupchat", last, "last "+tag, localOID)

	// §7.14: remote leaves: its own unavailable presence (110), and
	// local sees it go.
	remote.Send(fmt.Sprintf("<presence to='%s/%s' type='unavailable'/>", room, remoteNick))
	remote.awaitPresence(t, room+"/"+remoteNick, "unavailable", 110)
	gone := local.awaitPresence(t, room+"/"+remoteNick, "unavailable")
	if got := gone.oid(t); got != remoteOID {
		t.Errorf("%s sees %s leave with occupant-id %s, want %s", local.jid, remoteNick, got, remoteOID)
	}
	t.Logf("%s left; %s saw it", remoteNick, local.jid)
	local.roundTrip(t)

	// Nothing arrived twice.
	for _, s := range []*mucSession{local, remote} {
		s.checkOnce(t)
	}
}

// mucOnProsody: the reverse of mucOnStarling on Prosody's muc component:
// owner, a user of Prosody, creates an instant room on prosodyMUC;
// guest, a user of Starling, joins it; presence both ways, a message
// both ways, guest leaves. Prosody 0.12 does not add occupant-ids.
func mucOnProsody(t *testing.T, uo, ug user) {
	t.Helper()
	tag := randomHex(4)
	room := "fed-" + tag + "@" + prosodyMUC
	owner, guest := newMUCSession(t, uo), newMUCSession(t, ug)
	const ownerNick, guestNick = "Prosody alice", "Guest alice"

	owner.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, ownerNick))
	owner.awaitPresence(t, room+"/"+ownerNick, "", 110)
	owner.iq(t, room, "set", "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>")

	guest.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, guestNick))
	guest.awaitPresence(t, room+"/"+ownerNick, "")
	guest.awaitPresence(t, room+"/"+guestNick, "", 110)
	guest.awaitSubject(t, room)
	owner.awaitPresence(t, room+"/"+guestNick, "")
	t.Logf("%s joined %s", guest.jid, room)

	for _, c := range []struct {
		from, to *mucSession
		nick     string
	}{{guest, owner, guestNick}, {owner, guest, ownerNick}} {
		id := "g-" + c.from.u.server + "-" + tag
		body := fmt.Sprintf("%s to the room %s", c.from.u.server, tag)
		c.from.Send(fmt.Sprintf("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>", room, id, escape(body)))
		for _, s := range []*mucSession{c.to, c.from} {
			s.awaitMessage(t, room+"/"+c.nick, "groupchat", id, body, "")
		}
		t.Logf("groupchat %s from %s reached both occupants", id, c.nick)
	}

	guest.Send(fmt.Sprintf("<presence to='%s/%s' type='unavailable'/>", room, guestNick))
	guest.awaitPresence(t, room+"/"+guestNick, "unavailable", 110)
	owner.awaitPresence(t, room+"/"+guestNick, "unavailable")
	owner.roundTrip(t)
	for _, s := range []*mucSession{owner, guest} {
		s.checkOnce(t)
	}
}

// mucSession is a logged-in, available session that keeps every stanza
// it reads, for checkOnce.
type mucSession struct {
	*session
	read []*stream.Element
}

func newMUCSession(t *testing.T, u user) *mucSession {
	t.Helper()
	s := &mucSession{session: login(t, u)}
	s.Send("<presence/>")
	s.roundTrip(t)
	return s
}

// await is session.await, keeping what it reads.
func (s *mucSession) await(t *testing.T, what string, match func(*stream.Element) bool) *stream.Element {
	t.Helper()
	return s.session.await(t, what, func(el *stream.Element) bool {
		s.read = append(s.read, el)
		return match(el)
	})
}

// mucPresence is a presence from a room.
type mucPresence struct {
	Type   string `xml:"type,attr"`
	Status string `xml:"status"`
	X      []struct {
		Items []mucItem `xml:"item"`
		Codes []struct {
			Code int `xml:"code,attr"`
		} `xml:"status"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
	OIDs []struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	raw, to string
}

type mucItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
}

func (p *mucPresence) codes() []int {
	var c []int
	for _, x := range p.X {
		for _, s := range x.Codes {
			c = append(c, s.Code)
		}
	}
	return c
}

// item is the presence's one muc#user item.
func (p *mucPresence) item(t *testing.T) mucItem {
	t.Helper()
	if len(p.X) != 1 || len(p.X[0].Items) != 1 {
		t.Fatalf("want one muc#user x with one item: %s", p.raw)
	}
	return p.X[0].Items[0]
}

// oid is the presence's one occupant-id.
func (p *mucPresence) oid(t *testing.T) string {
	t.Helper()
	if len(p.OIDs) != 1 || p.OIDs[0].ID == "" {
		t.Fatalf("want one occupant-id: %s", p.raw)
	}
	return p.OIDs[0].ID
}

// awaitPresence waits for a presence of type typ from the occupant JID
// from, to this session, with the muc#user status codes codes among
// others, and returns it.
func (s *mucSession) awaitPresence(t *testing.T, from, typ string, codes ...int) *mucPresence {
	t.Helper()
	var p *mucPresence
	what := fmt.Sprintf("presence %q from %s with status %v", typ, from, codes)
	s.await(t, what, func(el *stream.Element) bool {
		if el.Name.Local != "presence" || xmpptest.Attr(el, "from") != from || xmpptest.Attr(el, "type") != typ {
			return false
		}
		var q mucPresence
		if err := xml.Unmarshal(el.Raw, &q); err != nil {
			t.Fatalf("%s: %v: %s", what, err, el.Raw)
		}
		q.raw, q.to = string(el.Raw), xmpptest.Attr(el, "to")
		for _, c := range codes {
			if !slices.Contains(q.codes(), c) {
				return false
			}
		}
		p = &q
		return true
	})
	if p.to != s.jid {
		t.Errorf("%s: to %q, want %q: %s", what, p.to, s.jid, p.raw)
	}
	return p
}

// awaitSubject waits for the room's subject message (§7.2.15), which
// ends entering.
func (s *mucSession) awaitSubject(t *testing.T, room string) {
	t.Helper()
	s.await(t, "the subject of "+room, func(el *stream.Element) bool {
		return el.Name.Local == "message" && bareOf(xmpptest.Attr(el, "from")) == room &&
			xmpptest.Attr(el, "type") == "groupchat" && strings.Contains(string(el.Raw), "<subject")
	})
}

// awaitMessage waits for the message id of type typ from the occupant
// JID from and checks it: to this session, the body, and with oid "" no
// occupant-id requirement, else exactly one occupant-id, oid.
func (s *mucSession) awaitMessage(t *testing.T, from, typ, id, body, oid string) *stream.Element {
	t.Helper()
	el := s.await(t, fmt.Sprintf("%s message %s from %s", typ, id, from), func(el *stream.Element) bool {
		return el.Name.Local == "message" && xmpptest.Attr(el, "id") == id && xmpptest.Attr(el, "type") != "error"
	})
	var m struct {
		Body string `xml:"body"`
		OIDs []struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	}
	if err := xml.Unmarshal(el.Raw, &m); err != nil {
		t.Fatalf("message %s: %v: %s", id, err, el.Raw)
	}
	switch {
	case xmpptest.Attr(el, "from") != from:
		t.Errorf("message %s to %s: from %q, want %q: %s", id, s.jid, xmpptest.Attr(el, "from"), from, el.Raw)
	case xmpptest.Attr(el, "to") != s.jid:
		t.Errorf("message %s: to %q, want %q: %s", id, xmpptest.Attr(el, "to"), s.jid, el.Raw)
	case xmpptest.Attr(el, "type") != typ:
		t.Errorf("message %s to %s: type %q, want %q: %s", id, s.jid, xmpptest.Attr(el, "type"), typ, el.Raw)
	case m.Body != body:
		t.Errorf("message %s to %s: body %q, want %q: %s", id, s.jid, m.Body, body, el.Raw)
	case oid != "" && (len(m.OIDs) != 1 || m.OIDs[0].ID != oid):
		t.Errorf("message %s to %s: occupant-ids %v, want one, %s: %s", id, s.jid, m.OIDs, oid, el.Raw)
	}
	return el
}

// checkOnce fails the test if a message with an id, or a presence from
// an occupant of a room of the same type, arrived twice: in these
// exchanges every occupant enters and leaves once.
func (s *mucSession) checkOnce(t *testing.T) {
	t.Helper()
	seen := map[string]string{}
	for _, el := range s.read {
		key := el.Name.Local + " " + xmpptest.Attr(el, "type") + " "
		switch from := xmpptest.Attr(el, "from"); {
		case el.Name.Local == "message" && xmpptest.Attr(el, "id") != "":
			key += xmpptest.Attr(el, "id")
		case el.Name.Local == "presence" && (strings.Contains(from, "@"+starlingMUC+"/") || strings.Contains(from, "@"+prosodyMUC+"/")):
			key += from
		default:
			continue
		}
		if first, ok := seen[key]; ok {
			t.Errorf("%s received twice:\n%s\n%s", s.jid, first, el.Raw)
			continue
		}
		seen[key] = string(el.Raw)
	}
}

// checkServiceAuth is checkAuth for the streams between local, a
// service domain of Starling's, and remote: in Starling's log,
//
//	level=INFO msg="s2s stream authenticated" direction=in remote=R local=L method=…
func (s *starlingServer) checkServiceAuth(t *testing.T, local, remote, inbound, outbound string) {
	t.Helper()
	for _, d := range []struct{ direction, method string }{{"in", inbound}, {"out", outbound}} {
		what := fmt.Sprintf("an %s stream between %s and %s authenticated with %s", d.direction, local, remote, d.method)
		line, _ := s.proc.WaitLog(t, 0, waitTimeout, what, func(line string) bool {
			if !strings.Contains(line, `msg="s2s stream authenticated"`) || !strings.Contains(line, "direction="+d.direction+" ") ||
				!strings.Contains(line, "remote="+remote+" ") || !strings.Contains(line, "local="+local+" ") {
				return false
			}
			if d.method == external {
				return strings.Contains(line, "method=EXTERNAL")
			}
			return strings.Contains(line, "method=dialback") || strings.Contains(line, `method="dialback`)
		})
		t.Logf("starling: %s: %s", what, line)
	}
}
