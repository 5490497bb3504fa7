// Package testserver runs a whole Starling in the test process, on
// loopback ports chosen by the kernel, with a throwaway data directory.
package testserver

import (
	"context"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
	"github.com/starling-xmpp/starling/xep/register"
)

// Server is a running in-process server.
type Server struct {
	*server.Server
	Config *config.Config
	// Addr is the STARTTLS listener, DirectTLSAddr the XEP-0368 one.
	Addr, DirectTLSAddr string
	// HTTPAddr and HTTPSAddr are the web listener's, plain and TLS
	// (WebSocket at websocket.Path).
	HTTPAddr, HTTPSAddr string
	// Domain is the first host.
	Domain string
}

// Start runs a server with config.Default() on loopback, with every
// listener on (HTTP included) and adjusted by edit (which may be nil),
// until the test ends.
func Start(t testing.TB, edit func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLSListen = []string{"127.0.0.1:0"}
	cfg.HTTP.Listen = []string{"127.0.0.1:0"}
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	// The server's log is shown with the test's output when it fails.
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with: %v", err)
		}
	})
	s := &Server{Server: srv, Config: cfg, Domain: cfg.Server.Hosts[0]}
	starttls, direct := srv.Addrs()
	if len(starttls) > 0 {
		s.Addr = starttls[0].String()
	}
	if len(direct) > 0 {
		s.DirectTLSAddr = direct[0].String()
	}
	plain, tls := srv.HTTPAddrs()
	if len(plain) > 0 {
		s.HTTPAddr = plain[0].String()
	}
	if len(tls) > 0 {
		s.HTTPSAddr = tls[0].String()
	}
	return s
}

// AddUser creates user@Domain with password.
func (s *Server) AddUser(t testing.TB, user, password string) {
	t.Helper()
	j, err := jid.New(user, s.Domain, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := register.Create(context.Background(), s.Store(), j, password); err != nil {
		t.Fatalf("add user %s: %v", j, err)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
