package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/server"
)

// start runs a server on loopback until stop is called; done receives
// Run's result.
func start(t *testing.T) (srv *server.Server, cfg *config.Config, stop func() error) {
	t.Helper()
	cfg = config.Default()
	cfg.Server.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLSListen = []string{"127.0.0.1:0"}
	cfg.S2S.Enabled = false // it would listen on 5269
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return srv, cfg, stop
}

func addr(srv *server.Server) string {
	starttls, _ := srv.Addrs()
	return starttls[0].String()
}

// TestShutdown: on stop, every stream gets <system-shutdown/> (RFC 6120
// §4.9.3.20), Run returns cleanly and the listeners are closed.
func TestShutdown(t *testing.T) {
	srv, _, stop := start(t)
	ts := &testserver.Server{Server: srv, Domain: "localhost"}
	ts.AddUser(t, "alice", "alice-secret")
	alice := xmpptest.Login(t, addr(srv), "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	pending := xmpptest.Dial(t, addr(srv), "localhost")
	pending.OpenStream()

	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	alice.ExpectStreamError("system-shutdown")
	pending.ExpectStreamError("system-shutdown")
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c, err := net.Dial("tcp", addr(srv)); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after shutdown")
	}
}

// TestReload: a reload applies new limits without dropping sessions, and
// refuses what needs a restart.
func TestReload(t *testing.T) {
	srv, cfg, _ := start(t)
	ts := &testserver.Server{Server: srv, Domain: "localhost"}
	ts.AddUser(t, "alice", "alice-secret")
	alice := xmpptest.Login(t, addr(srv), "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")

	next := *cfg
	next.Limits.MaxSessionsPerAccount = 1
	if err := srv.Reload(&next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	alice.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := alice.MustNext(); el.Name.Local != "iq" {
		t.Fatalf("after reload: %s", el.Raw)
	}
	// The new limit holds for new sessions.
	second := xmpptest.Dial(t, addr(srv), "localhost")
	second.OpenStream()
	second.StartTLS(0)
	if err := second.Auth("PLAIN", "alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	second.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	if el := second.MustNext(); !strings.Contains(string(el.Raw), "<resource-constraint") {
		t.Fatalf("second session with max 1: %s", el.Raw)
	}

	moved := next
	moved.Storage.Driver = "postgres"
	moved.Storage.DSN = "postgres://elsewhere/db"
	if err := srv.Reload(&moved); err == nil {
		t.Fatal("Reload accepted a storage change")
	}
	web := next
	web.HTTP.TLSListen = []string{"127.0.0.1:0"}
	if err := srv.Reload(&web); err == nil {
		t.Fatal("Reload accepted a new web listener")
	}
}

// TestAdminEndSessions: `starling user del` removes the account from
// storage, then asks the running server through the admin socket to end
// its sessions (issue 2 part 9: deleting an account ends its sessions).
func TestAdminEndSessions(t *testing.T) {
	srv, cfg, _ := start(t)
	ts := &testserver.Server{Server: srv, Domain: "localhost"}
	ts.AddUser(t, "alice", "alice-secret")
	ts.AddUser(t, "bob", "bob-secret")
	alice := xmpptest.Login(t, addr(srv), "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	bob := xmpptest.Login(t, addr(srv), "localhost", "bob", "bob-secret", "SCRAM-SHA-256", "phone")

	ctx := context.Background()
	if err := srv.Store().DeleteAccount(ctx, "localhost", "alice"); err != nil {
		t.Fatal(err)
	}
	running, err := server.EndSessions(ctx, cfg, jid.MustParse("alice@localhost"))
	if err != nil || !running {
		t.Fatalf("EndSessions = %v, %v", running, err)
	}
	alice.ExpectStreamError("not-authorized")
	bob.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := bob.MustNext(); !strings.Contains(string(el.Raw), "result") {
		t.Fatalf("bob after alice's removal: %s", el.Raw)
	}

	other := config.Default()
	other.Server.DataDir = t.TempDir()
	if running, err := server.EndSessions(ctx, other, jid.MustParse("alice@localhost")); running || err != nil {
		t.Fatalf("EndSessions without a server = %v, %v", running, err)
	}
}
