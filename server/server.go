// Package server builds a running Starling from its configuration: storage,
// certificates, the router, the server-handled IQs, the client listeners
// and the web listener (XMPP over WebSocket and BOSH, and the bundled web
// chat page, package webclient); it reloads on demand and stops
// gracefully.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/bosh"
	"github.com/starling-xmpp/starling/c2s"
	"github.com/starling-xmpp/starling/caps"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/dispatch"
	"github.com/starling-xmpp/starling/event"
	"github.com/starling-xmpp/starling/metrics"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/presence"
	"github.com/starling-xmpp/starling/roster"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/s2s"
	"github.com/starling-xmpp/starling/storage"
	"github.com/starling-xmpp/starling/storage/postgres"
	"github.com/starling-xmpp/starling/storage/sqlite"
	"github.com/starling-xmpp/starling/tlsconf"
	"github.com/starling-xmpp/starling/webclient"
	"github.com/starling-xmpp/starling/websocket"
)

// Version is the software version reported over XEP-0092.
var Version = "0.1.0-dev"

// Server is one running Starling.
type Server struct {
	log   *slog.Logger
	store storage.Store
	tls   *tlsconf.Store
	c2s   *c2s.Server
	web   *websocket.Handler
	bosh  *bosh.Handler
	chat  *webclient.Handler
	bus   *event.Bus
	// acme gets the certificates of the hosts that have them from an
	// ACME CA ([tls] acme), nil when none does.
	acme *tlsconf.ACME
	// modules are those of the list (modules.go), started.
	modules *module.Set
	// metrics is the Prometheus registry served on [metrics] listen,
	// nil when it is off.
	metrics *metrics.Metrics

	mu  sync.Mutex // guards cfg and reload
	cfg *config.Config
	// reload is what the admin command reload runs (SetReloader).
	reload func() error

	// Listeners, bound by New so that their addresses are known (port 0
	// in tests) before Run.
	starttls  []net.Listener
	directTLS []net.Listener
	httpPlain []net.Listener
	httpTLS   []net.Listener // raw TCP: TLS is added by Run
	acmeHTTP  net.Listener   // tls.acme_http_listen, for http-01 challenges
	admin     net.Listener   // see admin.go
	metricsLn net.Listener   // metrics.listen, nil when off
}

// CheckConfig checks what config.Load cannot: each module's
// [modules.<name>] table, decoded with the module's options, and that no
// table names a module that does not exist. check-config and New run it.
func CheckConfig(cfg *config.Config) error {
	return module.NewSet(Modules()).Check(cfg)
}

// OpenStore opens the configured storage backend (migrations applied).
func OpenStore(ctx context.Context, cfg *config.Config) (storage.Store, error) {
	switch cfg.Storage.Driver {
	case "postgres":
		return postgres.Open(ctx, cfg.Storage.DSN)
	default:
		path := cfg.Storage.DSN
		if path == "" {
			path = filepath.Join(cfg.Server.DataDir, "starling.db")
		}
		return sqlite.Open(ctx, path)
	}
}

// New opens storage and certificates and binds the listeners.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	tlsStore, err := tlsconf.New(cfg)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	s := &Server{log: log, store: store, tls: tlsStore, cfg: cfg}
	if cfg.Metrics.Listen != "" {
		// Everything uses the timed store; Close goes through to it.
		s.metrics = metrics.New()
		store = s.metrics.Store(store)
		s.store = store
	}

	mux := dispatch.New(log.With("module", "dispatch"))
	bus := &event.Bus{}
	exists := func(ctx context.Context, bare jid.JID) bool {
		_, err := store.Account(ctx, bare.Domainpart(), bare.Localpart())
		return err == nil
	}
	r := router.New(cfg.Server.Hosts, exists, mux, bus)
	mux.SetSender(r)
	// vCard, private storage and last activity answer IQs to other local
	// accounts too; dispatch asks whether those accounts exist.
	mux.SetAccountExists(exists)
	s.bus = bus
	s.c2s = c2s.NewServer(cfg, log, tlsStore, store, r, mux)
	s.c2s.HandleEvents(bus)
	if s.metrics != nil {
		s.metrics.C2S(s.c2s.Stats)
	}
	// Instant messaging and presence (RFC 6121): the core that the
	// modules build on. Presence depends on the roster, not the reverse.
	rost := &roster.Service{
		Store: store, Router: r, Bus: bus, Exists: exists, Log: log.With("module", "roster"),
		MaxItems: func() int { return s.config().Limits.MaxRosterItems },
	}
	rost.Register(mux)
	pres := &presence.Service{Router: r, Roster: rost, Bus: bus, Exists: exists, Log: log.With("module", "presence")}
	pres.Register()
	// Entity capabilities (XEP-0115) of client sessions, for personal
	// eventing (XEP-0163 §4): it sees presence before the presence
	// service does, and costs nothing until a client announces a 'ver'.
	capsTracker := &caps.Tracker{Bus: bus, Log: log.With("module", "caps"), Router: r}
	capsTracker.Register()
	// The modules of the list (modules.go), in order.
	mods := Modules()
	s.modules = module.NewSet(mods)
	if err := s.modules.Start(ctx, module.Env{
		Log: log, Router: r, Roster: rost, Caps: capsTracker, IQ: mux, Bus: bus, Store: store, Config: s.config, TLS: tlsStore,
		WebURL: s.webURL,
	}); err != nil {
		store.Close()
		return nil, err
	}
	if s.metrics != nil {
		s.metrics.S2S(s2sStreams(mods))
	}
	// RFC 6121 §2.6.1 roster versioning, §3.4 subscription pre-approval,
	// then what the modules offer (XEP-0115 §6.3 capabilities among them).
	s.c2s.BoundFeatures = func() []byte {
		return append([]byte(roster.StreamFeatures), s.modules.StreamFeatures()...)
	}
	// Web clients: each WebSocket stream is a c2s session (RFC 7395).
	s.web = websocket.NewHandler(cfg, log.With("module", "websocket"), func(ctx context.Context, conn *websocket.Conn, secure bool) {
		s.c2s.ServeFramed(ctx, conn, secure)
	})
	// And each BOSH session too (XEP-0124, XEP-0206), on the same listener.
	s.bosh = bosh.NewHandler(cfg, log.With("module", "bosh"), s.web.Client, func(conn *bosh.Conn, secure bool) (func(context.Context), error) {
		return s.c2s.StartFramed(conn, secure)
	})
	s.web.HandleBOSH(bosh.Path, s.bosh)
	// What the modules serve there (module.Env.HandleHTTP), such as file
	// upload.
	s.modules.HTTPHandlers(s.web.Handle)
	// And the web chat page, Converse.js, when [http] web_client is on.
	s.chat, err = webclient.New(cfg, log.With("module", "webclient"), s.web.Requested,
		webclient.Endpoints{WebSocket: websocket.Path, BOSH: bosh.Path})
	if err != nil {
		store.Close()
		return nil, err
	}
	s.web.HandleOther(s.chat)
	// Certificates from an ACME CA ([tls] acme), for every host and the
	// domains of its services, which the modules have added by now.
	s.acme, err = tlsconf.NewACME(cfg, tlsStore, log.With("module", "acme"), func(host string) []string {
		var names []string
		for _, d := range r.Services() {
			if strings.HasSuffix(d, "."+host) {
				names = append(names, d)
			}
		}
		return names
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	if s.acme != nil && s.acme.Challenge() == config.ChallengeHTTP01 {
		s.web.Handle(tlsconf.ACMEChallengePath, s.acme)
	}

	if err := s.listen(cfg); err != nil {
		s.closeListeners()
		store.Close()
		return nil, err
	}
	if s.admin, err = listenAdmin(AdminSocket(cfg)); err != nil {
		s.closeListeners()
		store.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return s, nil
}

func (s *Server) listen(cfg *config.Config) error {
	for _, addr := range cfg.C2S.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("c2s.listen: %w", err)
		}
		s.starttls = append(s.starttls, ln)
	}
	for _, addr := range cfg.C2S.DirectTLSListen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("c2s.direct_tls_listen: %w", err)
		}
		s.directTLS = append(s.directTLS, ln)
	}
	for _, addr := range cfg.HTTP.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		s.httpPlain = append(s.httpPlain, ln)
	}
	for _, addr := range cfg.HTTP.TLSListen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http.tls_listen: %w", err)
		}
		s.httpTLS = append(s.httpTLS, ln)
	}
	if s.acme != nil && s.acme.Challenge() == config.ChallengeHTTP01 && cfg.TLS.ACMEHTTPListen != "" {
		ln, err := net.Listen("tcp", cfg.TLS.ACMEHTTPListen)
		if err != nil {
			return fmt.Errorf("tls.acme_http_listen (port 80 needs root or CAP_NET_BIND_SERVICE): %w", err)
		}
		s.acmeHTTP = ln
	}
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		s.metricsLn = ln
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range slices.Concat(s.starttls, s.directTLS, s.httpPlain, s.httpTLS) {
		ln.Close()
	}
	if s.acmeHTTP != nil {
		s.acmeHTTP.Close()
	}
	if s.metricsLn != nil {
		s.metricsLn.Close()
	}
	if s.admin != nil {
		s.admin.Close() // also removes the socket file
	}
}

func (s *Server) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// ACME is the manager of the certificates from an ACME CA, nil when no
// host has one (for tests and the CLI).
func (s *Server) ACME() *tlsconf.ACME { return s.acme }

// ACMEHTTPAddr is the bound address of tls.acme_http_listen, nil when
// there is none.
func (s *Server) ACMEHTTPAddr() net.Addr {
	if s.acmeHTTP == nil {
		return nil
	}
	return s.acmeHTTP.Addr()
}

// MetricsAddr is the bound address of metrics.listen, nil when it is
// off.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// Bus is the server's event bus (for tests that watch events).
func (s *Server) Bus() *event.Bus { return s.bus }

// Store is the server's storage (for tests and the CLI).
func (s *Server) Store() storage.Store { return s.store }

// BOSH is the handler of the BOSH endpoint (for tests that watch its
// sessions).
func (s *Server) BOSH() *bosh.Handler { return s.bosh }

// Addrs returns the bound STARTTLS and direct TLS addresses.
func (s *Server) Addrs() (starttls, directTLS []net.Addr) {
	for _, ln := range s.starttls {
		starttls = append(starttls, ln.Addr())
	}
	for _, ln := range s.directTLS {
		directTLS = append(directTLS, ln.Addr())
	}
	return starttls, directTLS
}

// HTTPAddrs returns the bound addresses of the web listener: plain HTTP
// and HTTPS.
func (s *Server) HTTPAddrs() (plain, tls []net.Addr) {
	for _, ln := range s.httpPlain {
		plain = append(plain, ln.Addr())
	}
	for _, ln := range s.httpTLS {
		tls = append(tls, ln.Addr())
	}
	return plain, tls
}

// webURL is module.Env.WebURL: the first HTTPS listener's port, under
// host's name, which its certificate covers.
func (s *Server) webURL(host string) string {
	if len(s.httpTLS) == 0 {
		return ""
	}
	_, port, _ := net.SplitHostPort(s.httpTLS[0].Addr().String())
	return "https://" + net.JoinHostPort(host, port)
}

// webSocketURL is the address to give clients for a web listener at addr:
// the first host, which the certificate names, for HTTPS; for plain HTTP,
// meant for a proxy on the same machine, the address itself.
func webSocketURL(cfg *config.Config, addr net.Addr, secure bool) string {
	scheme := "ws://"
	if secure {
		scheme = "wss://"
	}
	return scheme + webHost(cfg, addr, secure) + websocket.Path
}

// webClientURL is the address of the web chat page on a web listener at
// addr, as webSocketURL's.
func webClientURL(cfg *config.Config, addr net.Addr, secure bool) string {
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	return scheme + webHost(cfg, addr, secure) + cfg.HTTP.WebClientPath
}

func webHost(cfg *config.Config, addr net.Addr, secure bool) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); secure || ip == nil || ip.IsUnspecified() {
		host = cfg.Server.Hosts[0]
	}
	return net.JoinHostPort(host, port)
}

// webAttrs are the log attributes of a web listener: its WebSocket URL,
// and the web chat page's when it is on.
func webAttrs(cfg *config.Config, kind string, addr net.Addr, secure bool) []any {
	attrs := []any{"kind", kind, "addr", addr.String(), "websocket", webSocketURL(cfg, addr, secure)}
	if cfg.HTTP.WebClient {
		attrs = append(attrs, "web_client", webClientURL(cfg, addr, secure))
	}
	return attrs
}

// Run serves until ctx is done, then stops gracefully: listeners close,
// every stream gets <system-shutdown/>, storage closes.
func (s *Server) Run(ctx context.Context) error {
	for _, a := range s.starttls {
		s.log.Info("listening", "kind", "c2s starttls", "addr", a.Addr().String())
	}
	for _, a := range s.directTLS {
		s.log.Info("listening", "kind", "c2s direct tls", "addr", a.Addr().String())
	}
	cfg := s.config()
	for _, a := range s.httpPlain {
		s.log.Info("listening", webAttrs(cfg, "http", a.Addr(), false)...)
	}
	for _, a := range s.httpTLS {
		s.log.Info("listening", webAttrs(cfg, "https", a.Addr(), true)...)
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, len(s.starttls)+len(s.directTLS)+len(s.httpPlain)+len(s.httpTLS)+2)
	for _, ln := range s.starttls {
		go func() { errc <- s.c2s.Serve(serveCtx, ln, false) }()
	}
	for _, ln := range s.directTLS {
		go func() { errc <- s.c2s.Serve(serveCtx, ln, true) }()
	}
	web := &http.Server{
		Handler:           s.web,
		BaseContext:       func(net.Listener) context.Context { return serveCtx },
		ReadHeaderTimeout: cfg.Limits.ConnectTimeout.Duration,
		IdleTimeout:       cfg.Limits.ConnectTimeout.Duration,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures and the like, which clients cause.
		ErrorLog: slog.NewLogLogger(s.log.With("module", "http").Handler(), slog.LevelDebug),
	}
	serveHTTP := func(srv *http.Server, ln net.Listener) {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}
	for _, ln := range s.httpPlain {
		go serveHTTP(web, ln)
	}
	for _, ln := range s.httpTLS {
		// WebSocket needs HTTP/1.1 (RFC 6455 §4.1): no h2 in ALPN.
		go serveHTTP(web, tls.NewListener(ln, s.tls.ServerConfig("http/1.1")))
	}
	if s.acmeHTTP != nil {
		s.log.Info("listening", "kind", "acme http-01", "addr", s.acmeHTTP.Addr().String())
		challenges := &http.Server{
			Handler:           s.acme,
			ReadHeaderTimeout: cfg.Limits.ConnectTimeout.Duration,
			IdleTimeout:       cfg.Limits.ConnectTimeout.Duration,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.With("module", "acme").Handler(), slog.LevelDebug),
		}
		defer challenges.Close()
		go serveHTTP(challenges, s.acmeHTTP)
	}
	if s.acme != nil {
		// Once the listeners serve, for the CA's validation requests.
		go s.acme.Run(serveCtx)
	}
	var metricsHTTP *http.Server
	if s.metricsLn != nil {
		metricsHTTP = s.serveMetrics(cfg)
		go serveHTTP(metricsHTTP, s.metricsLn)
	}
	go s.serveAdmin(s.admin)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	// Stop accepting; WebSocket streams, no longer HTTP's, end below with
	// the other sessions.
	web.Close()
	if metricsHTTP != nil {
		metricsHTTP.Close()
	}
	s.closeListeners()
	cancel()
	stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := s.c2s.Shutdown(stopCtx); err != nil {
		s.log.Warn("sessions did not end in time", "err", err)
	}
	return errors.Join(runErr, s.modules.Stop(stopCtx), s.store.Close())
}

// Reload applies a new configuration without dropping sessions: TLS
// certificates, limits, registration switches, the SCRAM iteration count
// of passwords set from then on, the web listener's proxies and origins,
// the web client (on or off, its path and files), and log settings. Hosts,
// listeners and storage need a restart; changing them is refused.
func (s *Server) Reload(cfg *config.Config) error {
	old := s.config()
	if !slices.Equal(old.Server.Hosts, cfg.Server.Hosts) || !slices.Equal(old.C2S.Listen, cfg.C2S.Listen) ||
		!slices.Equal(old.C2S.DirectTLSListen, cfg.C2S.DirectTLSListen) || !slices.Equal(old.HTTP.Listen, cfg.HTTP.Listen) ||
		!slices.Equal(old.HTTP.TLSListen, cfg.HTTP.TLSListen) || old.Storage != cfg.Storage || old.Server.DataDir != cfg.Server.DataDir {
		return errors.New("hosts, listeners, data_dir and storage change only with a restart")
	}
	if old.Metrics != cfg.Metrics {
		return errors.New("metrics.listen changes only with a restart")
	}
	if acmeKeys(old.TLS) != acmeKeys(cfg.TLS) {
		return errors.New("the acme keys of [tls] change only with a restart")
	}
	if err := webclient.Check(cfg); err != nil {
		return err
	}
	if err := s.modules.Reload(cfg); err != nil {
		return err
	}
	if err := s.tls.Reload(cfg); err != nil {
		return err
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.c2s.SetConfig(cfg)
	s.web.SetConfig(cfg)
	s.bosh.SetConfig(cfg)
	if err := s.chat.SetConfig(cfg); err != nil {
		return err // the files went away since Check
	}
	if cfg.HTTP.WebClient != old.HTTP.WebClient || cfg.HTTP.WebClientPath != old.HTTP.WebClientPath {
		for _, ln := range slices.Concat(s.httpPlain, s.httpTLS) {
			secure := slices.Contains(s.httpTLS, ln)
			if cfg.HTTP.WebClient {
				s.log.Info("web client", "url", webClientURL(cfg, ln.Addr(), secure))
			} else {
				s.log.Info("web client off", "addr", ln.Addr().String())
			}
		}
	}
	return nil
}

// serveMetrics is the HTTP server of the metrics listener: the
// Prometheus endpoint at metrics.Path and, with [metrics] pprof, Go's
// profiles at /debug/pprof/, nothing else. It warns when the
// listener is not on loopback, since it answers anyone who reaches it.
func (s *Server) serveMetrics(cfg *config.Config) *http.Server {
	addr := s.metricsLn.Addr().String()
	s.log.Info("listening", "kind", "metrics", "addr", addr, "url", "http://"+addr+metrics.Path)
	if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) {
		s.log.Warn("the metrics listener is not on loopback: anyone who reaches it sees the server's metrics; bind it to 127.0.0.1 or a private network", "addr", addr)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, s.metrics.Handler())
	if cfg.Metrics.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.Limits.ConnectTimeout.Duration,
		IdleTimeout:       time.Minute, // scrapes every 15s or so reuse the connection
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.With("module", "metrics").Handler(), slog.LevelDebug),
	}
}

// isLoopback reports whether host (an IP address or a name) is on the
// loopback interface.
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return host == "localhost"
}

// s2sStreams returns what metrics.S2S reads: the streams of the
// federation module of mods, none while federation is off.
func s2sStreams(mods []module.Module) func() map[[2]string]int {
	var fed *s2s.Module
	for _, m := range mods {
		if f, ok := m.(*s2s.Module); ok {
			fed = f
		}
	}
	return func() map[[2]string]int {
		var n s2s.StreamCounts
		if fed != nil && fed.Federation() != nil {
			n = fed.Federation().Streams()
		}
		return map[[2]string]int{
			{"out", "connecting"}: n.OutConnecting, {"out", "up"}: n.OutUp, {"out", "failed"}: n.OutFailed,
			{"in", "authenticated"}: n.InAuthenticated, {"in", "unauthenticated"}: n.InUnauthenticated,
		}
	}
}

// acmeKeys are the acme keys of a [tls] table, without its files.
func acmeKeys(t config.TLS) config.TLS {
	t.Cert, t.Key = "", ""
	return t
}

// A WebSocket stream and a BOSH session are c2s sessions.
var (
	_ c2s.Framed = (*websocket.Conn)(nil)
	_ c2s.Framed = (*bosh.Conn)(nil)
)
