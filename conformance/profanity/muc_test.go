package profanity

// TestProfanityMUC: group chat (XEP-0045, issue 15) with Profanity. In a
// new room on conference.<domain>, Profanity (alice) is the owner: it
// joins with /join, is told the room is locked and accepts the default
// configuration with /room accept (an instant room, §10.1.2). bob, a TCP
// test client (internal/xmpptest), enters; Profanity lists both in its
// occupants panel under their roles and counts them with /who; a message
// typed into Profanity's room window reaches bob from alice's occupant
// JID with her occupant id (XEP-0421); bob's message shows in the room
// window under his nickname.
//
// With STARLING_ANCHOR set the check runs against that server, if it has
// a MUC service at conference.<domain>; one without is skipped (the check
// does not configure an anchor's components).

import (
	"encoding/xml"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

func TestProfanityMUC(t *testing.T) {
	_, perr := exec.LookPath("profanity")
	_, terr := exec.LookPath("tmux")
	testbin.Require(t, "profanity and tmux (Debian packages)", perr == nil && terr == nil)

	if name := anchorenv.Name(); name != "" {
		t.Run(name, func(t *testing.T) {
			a := anchorenv.FromEnv(t)
			runMUC(t, &server{anchor: a, domain: a.Domain, starttls: a.Addr("starttls"), passwords: a.Passwords}, a.SCRAM(t, "starttls"))
		})
		return
	}
	t.Run("sqlite", func(t *testing.T) {
		setup := testbin.NewSetup(t, "")
		bin := testbin.Build(t)
		srv := &server{domain: "localhost", starttls: setup.StartTLS,
			passwords: map[string]string{"alice": "alice-" + randomHex(8), "bob": "bob-" + randomHex(8)}}
		for _, user := range []string{"alice", "bob"} {
			testbin.AddUser(t, bin, setup.Config, user+"@"+srv.domain, srv.passwords[user])
		}
		srv.proc = testbin.Start(t, bin, setup.Config)
		runMUC(t, srv, "SCRAM-SHA-256")
	})
}

// mucStanza is what the check reads of a stanza bob receives.
type mucStanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Body    string `xml:"body"`
	// The XEP-0045 <x xmlns='...#user'/> of a presence: its item and
	// status codes.
	User *struct {
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
	Identities []identity `xml:"query>identity"`
}

// identity is a disco#info identity (XEP-0030).
type identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
}

func (s *mucStanza) codes() []string {
	var c []string
	if s.User != nil {
		for _, st := range s.User.Status {
			c = append(c, st.Code)
		}
	}
	return c
}

// next reads bob's stanzas until one matches, within screenTimeout,
// logging the others.
func next(t *testing.T, bob *xmpptest.Client, what string, match func(*mucStanza) bool) *mucStanza {
	t.Helper()
	deadline := time.Now().Add(screenTimeout)
	for time.Now().Before(deadline) {
		el := bob.MustNext()
		var s mucStanza
		if err := xml.Unmarshal(el.Raw, &s); err == nil && match(&s) {
			t.Logf("bob: %s", el.Raw)
			return &s
		}
		t.Logf("bob: skipping %s", el.Raw)
	}
	t.Fatalf("bob did not receive %s within %v", what, screenTimeout)
	return nil
}

func runMUC(t *testing.T, srv *server, mech string) {
	tag := randomHex(4)
	bob := xmpptest.Login(t, srv.starttls, srv.domain, "bob", srv.passwords["bob"], mech, "profanity-muc-"+tag)
	bob.Send("<presence/>")

	service := "conference." + srv.domain
	bob.Send(fmt.Sprintf("<iq type='get' id='svc-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", tag, service))
	info := next(t, bob, "the disco#info of "+service, func(s *mucStanza) bool { return s.XMLName.Local == "iq" && s.ID == "svc-"+tag })
	if info.Type != "result" || !slices.Contains(info.Identities, identity{"conference", "text"}) {
		if srv.anchor != nil {
			t.Skipf("%s has no MUC service at %s (disco#info: type %s, identities %+v); the check does not configure an anchor's components", srv.anchor.Name, service, info.Type, info.Identities)
		}
		t.Fatalf("the disco#info of %s is of type %s with the identities %+v, want conference/text (XEP-0045 §6.1)", service, info.Type, info.Identities)
	}

	x := startProfanity(t, srv.starttls, "alice@"+srv.domain, srv.passwords["alice"])
	room := "room-" + tag + "@" + service
	aliceNick, bobNick := "Alice-"+tag, "Bob-"+tag

	// Profanity creates the room; it is locked until alice accepts the
	// default configuration.
	x.keys(t, "/join "+room+" nick "+aliceNick)
	x.waitScreen(t, "You have joined the room as "+aliceNick+", role: moderator, affiliation: owner")
	x.waitScreen(t, "Use '/room accept' to accept the defaults")
	x.keys(t, "/room accept")
	x.waitScreen(t, "Room unlocked")

	// bob enters: he sees alice as the owner and a moderator.
	bob.Send(fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>", room, bobNick))
	p := next(t, bob, "alice's presence in "+room, func(s *mucStanza) bool {
		return s.XMLName.Local == "presence" && s.From == room+"/"+aliceNick
	})
	if p.User == nil || p.User.Item.Role != "moderator" || p.User.Item.Affiliation != "owner" || p.OccupantID == nil || p.OccupantID.ID == "" {
		t.Errorf("bob sees Profanity's alice in %s as %+v, occupant id %+v; want the owner and a moderator, with an occupant id", room, p.User, p.OccupantID)
	}
	aliceOID := ""
	if p.OccupantID != nil {
		aliceOID = p.OccupantID.ID
	}
	self := next(t, bob, "his own presence in "+room, func(s *mucStanza) bool {
		return s.XMLName.Local == "presence" && s.From == room+"/"+bobNick
	})
	if s := self.codes(); self.Type == "error" || !slices.Contains(s, "110") {
		t.Fatalf("bob entered %s with the presence of type %q and status codes %v, want his own (110)", room, self.Type, s)
	}

	// Profanity's occupants panel (its room window's right column; it
	// does not announce joins there by default) lists alice under
	// Moderators and bob under Participants, and /who counts them.
	screen := x.waitScreen(t, bobNick)
	var panel []string
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			panel = append(panel, f[len(f)-1])
		}
	}
	if i, j, k := slices.Index(panel, "Moderators"), slices.Index(panel, aliceNick), slices.Index(panel, "Participants"); i < 0 || j != i+1 || k != j+1 || slices.Index(panel, bobNick) != k+1 {
		t.Errorf("Profanity's occupants panel does not list %s under Moderators and %s under Participants:\n%s", aliceNick, bobNick, screen)
	}
	x.keys(t, "/who")
	screen = x.waitScreen(t, "2 occupants: ")
	if !regexp.MustCompile(`2 occupants: (` + regexp.QuoteMeta(aliceNick) + `, ` + regexp.QuoteMeta(bobNick) + `|` + regexp.QuoteMeta(bobNick) + `, ` + regexp.QuoteMeta(aliceNick) + `)`).MatchString(screen) {
		t.Errorf("Profanity's /who does not name %s and %s:\n%s", aliceNick, bobNick, screen)
	}

	// Profanity's message reaches bob from alice's occupant JID.
	say := "hello from profanity " + tag
	x.keys(t, say)
	m := next(t, bob, "Profanity's message", func(s *mucStanza) bool { return s.XMLName.Local == "message" && s.Body == say })
	if m.From != room+"/"+aliceNick || m.Type != "groupchat" || m.OccupantID == nil || m.OccupantID.ID != aliceOID {
		t.Errorf("bob got Profanity's message from %q, type %q, occupant id %+v; want from %s/%s, groupchat, %q (XEP-0045 §7.4, XEP-0421)", m.From, m.Type, m.OccupantID, room, aliceNick, aliceOID)
	}

	// bob's message shows in Profanity's room window, under his nick.
	reply := "hello profanity " + randomHex(4)
	bob.Send(fmt.Sprintf("<message to='%s' type='groupchat' id='r-%s'><body>%s</body></message>", room, tag, reply))
	screen = x.waitScreen(t, reply)
	if !regexp.MustCompile(regexp.QuoteMeta(bobNick) + `: ` + regexp.QuoteMeta(reply)).MatchString(screen) {
		t.Errorf("Profanity shows bob's message %q, but not as from %s:\n%s", reply, bobNick, screen)
	}
	x.keys(t, "/quit")
}
