package s2s

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/fakeclock"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/stanza"
)

// bounceRouter serves local.test and records bounces; what federation
// does not use here panics.
type bounceRouter struct {
	router.Router
	bounced chan bounce
}

type bounce struct {
	s *stanza.Stanza
	e *stanza.Error
}

func (r *bounceRouter) Serves(domain string) bool { return domain == "local.test" }
func (r *bounceRouter) Bounce(_ context.Context, s *stanza.Stanza, e *stanza.Error) {
	r.bounced <- bounce{s, e}
}

// testFederation is a Federation of local.test that asks a DNS server
// with no records (every remote domain is unknown), on a clock that moves
// only when told, with a retry delay of 10 s up to 30 s; r records its
// bounces.
func testFederation(t *testing.T) (*config.Config, *Federation, *bounceRouter, *fakeclock.Clock) {
	t.Helper()
	dns, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	cfg := config.Default()
	cfg.Server.Hosts = []string{"local.test"}
	cfg.S2S.Resolver = dns.Addr()
	cfg.S2S.RetryDelay.Duration = 10 * time.Second
	cfg.S2S.MaxRetryDelay.Duration = 30 * time.Second
	r := &bounceRouter{bounced: make(chan bounce, 10)}
	f, err := New(context.Background(), func() *config.Config { return cfg }, slog.New(slog.DiscardHandler), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	f.now = clock.Now
	t.Cleanup(f.Close)
	return cfg, f, r, clock
}

// TestBackoff follows the retries to a domain that cannot be reached (no
// such name in DNS), on a clock that moves only when told: the first
// stanza bounces after a failed attempt; during the backoff window the
// next ones bounce at once with the same error and no attempt; after it,
// a new attempt; the window doubles with each failure in a row, with
// jitter (half to all of it), up to max_retry_delay. A transcript cannot
// wait out windows of seconds; see rfc6120-s2s-outgoing for the rest.
func TestBackoff(t *testing.T) {
	cfg, f, r, clock := testFederation(t)
	ctx := context.Background()
	p := pair{local: "local.test", remote: "nowhere.test"}
	send := func(id string) {
		t.Helper()
		s, err := stanza.ParseElement([]byte("<message from='alice@local.test/phone' to='romeo@nowhere.test' id='" + id + "'/>"))
		if err != nil {
			t.Fatal(err)
		}
		f.RouteRemote(ctx, s)
		select {
		case b := <-r.bounced:
			if b.s.ID != id || b.e.Condition != stanza.RemoteServerNotFound || b.e.Type != stanza.Cancel {
				t.Fatalf("stanza %s: bounced %s with %+v, want %s with remote-server-not-found", id, b.s.ID, b.e, id)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("stanza %s was not bounced", id)
		}
	}
	// state returns the link's state, failures in a row and the rest of
	// its backoff window.
	state := func() (linkState, int, time.Duration) {
		f.mu.Lock()
		l := f.links[p]
		f.mu.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.state, l.failures, l.retryAt.Sub(clock.Now())
	}

	window := cfg.S2S.RetryDelay.Duration
	for n := 1; n <= 4; n++ {
		send("attempt")
		st, failures, left := state()
		if st != failed || failures != n {
			t.Fatalf("after attempt %d: state %d, %d failures in a row", n, st, failures)
		}
		if left < window/2 || left > window {
			t.Fatalf("after attempt %d: retry in %v, want %v to %v", n, left, window/2, window)
		}
		// Within the window: bounced at once, nothing tried (an attempt
		// would have left the failed state first).
		clock.Advance(left - time.Millisecond)
		send("within")
		if st, failures, _ := state(); st != failed || failures != n {
			t.Fatalf("within window %d: state %d, %d failures in a row", n, st, failures)
		}
		clock.Advance(time.Millisecond)
		window = min(2*window, cfg.S2S.MaxRetryDelay.Duration)
	}
}
