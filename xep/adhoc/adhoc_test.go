package adhoc

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/internal/xmlcmp"
	"github.com/starling-xmpp/starling/stanza"
)

// sender records replies.
type sender struct{ replies []string }

func (s *sender) DeliverTo(_ jid.JID, raw []byte) bool {
	s.replies = append(s.replies, string(raw))
	return true
}

// harness is a Service on a Mux with a two-stage command, "pizza" (a
// size, then toppings, which may be skipped by completing from the
// first stage), for anyone, and an admin command, "secret", without
// stages. root@example.org administers example.org.
type harness struct {
	t   *testing.T
	m   *dispatch.Mux
	out *sender
	now time.Time
	ran []Values
	s   *Service
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, out: &sender{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.m = dispatch.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.m.SetSender(h.out)
	s := &Service{
		IsAdmin: func(host string, bare jid.JID) bool {
			return host == "example.org" && bare.String() == "root@example.org"
		},
		Now: func() time.Time { return h.now },
	}
	s.Add(&Command{Node: "pizza", Name: "Order a pizza", Stages: []Stage{
		{Complete: true, Form: func(context.Context, *Call) *Form {
			return &Form{Title: "Size", Fields: []Field{{Var: "size", Type: "list-single", Required: true,
				Options: []Option{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}}}}
		}},
		{Form: func(_ context.Context, c *Call) *Form {
			return &Form{Title: "Toppings for " + c.Values.Get("size"), Fields: []Field{{Var: "toppings", Type: "list-multi"}}}
		}},
	}, Run: func(_ context.Context, c *Call) (*Outcome, error) {
		h.ran = append(h.ran, c.Values)
		return Info("ordered " + c.Values.Get("size") + " " + strings.Join(c.Values["toppings"], ",")), nil
	}})
	s.Add(&Command{Node: "secret", Name: "Secret", Admin: true, Run: func(context.Context, *Call) (*Outcome, error) {
		return &Outcome{Result: &Form{Fields: []Field{{Var: "n", Values: []string{"42"}}}}}, nil
	}})
	s.Register(h.m)
	h.s = s
	return h
}

var sessionID = regexp.MustCompile(`sessionid='([0-9a-f]+)'`)

// do sends iq (from alice@example.org/a unless it says otherwise, with
// {sid} replaced by sid) and checks that the answer matches want, where
// {sid} is any session id; it returns the one answered.
func (h *harness) do(iq, sid, want string) string {
	h.t.Helper()
	if !strings.Contains(iq, " from=") {
		iq = strings.Replace(iq, "<iq ", "<iq from='alice@example.org/a' ", 1)
	}
	iq = strings.ReplaceAll(iq, "{sid}", sid)
	s, err := stanza.ParseElement([]byte(iq))
	if err != nil {
		h.t.Fatal(err)
	}
	h.out.replies = nil
	h.m.HandleServer(context.Background(), s)
	if len(h.out.replies) != 1 {
		h.t.Fatalf("%d replies to %s", len(h.out.replies), iq)
	}
	got := h.out.replies[0]
	if m := sessionID.FindStringSubmatch(got); m != nil {
		sid = m[1]
	}
	if err := xmlcmp.Equal([]byte(strings.ReplaceAll(want, "{sid}", sid)), []byte(got), "jabber:client"); err != nil {
		h.t.Errorf("sent %s\ngot  %s\nwant %s\n%v", iq, got, want, err)
	}
	return sid
}

const (
	sizeForm = `<x xmlns='jabber:x:data' type='form'><title>Size</title><field var='size' type='list-single'><required/><option label='Small'><value>s</value></option><option label='Large'><value>l</value></option></field></x>`
	cmdNS    = `xmlns='http://jabber.org/protocol/commands'`
)

func submit(fields string) string {
	return `<x xmlns='jabber:x:data' type='submit'>` + fields + `</x>`
}

// TestStages: execute shows the first form with the actions it allows;
// next moves on keeping the values, prev goes back with them filled in,
// complete runs the command (from the last stage, or the first, which
// allows it), cancel ends a session (XEP-0050 §3.2–§3.4).
func TestStages(t *testing.T) {
	h := newHarness(t)
	sid := h.do(`<iq to='example.org' type='set' id='1'><command `+cmdNS+` node='pizza' action='execute'/></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='result' id='1'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><actions execute='next'><next/><complete/></actions>`+sizeForm+`</command></iq>`)
	h.do(`<iq to='example.org' type='set' id='2'><command `+cmdNS+` node='pizza' sessionid='{sid}'>`+submit(`<field var='size'><value>l</value></field>`)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='2'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><actions execute='complete'><prev/><complete/></actions><x xmlns='jabber:x:data' type='form'><title>Toppings for l</title><field var='toppings' type='list-multi'/></x></command></iq>`)
	h.do(`<iq to='example.org' type='set' id='3'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='next'>`+submit(``)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='error' id='3'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><bad-action `+cmdNS+`/></error></iq>`)
	h.do(`<iq to='example.org' type='set' id='4'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='prev'/></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='4'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><actions execute='next'><next/><complete/></actions><x xmlns='jabber:x:data' type='form'><title>Size</title><field var='size' type='list-single'><required/><value>l</value><option label='Small'><value>s</value></option><option label='Large'><value>l</value></option></field></x></command></iq>`)
	h.do(`<iq to='example.org' type='set' id='5'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='next'>`+submit(`<field var='size'><value>s</value></field>`)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='5'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><ANY/></command></iq>`)
	h.do(`<iq to='example.org' type='set' id='6'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='complete'>`+submit(`<field var='toppings'><value>ham</value><value>olives</value></field>`)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='6'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='completed'><note type='info'>ordered s ham,olives</note></command></iq>`)
	// The session is over.
	h.do(`<iq to='example.org' type='set' id='7'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='cancel'/></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='error' id='7'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><bad-sessionid `+cmdNS+`/></error></iq>`)

	// Complete from the first stage, which allows it; a form sent with
	// the first request is taken as that stage's (a script's shortcut).
	h.do(`<iq to='example.org' type='set' id='8'><command `+cmdNS+` node='pizza' action='complete'>`+submit(`<field var='size'><value>s</value></field>`)+`</command></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='result' id='8'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='completed'><note type='info'>ordered s </note></command></iq>`)
	if len(h.ran) != 2 {
		t.Errorf("ran %d times, want 2", len(h.ran))
	}

	// Cancel.
	sid = h.do(`<iq to='example.org' type='set' id='9'><command `+cmdNS+` node='pizza'/></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='result' id='9'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><ANY/></command></iq>`)
	h.do(`<iq to='example.org' type='set' id='10'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='cancel'/></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='10'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='canceled'/></iq>`)
	h.do(`<iq to='example.org' type='set' id='11'><command `+cmdNS+` node='pizza' sessionid='{sid}'>`+submit(`<field var='size'><value>s</value></field>`)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='error' id='11'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><bad-sessionid `+cmdNS+`/></error></iq>`)
	if len(h.ran) != 2 {
		t.Errorf("a canceled command ran")
	}
}

// TestErrors: the errors of XEP-0050 §4.4 and XEP-0133 §5.
func TestErrors(t *testing.T) {
	h := newHarness(t)
	badRequest := func(id, specific string) string {
		return `<iq from='example.org' to='alice@example.org/a' type='error' id='` + id + `'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><` + specific + ` ` + cmdNS + `/></error></iq>`
	}
	h.do(`<iq to='example.org' type='set' id='1'><command `+cmdNS+` node='pizza' action='order'/></iq>`, "", badRequest("1", "malformed-action"))
	h.do(`<iq to='example.org' type='set' id='2'><command `+cmdNS+` node='nothing'/></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='error' id='2'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	h.do(`<iq to='example.org' type='set' id='3'><command `+cmdNS+` node='secret'/></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='error' id='3'><error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	h.do(`<iq from='root@example.org/x' to='example.org' type='set' id='4'><command `+cmdNS+` node='secret'/></iq>`, "",
		`<iq from='example.org' to='root@example.org/x' type='result' id='4'><command `+cmdNS+` node='secret' sessionid='{sid}' status='completed'><x xmlns='jabber:x:data' type='result'><field var='n'><value>42</value></field></x></command></iq>`)
	h.do(`<iq to='example.org' type='set' id='5'><command `+cmdNS+` node='pizza' sessionid='nope'>`+submit(``)+`</command></iq>`, "", badRequest("5", "bad-sessionid"))

	sid := h.do(`<iq to='example.org' type='set' id='6'><command `+cmdNS+` node='pizza'/></iq>`, "",
		`<iq from='example.org' to='alice@example.org/a' type='result' id='6'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><ANY/></command></iq>`)
	// Only the full JID that started a session may use it.
	h.do(`<iq from='alice@example.org/b' to='example.org' type='set' id='7'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='cancel'/></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/b' type='error' id='7'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><bad-sessionid `+cmdNS+`/></error></iq>`)
	// A required field left empty; no form at all; prev at the first
	// stage.
	h.do(`<iq to='example.org' type='set' id='8'><command `+cmdNS+` node='pizza' sessionid='{sid}'>`+submit(`<field var='size'><value> </value></field>`)+`</command></iq>`, sid, badRequest("8", "bad-payload"))
	h.do(`<iq to='example.org' type='set' id='9'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='next'/></iq>`, sid, badRequest("9", "bad-payload"))
	h.do(`<iq to='example.org' type='set' id='10'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='prev'/></iq>`, sid, badRequest("10", "bad-action"))
	// The session waits Timeout for each step, then expires.
	h.now = h.now.Add(Timeout)
	h.do(`<iq to='example.org' type='set' id='11'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='next'>`+submit(`<field var='size'><value>s</value></field>`)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='result' id='11'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><ANY/></command></iq>`)
	h.now = h.now.Add(Timeout + time.Second)
	h.do(`<iq to='example.org' type='set' id='12'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='complete'>`+submit(``)+`</command></iq>`, sid,
		`<iq from='example.org' to='alice@example.org/a' type='error' id='12'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><session-expired `+cmdNS+`/></error></iq>`)
	// A form with the first request that fails leaves no session behind:
	// its requester never learnt the id.
	before := len(h.s.sessions)
	h.do(`<iq to='example.org' type='set' id='12b'><command `+cmdNS+` node='pizza' action='complete'>`+submit(``)+`</command></iq>`, "", badRequest("12b", "bad-payload"))
	if n := len(h.s.sessions); n != before {
		t.Errorf("%d sessions after a failed first request, want %d", n, before)
	}
	// Commands are the server's, not an account's.
	h.do(`<iq to='alice@example.org' type='set' id='13'><command `+cmdNS+` node='pizza'/></iq>`, "",
		`<iq from='alice@example.org' to='alice@example.org/a' type='error' id='13'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
}

// TestSessionLimits: a requester keeps at most maxPerRequester sessions,
// the oldest ending first.
func TestSessionLimits(t *testing.T) {
	h := newHarness(t)
	var sids []string
	for range maxPerRequester + 1 {
		h.now = h.now.Add(time.Second)
		sids = append(sids, h.do(`<iq to='example.org' type='set' id='s'><command `+cmdNS+` node='pizza'/></iq>`, "",
			`<iq from='example.org' to='alice@example.org/a' type='result' id='s'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='executing'><ANY/></command></iq>`))
	}
	h.do(`<iq to='example.org' type='set' id='old'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='cancel'/></iq>`, sids[0],
		`<iq from='example.org' to='alice@example.org/a' type='error' id='old'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><bad-sessionid `+cmdNS+`/></error></iq>`)
	h.do(`<iq to='example.org' type='set' id='new'><command `+cmdNS+` node='pizza' sessionid='{sid}' action='cancel'/></iq>`, sids[1],
		`<iq from='example.org' to='alice@example.org/a' type='result' id='new'><command `+cmdNS+` node='pizza' sessionid='{sid}' status='canceled'/></iq>`)
}

// TestDiscovery: the command list shows what the requester may run, and
// each command's node describes it (XEP-0050 §2.2, §2.4); the admin
// commands stay hidden from others (XEP-0133 §3).
func TestDiscovery(t *testing.T) {
	h := newHarness(t)
	req := func(from, node string) dispatch.Request {
		s, _ := stanza.ParseElement([]byte(`<iq from='` + from + `' to='example.org' type='get' id='d'/>`))
		return dispatch.Request{Stanza: s, To: jid.MustParse("example.org")}
	}
	for _, who := range []struct {
		from  string
		nodes string
	}{{"alice@example.org/a", "pizza"}, {"root@example.org/x", "pizza secret"}} {
		items, ok := h.m.NodeItems(context.Background(), req(who.from, NS), NS)
		if !ok {
			t.Fatalf("%s: no command list", who.from)
		}
		var nodes []string
		for _, it := range items {
			if it.JID != "example.org" {
				t.Errorf("item %+v: not the server's", it)
			}
			nodes = append(nodes, it.Node)
		}
		if got := strings.Join(nodes, " "); got != who.nodes {
			t.Errorf("%s sees %q, want %q", who.from, got, who.nodes)
		}
	}
	if _, _, ok := h.m.NodeInfo(context.Background(), req("alice@example.org/a", "secret"), "secret"); ok {
		t.Error("alice sees the admin command's info")
	}
	ids, features, ok := h.m.NodeInfo(context.Background(), req("root@example.org/x", "secret"), "secret")
	if !ok || len(ids) != 1 || ids[0] != (dispatch.Identity{Category: "automation", Type: "command-node", Name: "Secret"}) ||
		strings.Join(features, " ") != NS+" "+NSData {
		t.Errorf("info of secret for root: %v %v %v", ids, features, ok)
	}
}
