package webclient_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/webclient"
	"github.com/starling-xmpp/starling/websocket"
)

var endpoints = webclient.Endpoints{WebSocket: websocket.Path, BOSH: "/http-bind"}

// fakePackage writes a converse.js package into a temporary directory:
// the files the page loads and a few of every kind, plus what must not
// be served (a hidden file, a file without a known type, a file beside
// dist/ and a symbolic link to it).
func fakePackage(t *testing.T) string {
	t.Helper()
	pkg := filepath.Join(t.TempDir(), "converse.js")
	files := map[string]string{
		"package.json":                 `{"name": "converse.js"}`,
		"dist/converse.min.js":         "export default {};\n",
		"dist/converse.min.css":        "body {}\n",
		"dist/emoji.json":              "{}",
		"dist/converse.min.js.map":     "{}",
		"dist/curve25519.wasm":         "\x00asm",
		"dist/images/favicon.ico":      "ico",
		"dist/images/logo/logo.svg":    "<svg xmlns='http://www.w3.org/2000/svg'/>",
		"dist/sounds/msg_received.mp3": "ID3",
		"dist/webfonts/icons.ttf":      "ttf",
		"dist/chunkjs/locales/de.js":   "export const de = {};\n",
		"dist/sounds/README":           "not served",
		"dist/.secret.js":              "hidden",
	}
	for name, body := range files {
		p := filepath.Join(pkg, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../package.json", filepath.Join(pkg, "dist", "package.js")); err != nil {
		t.Fatal(err)
	}
	return pkg
}

// webConfig is a configuration with the web client on, files from pkg.
func webConfig(pkg string, edit func(*config.Config)) *config.Config {
	cfg := config.Default()
	cfg.Server.Hosts = []string{"a.example", "bücher.example"}
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"}
	cfg.HTTP.WebClient = true
	cfg.HTTP.WebClientDir = pkg
	cfg.Hosts = map[string]config.Host{"bücher.example": {Registration: config.HostRegistration{Enabled: ptr(true)}}}
	if edit != nil {
		edit(cfg)
	}
	return cfg
}

// listener is the web listener as the server builds it: package
// websocket's handler (which reads the proxies' headers) with the web
// client behind it.
type listener struct {
	web  *websocket.Handler
	chat *webclient.Handler
}

func newListener(t *testing.T, cfg *config.Config) *listener {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	web := websocket.NewHandler(cfg, log, nil)
	web.HandleBOSH(endpoints.BOSH, http.NotFoundHandler())
	chat, err := webclient.New(cfg, log, web.Requested, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	web.HandleOther(chat)
	return &listener{web: web, chat: chat}
}

// request is one request to the listener.
type request struct {
	method, target string
	host           string // the Host header
	tls            bool
	remote         string      // the peer's address; default 192.0.2.1:4000, not a trusted proxy
	header         http.Header // extra headers
}

func (l *listener) do(t *testing.T, rq request) *http.Response {
	t.Helper()
	if rq.method == "" {
		rq.method = http.MethodGet
	}
	scheme := "http://"
	if rq.tls {
		scheme = "https://"
	}
	r := httptest.NewRequest(rq.method, scheme+"placeholder"+rq.target, nil)
	r.Host = rq.host
	r.RemoteAddr = "192.0.2.1:4000"
	if rq.remote != "" {
		r.RemoteAddr = rq.remote
	}
	for k, vs := range rq.header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	l.web.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var settingsBlock = regexp.MustCompile(`(?s)<script type="application/json" id="starling-converse-settings">(.*?)</script>`)

// pageSettings returns the settings the page passes to converse.initialize.
func pageSettings(t *testing.T, page string) map[string]any {
	t.Helper()
	m := settingsBlock.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no settings in the page:\n%s", page)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(m[1]), &s); err != nil {
		t.Fatalf("settings %s: %v", m[1], err)
	}
	return s
}

// The page is preconfigured for the host the browser asked for: the
// endpoints at that host and scheme, its XMPP domain, and registration
// where that host has it on.
func TestPagePerHost(t *testing.T) {
	l := newListener(t, webConfig(fakePackage(t), nil))
	trusted := "127.0.0.1:4000" // loopback: a trusted proxy by default
	for _, tc := range []struct {
		name             string
		rq               request
		ws, bosh, domain string
		registration     bool
		connect          string // the WebSocket origin in connect-src
	}{
		{"host over TLS", request{host: "a.example:5443", tls: true},
			"wss://a.example:5443/xmpp-websocket", "https://a.example:5443/http-bind", "a.example", false, "wss://a.example:5443"},
		{"host without a port", request{host: "a.example", tls: true},
			"wss://a.example/xmpp-websocket", "https://a.example/http-bind", "a.example", false, "wss://a.example"},
		{"second host, as an A-label, with registration", request{host: "xn--bcher-kva.example:5443", tls: true},
			"wss://xn--bcher-kva.example:5443/xmpp-websocket", "https://xn--bcher-kva.example:5443/http-bind", "bücher.example", true, "wss://xn--bcher-kva.example:5443"},
		{"host in capitals", request{host: "A.Example:5443", tls: true},
			"wss://A.Example:5443/xmpp-websocket", "https://A.Example:5443/http-bind", "a.example", false, "wss://A.Example:5443"},
		{"an address: the first host's domain", request{host: "127.0.0.1:5280"},
			"ws://127.0.0.1:5280/xmpp-websocket", "http://127.0.0.1:5280/http-bind", "a.example", false, "ws://127.0.0.1:5280"},
		{"an IPv6 address", request{host: "[::1]:5443", tls: true},
			"wss://[::1]:5443/xmpp-websocket", "https://[::1]:5443/http-bind", "a.example", false, "wss://[::1]:5443"},
		{"another name: the first host's domain", request{host: "chat.example.net", tls: true},
			"wss://chat.example.net/xmpp-websocket", "https://chat.example.net/http-bind", "a.example", false, "wss://chat.example.net"},
		{"no Host header", request{host: "", tls: true},
			"wss://a.example/xmpp-websocket", "https://a.example/http-bind", "a.example", false, "wss://a.example"},
		{"behind a trusted proxy", request{host: "127.0.0.1:5280", remote: trusted,
			header: http.Header{"X-Forwarded-Host": {"xn--bcher-kva.example"}, "X-Forwarded-Proto": {"https"}}},
			"wss://xn--bcher-kva.example/xmpp-websocket", "https://xn--bcher-kva.example/http-bind", "bücher.example", true, "wss://xn--bcher-kva.example"},
		{"a trusted proxy's last value counts", request{host: "127.0.0.1:5280", remote: trusted,
			header: http.Header{"X-Forwarded-Host": {"evil.example, a.example:8443"}, "X-Forwarded-Proto": {"http, https"}}},
			"wss://a.example:8443/xmpp-websocket", "https://a.example:8443/http-bind", "a.example", false, "wss://a.example:8443"},
		{"an untrusted client's forwarded headers do not count", request{host: "a.example:5280",
			header: http.Header{"X-Forwarded-Host": {"xn--bcher-kva.example"}, "X-Forwarded-Proto": {"https"}}},
			"ws://a.example:5280/xmpp-websocket", "http://a.example:5280/http-bind", "a.example", false, "ws://a.example:5280"},
		{"a forwarded host that is not a host name", request{host: "127.0.0.1:5280", remote: trusted,
			header: http.Header{"X-Forwarded-Host": {`x.example"; script-src *`}, "X-Forwarded-Proto": {"https"}}},
			"wss://a.example/xmpp-websocket", "https://a.example/http-bind", "a.example", false, "wss://a.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rq.target = "/chat"
			resp := l.do(t, tc.rq)
			page := body(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, page)
			}
			want := map[string]any{
				"websocket_url":                 tc.ws,
				"bosh_service_url":              tc.bosh,
				"discover_connection_methods":   false,
				"view_mode":                     "fullscreen",
				"default_domain":                tc.domain,
				"domain_placeholder":            tc.domain,
				"allow_registration":            tc.registration,
				"xmpp_providers_url":            "",
				"embed_3rd_party_media_players": false,
				"assets_path":                   "/chat/dist/",
			}
			if tc.registration {
				want["registration_domain"] = tc.domain
			}
			if got := pageSettings(t, page); !reflect.DeepEqual(got, want) {
				t.Errorf("settings\n got %v\nwant %v", got, want)
			}
			if !strings.Contains(page, "<title>Chat · "+tc.domain+"</title>") {
				t.Errorf("the page's title does not name %s:\n%s", tc.domain, page)
			}
			for name, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Cache-Control":          "no-cache",
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			csp := policy(resp.Header.Get("Content-Security-Policy"))
			if got, want := csp["connect-src"], "'self' "+tc.connect; !strings.HasPrefix(got, want) {
				t.Errorf("connect-src %q, want %q first", got, want)
			}
			for dir, want := range map[string]string{
				"default-src": "'self'", "script-src": "'self' 'wasm-unsafe-eval'", "object-src": "'none'",
				"base-uri": "'none'", "frame-ancestors": "'none'",
			} {
				if csp[dir] != want {
					t.Errorf("%s %q, want %q", dir, csp[dir], want)
				}
			}
		})
	}
}

// policy splits a Content-Security-Policy into its directives.
func policy(h string) map[string]string {
	m := map[string]string{}
	for d := range strings.SplitSeq(h, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		m[name] = value
	}
	return m
}

// What comes from the request reaches the page only escaped: no markup
// of its own, and the page loads scripts from the server only.
func TestPageEscaping(t *testing.T) {
	l := newListener(t, webConfig(fakePackage(t), nil))
	for _, host := range []string{
		`</script><script>alert(1)</script>`,
		`a.example"><img src=x onerror=alert(1)>`,
		"a.example\u2028:5443",
	} {
		resp := l.do(t, request{target: "/chat", host: "127.0.0.1:5280", remote: "127.0.0.1:4000",
			header: http.Header{"X-Forwarded-Host": {host}}})
		page := body(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %d", host, resp.StatusCode)
		}
		if n := strings.Count(page, "<script"); n != 3 || strings.Contains(page, "alert") || strings.Contains(page, "<img") {
			t.Errorf("X-Forwarded-Host %q made it into the page:\n%s", host, page)
		}
		if s := pageSettings(t, page); s["websocket_url"] != "ws://a.example/xmpp-websocket" {
			t.Errorf("X-Forwarded-Host %q: websocket_url %v", host, s["websocket_url"])
		}
	}
}

// Everything the page loads is served under its path, with its content
// type; nothing else is: no directory listing, nothing outside dist/, no
// hidden file, no file of another type.
func TestFiles(t *testing.T) {
	pkg := fakePackage(t)
	for _, tc := range []struct {
		name, path, base string // base: where the page's files are
	}{
		{"default path", "/chat", "/chat"},
		{"deeper path", "/web/chat-1", "/web/chat-1"},
		{"the whole site", "/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newListener(t, webConfig(pkg, func(c *config.Config) { c.HTTP.WebClientPath = tc.path }))
			page := l.do(t, request{target: tc.path, host: "a.example", tls: true})
			text := body(t, page)
			if page.StatusCode != http.StatusOK {
				t.Fatalf("page: status %d", page.StatusCode)
			}
			for _, ref := range []string{
				`href="` + tc.base + `/dist/converse.min.css"`,
				`src="` + tc.base + `/starling-converse.js"`,
				`src="` + tc.base + `/dist/converse.min.js"`,
			} {
				if !strings.Contains(text, ref) {
					t.Errorf("the page has no %s:\n%s", ref, text)
				}
			}
			if got := pageSettings(t, text)["assets_path"]; got != tc.base+"/dist/" {
				t.Errorf("assets_path %v, want %s/dist/", got, tc.base)
			}

			for _, f := range []struct{ path, ctype string }{
				{"/starling-converse.js", "text/javascript; charset=utf-8"},
				{"/dist/converse.min.js", "text/javascript; charset=utf-8"},
				{"/dist/converse.min.css", "text/css; charset=utf-8"},
				{"/dist/emoji.json", "application/json"},
				{"/dist/converse.min.js.map", "application/json"},
				{"/dist/curve25519.wasm", "application/wasm"},
				{"/dist/images/favicon.ico", "image/vnd.microsoft.icon"},
				{"/dist/images/logo/logo.svg", "image/svg+xml"},
				{"/dist/sounds/msg_received.mp3", "audio/mpeg"},
				{"/dist/webfonts/icons.ttf", "font/ttf"},
				{"/dist/chunkjs/locales/de.js", "text/javascript; charset=utf-8"},
			} {
				resp := l.do(t, request{target: tc.base + f.path, host: "a.example", tls: true})
				b := body(t, resp)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != f.ctype ||
					resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: status %d, %q, %q; want 200, %q, nosniff", tc.base+f.path, resp.StatusCode,
						resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"), f.ctype)
				}
				if f.path == "/starling-converse.js" && !strings.Contains(b, "converse.initialize(settings)") {
					t.Errorf("%s is not the start script:\n%s", f.path, b)
				}
				if csp := resp.Header.Get("Content-Security-Policy"); strings.HasSuffix(f.path, ".svg") && !strings.Contains(csp, "sandbox") {
					t.Errorf("%s: Content-Security-Policy %q, want a sandbox", f.path, csp)
				}
			}

			for _, p := range []string{
				"/dist/", "/dist/images/", "/dist/images", "/dist/nothing.js", // no listing, nothing missing
				"/dist/sounds/README", "/dist/.secret.js", // no unknown type, no hidden file
				"/dist/package.js", "/package.json", "/dist/%2e%2e/package.json", // nothing outside dist/
				"/converse.min.js", "/dist", "/other",
			} {
				resp := l.do(t, request{target: tc.base + p, host: "a.example", tls: true})
				if resp.StatusCode != http.StatusNotFound && !(resp.StatusCode == http.StatusMovedPermanently && !strings.Contains(resp.Header.Get("Location"), "..")) {
					t.Errorf("%s: status %d, want 404", tc.base+p, resp.StatusCode)
				}
			}
			if tc.path != "/" {
				resp := l.do(t, request{target: tc.path + "/", host: "a.example", tls: true})
				if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != tc.path {
					t.Errorf("%s/: status %d to %q, want a redirect to %s", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.path)
				}
				if resp := l.do(t, request{target: "/", host: "a.example", tls: true}); resp.StatusCode != http.StatusNotFound {
					t.Errorf("/: status %d, want 404", resp.StatusCode)
				}
			}

			resp := l.do(t, request{method: http.MethodPost, target: tc.path, host: "a.example", tls: true})
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("POST %s: status %d, Allow %q; want 405, GET, HEAD", tc.path, resp.StatusCode, resp.Header.Get("Allow"))
			}
			resp = l.do(t, request{method: http.MethodHead, target: tc.base + "/dist/converse.min.js", host: "a.example", tls: true})
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len("export default {};\n")) {
				t.Errorf("HEAD: status %d, length %d", resp.StatusCode, resp.ContentLength)
			}
		})
	}
}

// The listener's other endpoints stay theirs, and answer as before.
func TestOtherEndpoints(t *testing.T) {
	l := newListener(t, webConfig(fakePackage(t), func(c *config.Config) { c.HTTP.WebClientPath = "/" }))
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/.well-known/host-meta", http.StatusOK},
		{http.MethodGet, "/.well-known/host-meta.json", http.StatusOK},
		{http.MethodGet, websocket.Path, http.StatusUpgradeRequired},
		{http.MethodPost, websocket.Path, http.StatusMethodNotAllowed},
		{http.MethodPost, "/.well-known/host-meta", http.StatusMethodNotAllowed},
		{http.MethodGet, "/http-bind", http.StatusNotFound}, // this test's BOSH stand-in
		{http.MethodGet, "/.well-known/other", http.StatusNotFound},
	} {
		if resp := l.do(t, request{method: tc.method, target: tc.path, host: "a.example", tls: true}); resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

// Off (the default), the web client serves nothing; a reload turns it on,
// moves it and turns it off again.
func TestReload(t *testing.T) {
	pkg := fakePackage(t)
	off := webConfig(pkg, func(c *config.Config) { c.HTTP.WebClient = false })
	l := newListener(t, off)
	status := func(path string) int {
		return l.do(t, request{target: path, host: "a.example", tls: true}).StatusCode
	}
	if got := status("/chat"); got != http.StatusNotFound {
		t.Errorf("off: /chat status %d", got)
	}
	if got := status("/chat/dist/converse.min.js"); got != http.StatusNotFound {
		t.Errorf("off: a file: status %d", got)
	}
	if l.chat.PagePath() != "" {
		t.Errorf("off: PagePath %q", l.chat.PagePath())
	}
	if err := l.chat.SetConfig(webConfig(pkg, nil)); err != nil {
		t.Fatal(err)
	}
	if got := status("/chat"); got != http.StatusOK {
		t.Errorf("on: /chat status %d", got)
	}
	if err := l.chat.SetConfig(webConfig(pkg, func(c *config.Config) { c.HTTP.WebClientPath = "/talk" })); err != nil {
		t.Fatal(err)
	}
	if got, old := status("/talk"), status("/chat"); got != http.StatusOK || old != http.StatusNotFound {
		t.Errorf("moved to /talk: /talk status %d, /chat %d", got, old)
	}
	// Files gone: refused, and the running settings stay.
	err := l.chat.SetConfig(webConfig(filepath.Join(t.TempDir(), "none"), nil))
	if err == nil || !strings.Contains(err.Error(), "make webclient") {
		t.Errorf("SetConfig without the files: %v; want an error saying how to install them", err)
	}
	if got := status("/talk"); got != http.StatusOK {
		t.Errorf("after a refused reload: /talk status %d", got)
	}
	if err := l.chat.SetConfig(off); err != nil {
		t.Fatal(err)
	}
	if got := status("/talk"); got != http.StatusNotFound {
		t.Errorf("off again: /talk status %d", got)
	}
}

// With the web client on and Converse.js missing the server refuses to
// start, saying how to install it; off, nothing is needed.
func TestMissingFiles(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	missing := filepath.Join(t.TempDir(), "converse.js")
	requested := func(*http.Request) (string, bool) { return "", false }
	_, err := webclient.New(webConfig(missing, nil), log, requested, endpoints)
	if err == nil || !strings.Contains(err.Error(), "http.web_client_dir") || !strings.Contains(err.Error(), "make webclient") {
		t.Errorf("New without Converse.js: %v; want an error naming http.web_client_dir and make webclient", err)
	}
	if err := webclient.Check(webConfig(missing, nil)); err == nil {
		t.Error("Check without Converse.js passed")
	}
	if _, err := webclient.New(webConfig(missing, func(c *config.Config) { c.HTTP.WebClient = false }), log, requested, endpoints); err != nil {
		t.Errorf("New with the web client off: %v", err)
	}
	// And the configuration file says so first.
	err = webConfig(missing, nil).Validate()
	if err == nil || !strings.Contains(err.Error(), "make webclient") {
		t.Errorf("Validate without Converse.js: %v", err)
	}
}

// The package `make webclient` installs (webclient/js) has what the page
// loads, served with the right types.
func TestInstalledPackage(t *testing.T) {
	pkg, err := filepath.Abs(filepath.Join("js", "node_modules", "converse.js"))
	if err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat(filepath.Join(pkg, "dist", "converse.min.js"))
	testbin.Require(t, "Converse.js in webclient/js/node_modules (make webclient)", statErr == nil)
	cfg := config.Default()
	cfg.HTTP.TLSListen = []string{"127.0.0.1:0"}
	cfg.HTTP.WebClient = true
	cfg.HTTP.WebClientDir = pkg
	l := newListener(t, cfg)
	for path, ctype := range map[string]string{
		"/chat/dist/converse.min.js":          "text/javascript; charset=utf-8",
		"/chat/dist/converse.min.css":         "text/css; charset=utf-8",
		"/chat/dist/emoji.json":               "application/json",
		"/chat/dist/images/favicon.ico":       "image/vnd.microsoft.icon",
		"/chat/dist/curve25519_compiled.wasm": "application/wasm",
		"/chat/dist/sounds/msg_received.mp3":  "audio/mpeg",
	} {
		resp := l.do(t, request{target: path, host: "localhost", tls: true})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype || resp.ContentLength <= 0 {
			t.Errorf("%s: status %d, %q, %d bytes; want 200, %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, ctype)
		}
	}
}

func ptr[T any](v T) *T { return &v }
