package muc

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// fakeRouter records what the service routes.
type fakeRouter struct {
	router.Router
	mu  sync.Mutex
	out []*stanza.Stanza
}

func (f *fakeRouter) Route(_ context.Context, st *stanza.Stanza) {
	f.mu.Lock()
	f.out = append(f.out, st)
	f.mu.Unlock()
}

func (f *fakeRouter) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, st := range f.out {
		got = append(got, string(st.Raw))
	}
	f.out = nil
	return got
}

func newService(t *testing.T, st storage.MUC) (*Service, *fakeRouter) {
	t.Helper()
	r := &fakeRouter{}
	s := &Service{Domain: "conference.example.org", Host: "example.org", Router: r, Store: st,
		Options: DefaultOptions, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if st != nil {
		if err := s.load(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return s, r
}

// send hands the service a stanza written in the test.
func send(t *testing.T, s *Service, raw string) {
	t.Helper()
	st, err := stanza.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	s.HandleService(t.Context(), st)
}

func contains(got []string, want string) bool {
	for _, g := range got {
		if strings.Contains(g, want) {
			return true
		}
	}
	return false
}

// TestPersistentRoom: a persistent room's configuration, subject and
// affiliations survive a restart (a new Service on the same storage); a
// temporary room does not, and a destroyed one is gone from storage.
func TestPersistentRoom(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	s, r := newService(t, db)
	const owner = "alice@example.org/phone"
	send(t, s, "<presence from='"+owner+"' to='keep@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='c'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_roomname'><value>Kept</value></field>"+
		"<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>")
	send(t, s, "<message from='"+owner+"' to='keep@conference.example.org' type='groupchat'><subject>Still here</subject></message>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='bob@example.org' affiliation='member' nick='Bobby'/><item jid='eve@example.org' affiliation='outcast'><reason>spam</reason></item></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a2'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='dan@example.org' affiliation='member'/></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='keep@conference.example.org' type='set' id='a3'><query xmlns='"+NSAdmin+"'>"+
		"<item jid='dan@example.org' affiliation='none'/></query></iq>")
	// A temporary room, configured, with its owner still inside.
	send(t, s, "<presence from='"+owner+"' to='temp@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='temp@conference.example.org' type='set' id='t'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	// A persistent room, then destroyed.
	send(t, s, "<presence from='"+owner+"' to='gone@conference.example.org/Al'/>")
	send(t, s, "<iq from='"+owner+"' to='gone@conference.example.org' type='set' id='g'><query xmlns='"+NSOwner+"'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query></iq>")
	send(t, s, "<iq from='"+owner+"' to='gone@conference.example.org' type='set' id='d'><query xmlns='"+NSOwner+"'><destroy/></query></iq>")
	for _, got := range r.take() {
		if strings.Contains(got, "type='error'") {
			t.Fatalf("error: %s", got)
		}
	}

	// The restart.
	s2, r2 := newService(t, db)
	if len(s2.rooms) != 1 || s2.rooms["keep"] == nil {
		t.Fatalf("rooms after a restart: %v", s2.rooms)
	}
	kept := s2.rooms["keep"]
	if kept.cfg.Name != "Kept" || !kept.cfg.MembersOnly || kept.subject != "Still here" || kept.locked {
		t.Errorf("room after a restart: %+v, subject %q", kept.cfg, kept.subject)
	}
	want := map[string]affiliation{
		"alice@example.org": {aff: affOwner},
		"bob@example.org":   {aff: affMember, nick: "Bobby"},
		"eve@example.org":   {aff: affOutcast, reason: "spam"},
	}
	if len(kept.affiliations) != len(want) {
		t.Errorf("affiliations after a restart: %v", kept.affiliations)
	}
	for j, a := range want {
		if kept.affiliations[j] != a {
			t.Errorf("%s: %+v, want %+v", j, kept.affiliations[j], a)
		}
	}
	// It works as it did: the banned stay out, a member enters with
	// the occupant-id of before.
	send(t, s2, "<presence from='eve@example.org/x' to='keep@conference.example.org/Eve'/>")
	if got := r2.take(); !contains(got, "<forbidden") {
		t.Errorf("outcast entering: %q", got)
	}
	send(t, s2, "<presence from='bob@example.org/x' to='keep@conference.example.org/Bobby'/>")
	got := r2.take()
	if !contains(got, "<subject>Still here</subject>") || !contains(got, "id='"+s.rooms["keep"].occupantID(jidOf(t, "bob@example.org"))+"'") {
		t.Errorf("member entering: %q", got)
	}
}

func jidOf(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
