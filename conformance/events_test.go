package conformance

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/presence"
)

// TestSessionEvents: the lifecycle events a module can follow fire once
// each, in order, with the session (DESIGN.md's event table): bound,
// available with its priority, unavailable, the account's last resource
// gone with its status, ended.
func TestSessionEvents(t *testing.T) {
	srv := testserver.Start(t, nil)
	srv.AddUser(t, "alice", "alice-secret")
	var mu sync.Mutex
	var got []string
	record := func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}
	bus := srv.Bus()
	event.On(bus, event.Last, "test", func(_ context.Context, e *c2s.SessionBound) bool {
		record("bound " + e.Session.JID().String())
		return false
	})
	event.On(bus, event.Last, "test", func(_ context.Context, e *presence.Available) bool {
		record("available " + e.Session.JID().Resourcepart() + " " + string(rune('0'+e.Priority)))
		return false
	})
	event.On(bus, event.Last, "test", func(_ context.Context, e *presence.Unavailable) bool {
		record("unavailable " + e.Session.JID().Resourcepart())
		return false
	})
	event.On(bus, event.Last, "test", func(_ context.Context, e *presence.AccountUnavailable) bool {
		record("account unavailable " + e.User.String() + " " + e.Status)
		return false
	})
	ended := make(chan struct{})
	event.On(bus, event.Last, "test", func(_ context.Context, e *c2s.SessionEnded) bool {
		record("ended " + e.Session.JID().Resourcepart())
		close(ended)
		return false
	})

	c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	c.Send("<presence><priority>3</priority></presence>")
	c.MustNext() // her own presence, back
	c.Send("<presence type='unavailable'><status>gone fishing</status></presence>")
	c.MustNext()
	c.Send("</stream:stream>")
	<-ended
	want := []string{
		"bound alice@localhost/phone",
		"available phone 3",
		"unavailable phone",
		"account unavailable alice@localhost gone fishing",
		"ended phone",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
