package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
	"github.com/starling-xmpp/starling/websocket"
)

// converseFiles writes the files of a converse.js package the web client
// needs into a temporary directory and returns it.
func converseFiles(t *testing.T) string {
	t.Helper()
	pkg := filepath.Join(t.TempDir(), "converse.js")
	for _, f := range config.WebClientFiles {
		p := filepath.Join(pkg, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("/* "+f+" */\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pkg
}

// TestWebClient: with [http] web_client on, the HTTPS listener serves the
// chat page for the host asked for and Converse's files beside the
// WebSocket, BOSH and host-meta endpoints; a reload turns it off and on;
// without Converse.js the server does not start, and a reload that would
// need it is refused.
func TestWebClient(t *testing.T) {
	// config.ReservedPaths, which web_client_path may not take, are the
	// endpoints' paths.
	for _, p := range []string{websocket.Path, bosh.Path, strings.TrimSuffix(websocket.HostMeta, "/host-meta")} {
		if !slices.Contains(config.ReservedPaths, p) {
			t.Errorf("config.ReservedPaths %v lacks %s", config.ReservedPaths, p)
		}
	}

	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	cfg.C2S.Listen = []string{"127.0.0.1:0"}
	cfg.C2S.DirectTLSListen = nil
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"}
	cfg.HTTP.WebClient = true
	cfg.HTTP.WebClientDir = converseFiles(t)
	cfg.S2S.Enabled = false // it would listen on 5269
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Without the files: refused at start, saying how to install them.
	missing := cfg.Clone()
	missing.HTTP.WebClientDir = filepath.Join(t.TempDir(), "nowhere")
	if _, err := server.New(context.Background(), missing, log); err == nil || !strings.Contains(err.Error(), "make webclient") {
		t.Fatalf("server.New without Converse.js: %v; want an error saying how to install it", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	_, https := srv.HTTPAddrs()
	_, port, _ := strings.Cut(https[0].String(), ":")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "https://"+https[0].String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "localhost:" + port
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	code, page := get("/chat")
	if code != http.StatusOK {
		t.Fatalf("/chat: status %d: %s", code, page)
	}
	for _, want := range []string{
		`"websocket_url":"wss://localhost:` + port + `/xmpp-websocket"`,
		`"bosh_service_url":"https://localhost:` + port + `/http-bind"`,
		`"default_domain":"localhost"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
	if code, body := get("/chat/dist/converse.min.js"); code != http.StatusOK || body != "/* dist/converse.min.js */\n" {
		t.Errorf("converse.min.js: status %d: %q", code, body)
	}
	if code, _ := get("/.well-known/host-meta"); code != http.StatusOK {
		t.Errorf("host-meta: status %d", code)
	}

	off := cfg.Clone()
	off.HTTP.WebClient = false
	if err := srv.Reload(off); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/chat"); code != http.StatusNotFound {
		t.Errorf("after turning it off: /chat status %d", code)
	}
	if err := srv.Reload(missing); err == nil || !strings.Contains(err.Error(), "make webclient") {
		t.Errorf("Reload without Converse.js: %v; want an error saying how to install it", err)
	}
	moved := cfg.Clone()
	moved.HTTP.WebClientPath = "/"
	if err := srv.Reload(moved); err != nil {
		t.Fatal(err)
	}
	if code, page := get("/"); code != http.StatusOK || !strings.Contains(page, `"assets_path":"/dist/"`) {
		t.Errorf("moved to /: status %d:\n%s", code, page)
	}
	if code, _ := get("/.well-known/host-meta.json"); code != http.StatusOK {
		t.Errorf("with the web client at /: host-meta.json status %d", code)
	}
}
