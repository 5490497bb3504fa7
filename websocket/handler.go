// Package websocket serves web clients on the HTTP listener: XMPP over
// WebSocket (RFC 7395) at /xmpp-websocket, on github.com/coder/websocket,
// the BOSH endpoint of package bosh beside it (HandleBOSH), and the
// discovery of both (XEP-0156) at /.well-known/host-meta and
// /.well-known/host-meta.json.
//
// The upgrade requires the subprotocol "xmpp" (RFC 7395 §3.1) and an
// Origin the configuration allows. Each accepted stream is a Conn that
// c2s runs like any client session (c2s.Server.ServeFramed): negotiation,
// SASL, binding, routing and every module are c2s's. Conn only translates
// the framing: each WebSocket message is one complete element, parsed as
// a standalone document (§3.3.3); <open/> and <close/> stand for the
// stream header and closing tag (§3.4, §3.6); what the server writes is
// sent one element per message, however large, with the namespace
// declarations it needs to stand alone, and the messages c2s has for a
// client at once go out together, in one write to the connection
// (batch.go). STARTTLS is never offered (§3.9): a stream is encrypted
// when the connection is TLS, or when a trusted reverse proxy says the
// client used https.
package websocket

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/config"
)

// Paths served.
const (
	// Path is the WebSocket endpoint, where Prosody and Converse.js have
	// it too.
	Path         = "/xmpp-websocket"
	HostMeta     = "/.well-known/host-meta"      // XEP-0156 §3.1, XRD (RFC 6415)
	HostMetaJSON = "/.well-known/host-meta.json" // XEP-0156 §3.1, JRD
)

// Subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const Subprotocol = "xmpp"

// Link relations of the WebSocket and BOSH endpoints (XEP-0156 §3).
const (
	relWebSocket = "urn:xmpp:alt-connections:websocket"
	relBOSH      = "urn:xmpp:alt-connections:xbosh"
)

// Handler is the HTTP handler of the web listener.
type Handler struct {
	// Serve runs the session of an accepted stream until it ends:
	// c2s.Server.ServeFramed, in a goroutine of its own (the handler has
	// returned), with a context of its own.
	Serve func(ctx context.Context, conn *Conn, secure bool)
	Log   *slog.Logger

	set      atomic.Pointer[settings]
	mux      *http.ServeMux
	boshPath string // set by HandleBOSH before serving
}

// settings are what the handler reads of the configuration, prepared once
// per (re)load.
type settings struct {
	proxies      []netip.Prefix
	origins      []string // normalized by config.ParseOrigin
	anyOrigin    bool
	defaultHost  string
	maxBytes     int
	pingInterval time.Duration
	pingTimeout  time.Duration
}

// NewHandler returns the handler for cfg; serve is Handler.Serve.
func NewHandler(cfg *config.Config, log *slog.Logger, serve func(ctx context.Context, conn *Conn, secure bool)) *Handler {
	h := &Handler{Serve: serve, Log: log, mux: http.NewServeMux()}
	h.SetConfig(cfg)
	h.mux.HandleFunc(Path, getOnly(h.serveWebSocket))
	h.mux.HandleFunc(HostMeta, getOnly(h.hostMeta))
	h.mux.HandleFunc(HostMetaJSON, getOnly(h.hostMetaJSON))
	return h
}

// getOnly answers 405 to methods other than GET and HEAD, as a "GET "
// pattern would; the patterns name no method so that HandleOther's "/",
// which takes every method, does not take the others (ServeMux refuses
// "GET /" beside "/http-bind", and prefers "/" to a 405).
func getOnly(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f(w, r)
	}
}

// SetConfig applies a (re)loaded configuration to the requests that
// follow: trusted proxies, allowed origins, limits.
func (h *Handler) SetConfig(cfg *config.Config) {
	set := &settings{
		proxies:      cfg.HTTP.Proxies(),
		defaultHost:  cfg.Server.Hosts[0],
		maxBytes:     cfg.Limits.MaxStanzaBytes,
		pingInterval: cfg.HTTP.WebSocketPingInterval.Duration,
		pingTimeout:  cfg.Limits.PingTimeout.Duration,
	}
	for _, o := range cfg.HTTP.AllowedOrigins {
		o, err := config.ParseOrigin(o)
		switch {
		case err != nil: // refused by Validate
		case o == "*":
			set.anyOrigin = true
		default:
			set.origins = append(set.origins, o)
		}
	}
	h.set.Store(set)
}

// HandleBOSH serves bosh, the BOSH endpoint (XEP-0124, XEP-0206), at
// path on the same listener, every method (bosh answers them), and lists
// it in host-meta. It is called before the handler serves.
func (h *Handler) HandleBOSH(path string, bosh http.Handler) {
	h.boshPath = path
	h.mux.Handle(path, bosh)
}

// Handle serves h at pattern (a ServeMux pattern without method), such
// as a module's endpoint (module.Env.HandleHTTP). It is called before the
// handler serves.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
}

// HandleOther serves every request that no endpoint of the handler
// matches with other (the web client, package webclient), which answers
// 404 to what it does not serve. It is called before the handler serves.
func (h *Handler) HandleOther(other http.Handler) {
	h.mux.Handle("/", other)
}

// Requested tells what the client of r asked for, for the web client
// page: the host (and port) it reached, from the Host header or a trusted
// proxy's X-Forwarded-Host, and whether it came over TLS (here or at a
// trusted proxy).
func (h *Handler) Requested(r *http.Request) (host string, secure bool) {
	p := peerOf(r, h.set.Load().proxies)
	return p.host, p.secure
}

// Client tells what the handler believes of the client of r, for the
// BOSH endpoint: its address (the connection's peer, or what trusted
// proxies report), whether it reached the server over TLS (here or at a
// trusted proxy), and whether a page of its Origin may use the endpoints,
// by the WebSocket rule (allowOrigin); without an Origin, it may.
func (h *Handler) Client(r *http.Request) (addr net.Addr, secure, originAllowed bool) {
	set := h.set.Load()
	p := peerOf(r, set.proxies)
	origin := r.Header.Get("Origin")
	return p.netAddr(), p.secure, origin == "" || set.allowOrigin(origin, p)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// serveWebSocket upgrades the request to an XMPP stream. Refusals come
// before the upgrade, as HTTP errors: 403 for an Origin that is not
// allowed, 400 without the subprotocol "xmpp" (RFC 7395 §3.1: without it
// in the response no XMPP connection exists, so the server refuses rather
// than accept a connection the client must close), and whatever
// github.com/coder/websocket answers to a request that is not a valid
// WebSocket handshake (RFC 6455 §4.2.1).
func (h *Handler) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	set := h.set.Load()
	p := peerOf(r, set.proxies)
	addr := p.netAddr()
	if hasToken(r.Header, "Upgrade", "websocket") {
		if origin := r.Header.Get("Origin"); origin != "" && !set.allowOrigin(origin, p) {
			h.debug(addr, "WebSocket refused: origin not allowed", "origin", origin)
			http.Error(w, "origin not allowed: see http.allowed_origins", http.StatusForbidden)
			return
		}
		if !hasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
			h.debug(addr, "WebSocket refused: no xmpp subprotocol", "protocols", r.Header.Values("Sec-WebSocket-Protocol"))
			http.Error(w, "the WebSocket subprotocol \"xmpp\" is required (RFC 7395 §3.1)", http.StatusBadRequest)
			return
		}
	}
	out := &batchWriter{}
	hj := &hijacker{ResponseWriter: w, out: out}
	ws, err := websocket.Accept(hj, r, acceptOptions)
	if err != nil {
		h.debug(addr, "WebSocket handshake failed", "err", err)
		return
	}
	hj.readDirect()
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	conn := newConn(ws, out, hj.br, addr, local, set.maxBytes, set.pingInterval, set.pingTimeout)
	h.debug(addr, "WebSocket stream", "secure", p.secure)
	// The session runs in a goroutine of its own, and this handler
	// returns: net/http's goroutine, with the request, its headers and
	// its buffers on its stack, would otherwise stay for the stream's
	// life. Nor does the session keep the request's context: it needs
	// none of its values (the local address is Conn's), and its
	// cancellation comes when the handler returns. The server's shutdown
	// ends the session (c2s.Server.Shutdown), as it ends BOSH's.
	go h.Serve(context.Background(), conn, p.secure)
}

// acceptOptions are the same for every upgrade (Accept copies them).
var acceptOptions = &websocket.AcceptOptions{
	Subprotocols: []string{Subprotocol},
	// The Origin was checked before, against http.allowed_origins.
	InsecureSkipVerify: true,
	// Conn writes its data messages uncompressed itself (batch.go).
	CompressionMode: websocket.CompressionDisabled,
}

// debug logs at the debug level for the client at addr, making nothing
// when the level is off.
func (h *Handler) debug(addr net.Addr, msg string, args ...any) {
	if h.Log.Enabled(context.Background(), slog.LevelDebug) {
		h.Log.Debug(msg, append([]any{"conn", addr.String()}, args...)...)
	}
}

// allowOrigin reports whether a page of origin may open a stream: any
// origin with "*", a listed one, or the server's own, the host the
// client asked for.
func (s *settings) allowOrigin(origin string, p peer) bool {
	if s.anyOrigin {
		return true
	}
	o, err := config.ParseOrigin(origin)
	if err != nil {
		return false // such as "null", from a sandboxed or file: page
	}
	if slices.Contains(s.origins, o) {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, p.hostWithoutDefaultPort())
}

// hostWithoutDefaultPort is the requested host as an origin has it.
func (p peer) hostWithoutDefaultPort() string {
	if p.secure {
		return strings.TrimSuffix(p.host, ":443")
	}
	return strings.TrimSuffix(p.host, ":80")
}

// hasToken reports whether the comma-separated header name lists token
// (case-insensitively).
func hasToken(h http.Header, name, token string) bool {
	return slices.ContainsFunc(headerList(h, name), func(v string) bool { return strings.EqualFold(v, token) })
}

// link is an endpoint listed in host-meta.
type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

// links are the endpoints as the client of r reaches them: the WebSocket
// URL, and the BOSH one when served; wss:// and https:// when the client
// came over TLS (here or at a trusted proxy), at the host it asked for.
func (h *Handler) links(r *http.Request) []link {
	s := h.set.Load()
	p := peerOf(r, s.proxies)
	host := p.host
	if host == "" {
		host = s.defaultHost
	}
	ws, web := "ws", "http"
	if p.secure {
		ws, web = "wss", "https"
	}
	l := []link{{Rel: relWebSocket, Href: (&url.URL{Scheme: ws, Host: host, Path: Path}).String()}}
	if h.boshPath != "" {
		l = append(l, link{Rel: relBOSH, Href: (&url.URL{Scheme: web, Host: host, Path: h.boshPath}).String()})
	}
	return l
}

// hostMeta serves the XRD host-meta document (XEP-0156 §3.1, RFC 6415)
// listing the endpoints, readable from any web page (CORS).
func (h *Handler) hostMeta(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	b := []byte("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n")
	for _, l := range h.links(r) {
		b = append(b, "  <Link rel='"+l.Rel+"' href='"...)
		b = appendEscaped(b, l.Href)
		b = append(b, "'/>\n"...)
	}
	b = append(b, "</XRD>\n"...)
	w.Write(b)
}

// hostMetaJSON serves the same as JSON (XEP-0156 §3.1, RFC 6415 Appendix A).
func (h *Handler) hostMetaJSON(w http.ResponseWriter, r *http.Request) {
	doc := struct {
		Links []link `json:"links"`
	}{h.links(r)}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}
