package s2s

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// blockingRouter routes by calling route; what the inbox does not use
// panics.
type blockingRouter struct {
	router.Router
	route   func(*stanza.Stanza)
	bounced chan *stanza.Stanza
}

func (r *blockingRouter) Route(_ context.Context, s *stanza.Stanza) { r.route(s) }
func (r *blockingRouter) Bounce(_ context.Context, s *stanza.Stanza, _ *stanza.Error) {
	r.bounced <- s
}

func msg(t *testing.T, to string, n int) *stanza.Stanza {
	t.Helper()
	s, err := stanza.ParseElement([]byte(fmt.Sprintf("<message from='a@remote.test' to='%s' id='%d'/>", to, n)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInboxSlowRecipient checks that a recipient whose delivery hangs
// delays nobody else, that each recipient gets its stanzas in order, and
// that a recipient's queue is bounded.
func TestInboxSlowRecipient(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	got := map[string][]string{}
	fast := make(chan struct{}, 100)
	slowDone := make(chan struct{})
	r := &blockingRouter{bounced: make(chan *stanza.Stanza, 10)}
	r.route = func(s *stanza.Stanza) {
		if s.To.Localpart() == "slow" {
			<-release
		}
		mu.Lock()
		got[s.To.Localpart()] = append(got[s.To.Localpart()], s.ID)
		mu.Unlock()
		if s.To.Localpart() == "fast" {
			fast <- struct{}{}
		}
		if s.To.Localpart() == "slow" && s.ID == fmt.Sprint(perRecipient) {
			close(slowDone)
		}
	}
	b := newInbox(r)
	ctx := context.Background()
	for i := range perRecipient + 1 {
		b.put(ctx, msg(t, "slow@local.test", i))
	}
	// The queue behind the hanging delivery holds perRecipient stanzas;
	// one more is refused.
	b.put(ctx, msg(t, "slow@local.test", perRecipient+1))
	if s := <-r.bounced; s.ID != fmt.Sprint(perRecipient+1) {
		t.Fatalf("bounced %s, want the last one", s.ID)
	}
	for i := range 50 {
		b.put(ctx, msg(t, "fast@local.test", i))
	}
	for range 50 {
		<-fast // all delivered while slow@ still hangs
	}
	close(release)
	<-slowDone
	mu.Lock()
	defer mu.Unlock()
	for who, n := range map[string]int{"slow": perRecipient + 1, "fast": 50} {
		if len(got[who]) != n {
			t.Fatalf("%s got %d stanzas, want %d", who, len(got[who]), n)
		}
		for i, id := range got[who] {
			if id != fmt.Sprint(i) {
				t.Fatalf("%s got stanza %s in position %d", who, id, i)
			}
		}
	}
}
