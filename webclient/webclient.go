// Package webclient serves the bundled web chat page on the HTTP listener
// ([http] web_client): Converse.js, from its npm package installed by
// the build (`make webclient`, never committed), preconfigured for the
// host the browser asked for, the way Prosody's mod_conversejs does it.
//
// At http.web_client_path (default /chat) it serves a small HTML page
// whose settings for converse.initialize name this listener's WebSocket
// (RFC 7395) and BOSH (XEP-0206) endpoints, at the host and scheme the
// browser used (the Host header, or a trusted proxy's X-Forwarded-Host
// and X-Forwarded-Proto), with the XMPP domain of that host as the
// login form's default domain (users log in with their name only), the
// fullscreen view, and registration offered only where the host allows
// it (XEP-0077). Under the path it serves the script that starts
// Converse (embedded in the binary) and, under /dist/, the files of the
// package's dist/ directory, and nothing else: no directory listings, no
// file outside dist/, only the file types Converse uses, each with its
// content type. The page is self-contained: a Content-Security-Policy
// lets it run scripts and load styles and fonts from this server only,
// and connect to this server's endpoints.
//
// The handler takes every request the listener's other endpoints do not
// (websocket.Handler.HandleOther) and answers 404 to what is not its
// own, so that turning the web client on or off, or moving it, takes a
// reload (SetConfig) rather than a restart.
package webclient

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"

	"github.com/starling-xmpp/starling/config"
)

// Script is the name, under the page's path, of the script that starts
// Converse.
const Script = "starling-converse.js"

var (
	//go:embed page.html
	pageHTML string
	//go:embed starling-converse.js
	startScript []byte

	page = template.Must(template.New("page.html").Parse(pageHTML))
	// scriptTag is the script's entity tag, for revalidation.
	scriptTag = fmt.Sprintf(`"%x"`, sha256.Sum256(startScript))
)

// Endpoints are the paths of the XMPP endpoints on the same listener,
// which the page points Converse at.
type Endpoints struct {
	WebSocket string // websocket.Path
	BOSH      string // bosh.Path; empty when not served
}

// Handler serves the web client. Its zero value is not usable: see New.
type Handler struct {
	// requested tells the host (and port) the client of a request asked
	// for and whether it came over TLS: websocket.Handler.Requested.
	requested func(*http.Request) (host string, secure bool)
	endpoints Endpoints
	log       *slog.Logger

	set atomic.Pointer[settings] // replaced whole by SetConfig
}

// settings are what the handler reads of the configuration, prepared
// once per (re)load.
type settings struct {
	on   bool
	page string // the page's path: "/chat", or "/"
	base string // the prefix of everything else: page without a trailing "/"
	dist string // the package's dist/ directory on disk
	cfg  *config.Config
}

// New returns the handler for cfg. It fails as Check does.
func New(cfg *config.Config, log *slog.Logger, requested func(*http.Request) (host string, secure bool), endpoints Endpoints) (*Handler, error) {
	h := &Handler{requested: requested, endpoints: endpoints, log: log}
	if err := h.SetConfig(cfg); err != nil {
		return nil, err
	}
	return h, nil
}

// Check reports whether cfg can be applied: when the web client is on,
// its path must be valid and the files it serves there, where
// http.web_client_dir says (config.Validate checks both when the file is
// read; they may have gone since).
func Check(cfg *config.Config) error {
	if !cfg.HTTP.WebClient {
		return nil
	}
	if err := config.CheckWebClientPath(cfg.HTTP.WebClientPath); err != nil {
		return fmt.Errorf("http.web_client_path: %q: %w", cfg.HTTP.WebClientPath, err)
	}
	if err := config.CheckWebClientDir(cfg.HTTP.WebClientDir); err != nil {
		return fmt.Errorf("http.web_client_dir: %w", err)
	}
	return nil
}

func distDir(cfg *config.Config) string { return filepath.Join(cfg.HTTP.WebClientDir, "dist") }

// SetConfig applies a (re)loaded configuration to the requests that
// follow; it changes nothing and fails when Check does.
func (h *Handler) SetConfig(cfg *config.Config) error {
	if err := Check(cfg); err != nil {
		return err
	}
	set := &settings{on: cfg.HTTP.WebClient, page: cfg.HTTP.WebClientPath, dist: distDir(cfg), cfg: cfg}
	set.base = strings.TrimSuffix(set.page, "/")
	h.set.Store(set)
	return nil
}

// PagePath is the path of the page when the web client is on, else "".
func (h *Handler) PagePath() string {
	if set := h.set.Load(); set.on {
		return set.page
	}
	return ""
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set := h.set.Load()
	p := r.URL.Path
	var serve func()
	switch {
	case !set.on:
	case p == set.page:
		serve = func() { h.servePage(w, r, set) }
	case set.page != "/" && p == set.page+"/":
		serve = func() { http.Redirect(w, r, set.page, http.StatusMovedPermanently) }
	case p == set.base+"/"+Script:
		serve = func() { serveScript(w, r) }
	case strings.HasPrefix(p, set.base+"/dist/"):
		serve = func() { h.serveFile(w, r, set, strings.TrimPrefix(p, set.base+"/dist/")) }
	}
	if serve == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	serve()
}

// converseSettings are the settings of converse.initialize the page
// passes (Converse's documentation, "Configuration").
type converseSettings struct {
	WebSocketURL   string `json:"websocket_url"`
	BOSHServiceURL string `json:"bosh_service_url,omitempty"`
	// The endpoints are given: no XEP-0156 discovery.
	DiscoverConnectionMethods bool   `json:"discover_connection_methods"`
	ViewMode                  string `json:"view_mode"`
	// Users log in with their name only; the login form says so. Not
	// locked_domain: Converse would then append the domain to every
	// address typed in "Add a contact" too, and contacts on other
	// servers could not be added.
	DefaultDomain      string `json:"default_domain"`
	DomainPlaceholder  string `json:"domain_placeholder"`
	AllowRegistration  bool   `json:"allow_registration"`
	RegistrationDomain string `json:"registration_domain,omitempty"`
	// Nothing from other sites: no list of public providers on the
	// registration form, no players embedded from media sites.
	XMPPProvidersURL       string `json:"xmpp_providers_url"`
	EmbedThirdPartyPlayers bool   `json:"embed_3rd_party_media_players"`
	// Emoji data, sounds, images and chunks come from the package.
	AssetsPath string `json:"assets_path"`
}

// pageData is what page.html shows.
type pageData struct {
	Domain   string
	Base     string
	Settings converseSettings
}

// servePage writes the page for the host r asked for.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, set *settings) {
	hostport, secure := h.requested(r)
	domain := set.domain(hostport)
	if !validHostport(hostport) {
		hostport, _ = idna.Lookup.ToASCII(domain)
	}
	ws, web := "ws", "http"
	if secure {
		ws, web = "wss", "https"
	}
	s := converseSettings{
		WebSocketURL:      (&url.URL{Scheme: ws, Host: hostport, Path: h.endpoints.WebSocket}).String(),
		ViewMode:          "fullscreen",
		DefaultDomain:     domain,
		DomainPlaceholder: domain,
		AllowRegistration: set.cfg.RegistrationEnabled(domain),
		AssetsPath:        set.base + "/dist/",
	}
	if h.endpoints.BOSH != "" {
		s.BOSHServiceURL = (&url.URL{Scheme: web, Host: hostport, Path: h.endpoints.BOSH}).String()
	}
	if s.AllowRegistration {
		s.RegistrationDomain = domain
	}
	var b bytes.Buffer
	if err := page.Execute(&b, pageData{Domain: domain, Base: set.base, Settings: s}); err != nil {
		h.log.Error("web client page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", pagePolicy(ws+"://"+hostport, secure))
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	// The page depends on the host, the proxy's headers and the
	// configuration: always asked again.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Vary", "X-Forwarded-Host, X-Forwarded-Proto")
	w.Write(b.Bytes())
}

// pagePolicy is the page's Content-Security-Policy: scripts, styles,
// fonts and workers from this server only (WebAssembly for OMEMO's
// curve25519; inline styles, which Converse's components set); XMPP
// connections to this server (wsOrigin, named besides 'self' for
// browsers whose 'self' does not cover ws:/wss:) and HTTP file uploads
// (XEP-0363) over https; images and media from anywhere over https, as
// a chat client shows them; no plugins, frames, or form posts elsewhere,
// and no framing of the page.
func pagePolicy(wsOrigin string, secure bool) string {
	connect := "'self' " + wsOrigin
	if secure {
		connect += " https:"
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' 'wasm-unsafe-eval'",
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data: blob: https:",
		"media-src 'self' data: blob: https:",
		"font-src 'self' data:",
		"connect-src " + connect,
		"worker-src 'self' blob:",
		"object-src 'none'",
		"frame-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// domain is the XMPP domain of the page for hostport: the host part if
// it is a virtual host (an A-label from the Host header as its U-label),
// else the first host.
func (s *settings) domain(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if u, err := idna.Lookup.ToUnicode(host); err == nil {
		host = u
	}
	hosts := s.cfg.Server.Hosts
	if slices.Contains(hosts, host) {
		return host
	}
	return hosts[0]
}

// validHostport accepts what a browser sends as Host: a name, an IPv4
// address or a bracketed IPv6 one, and an optional port; anything else,
// as a proxy might forward, is replaced with the domain (it would end up
// in URLs and in the Content-Security-Policy header).
func validHostport(hp string) bool {
	if hp == "" {
		return false
	}
	for _, c := range hp {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	host, port := hp, ""
	if h, p, err := net.SplitHostPort(hp); err == nil {
		host, port = h, p
	} else if strings.ContainsAny(hp, ":[]") {
		return false
	}
	if strings.Contains(host, ":") != strings.HasPrefix(hp, "[") {
		return false // an IPv6 address must be bracketed, and only it
	}
	return host != "" && (port == "" || len(port) <= 5 && strings.Trim(port, "0123456789") == "")
}

// serveScript serves the embedded script that starts Converse.
func serveScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", scriptTag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(startScript))
}

// contentTypes are the file types served from dist/, by extension: what
// Converse's package holds. Other files are not served.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".wasm":  "application/wasm",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".gif":   "image/gif",
	".jpg":   "image/jpeg",
	".jpeg":  "image/jpeg",
	".webp":  "image/webp",
	".ico":   "image/vnd.microsoft.icon",
	".mp3":   "audio/mpeg",
	".ogg":   "audio/ogg",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".woff":  "font/woff",
	".woff2": "font/woff2",
}

// assetPolicy is the Content-Security-Policy of files other than scripts
// (whose own policy would bind a worker started from them): an SVG opened
// by itself runs nothing.
const assetPolicy = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"

// serveFile serves dist/name: a regular file of a known type, opened
// within dist/ (os.OpenInRoot: no "..", no symbolic link out of it).
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, set *settings, name string) {
	ctype, known := contentTypes[path.Ext(name)]
	if !known || !servable(name) {
		http.NotFound(w, r)
		return
	}
	f, err := os.OpenInRoot(set.dist, filepath.FromSlash(name))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			h.log.Debug("web client file", "path", name, "err", err)
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	if !strings.HasPrefix(ctype, "text/javascript") {
		hd.Set("Content-Security-Policy", assetPolicy)
	}
	// Revalidated on every load (Last-Modified): after an upgrade of the
	// package no browser mixes old and new chunks.
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// servable accepts a slash-separated path inside dist/: no empty, "." or
// ".." elements, no hidden files.
func servable(name string) bool {
	if name == "" {
		return false
	}
	for el := range strings.SplitSeq(name, "/") {
		if el == "" || strings.HasPrefix(el, ".") || strings.ContainsRune(el, '\\') {
			return false
		}
	}
	return true
}
