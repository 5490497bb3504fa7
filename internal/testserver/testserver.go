// Package testserver runs a whole Starling in the test process, on
// loopback ports chosen by the kernel, with a throwaway data directory.
package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
	ws "github.com/starling-xmpp/starling/websocket"
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

	logs *logBuffer
	stop func() error // stops the server once; later calls return the first result
}

// Stop shuts the server down gracefully, as SIGTERM does, and waits for
// it; the test's end does it otherwise.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Errorf("server stopped with: %v", err)
	}
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
	// Federation would ask the machine's DNS about every other domain a
	// test names: a test that wants it turns it on with its own resolver.
	cfg.S2S.Enabled = false
	cfg.S2S.Listen = []string{"127.0.0.1:0"}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	// The server's log is shown with the test's output when it fails.
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(testWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server stopped with: %v", err)
		}
	})
	s := &Server{Server: srv, Config: cfg, Domain: cfg.Server.Hosts[0], logs: logs, stop: stop}
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

// AddUser creates user@Domain with password, its keys derived with the
// configured auth.scram_iterations.
func (s *Server) AddUser(t testing.TB, user, password string) {
	t.Helper()
	j, err := jid.New(user, s.Domain, "")
	if err != nil {
		t.Fatal(err)
	}
	n := auth.DefaultIterations // a Server made by hand may have no Config
	if s.Config != nil {
		n = s.Config.Auth.SCRAMIterations
	}
	if err := auth.CreateAccount(context.Background(), s.Store(), j, password, n); err != nil {
		t.Fatalf("add user %s: %v", j, err)
	}
}

// CertPool trusts the certificate the server generated for Domain (under
// data_dir/certs), for clients of its TLS listeners.
func (s *Server) CertPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.Config.Server.DataDir, "certs", s.Domain+".crt"))
	if err != nil {
		t.Fatalf("the server's certificate: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in data_dir/certs/%s.crt", s.Domain)
	}
	return roots
}

// HTTPClient is a client of the web listener over TLS that trusts the
// server's certificate for Domain; a request that takes longer than
// timeout fails (0 for none: a test bounds its waits itself).
func (s *Server) HTTPClient(t testing.TB, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CertPool(t), ServerName: s.Domain},
		// A request that says Expect: 100-continue learns when the
		// server starts reading its body.
		ExpectContinueTimeout: 10 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: timeout, Transport: tr}
}

// WebSocketURL and BOSHURL are the endpoints on the TLS web listener:
// wss://…/xmpp-websocket (RFC 7395) and https://…/http-bind (XEP-0206).
func (s *Server) WebSocketURL() string { return "wss://" + s.HTTPSAddr + ws.Path }
func (s *Server) BOSHURL() string      { return "https://" + s.HTTPSAddr + bosh.Path }

// WebSocketOptions are the options of a dial to WebSocketURL: the
// subprotocol "xmpp" (RFC 7395 §3.1), the server's certificate trusted,
// and an empty header to add to.
func (s *Server) WebSocketOptions(t testing.TB) *websocket.DialOptions {
	t.Helper()
	return &websocket.DialOptions{
		Subprotocols: []string{ws.Subprotocol},
		HTTPClient:   s.HTTPClient(t, 0),
		HTTPHeader:   http.Header{},
	}
}

// LogLines returns the lines the server has logged so far that contain
// substr (slog's text format).
func (s *Server) LogLines(substr string) []string {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	var lines []string
	for _, l := range s.logs.lines {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return lines
}

// logBuffer keeps the server's log lines; mu guards lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

// testWriter sends log lines to t.Log and keeps them.
type testWriter struct {
	t    testing.TB
	logs *logBuffer
}

func (w testWriter) Write(p []byte) (int, error) {
	w.logs.mu.Lock()
	w.logs.lines = append(w.logs.lines, strings.TrimSuffix(string(p), "\n"))
	w.logs.mu.Unlock()
	w.t.Log(string(p))
	return len(p), nil
}
