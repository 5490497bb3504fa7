package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"

	"github.com/starling-xmpp/starling/admission"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/router"
	"github.com/starling-xmpp/starling/s2s/peercert"
	"github.com/starling-xmpp/starling/s2s/resolve"
	"github.com/starling-xmpp/starling/stanza"
	"github.com/starling-xmpp/starling/stream"
	"github.com/starling-xmpp/starling/tlsconf"
)

// Federation is the router's Remote: it owns every server-to-server
// stream of this server.
type Federation struct {
	cfg    func() *config.Config
	log    *slog.Logger
	router router.Router
	certs  *tlsconf.Store
	roots  *x509.CertPool
	res    *resolve.Resolver
	secret []byte
	now    func() time.Time
	// ctx is federation's lifetime: from New to Close, which comes after
	// the server's sessions have ended, so that what they sent last (the
	// unavailable presence of each user for remote contacts, RFC 6121
	// §4.5.2) still goes out.
	ctx    context.Context
	cancel context.CancelFunc
	inbox  *inbox

	unauth   admission.Counter // incoming streams not authenticated yet, per address
	refusals atomic.Int64      // incoming streams refused by that cap

	mu    sync.Mutex // guards links, ins and lns
	links map[pair]*link
	// sweepAt is the number of links at which failed ones are swept
	// next (sweep).
	sweepAt int
	ins     map[*inStream]struct{}
	lns     []net.Listener
	wg      sync.WaitGroup // the goroutines of listeners and streams
}

// pair is the (local domain, remote domain) of an outgoing stream.
type pair struct{ local, remote string }

// New returns the Federation of a server; nothing runs until Listen and
// RouteRemote.
func New(ctx context.Context, cfg func() *config.Config, log *slog.Logger, r router.Router, certs *tlsconf.Store) (*Federation, error) {
	c := cfg().S2S
	roots, err := peercert.Roots(c.CAFile)
	if err != nil {
		return nil, err
	}
	secret := []byte(c.DialbackSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	f := &Federation{
		cfg: cfg, log: log, router: r, certs: certs, roots: roots, secret: secret,
		res:   &resolve.Resolver{Server: c.Resolver, Timeout: c.ConnectTimeout.Duration},
		now:   time.Now,
		links: make(map[pair]*link), ins: make(map[*inStream]struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	f.inbox = newInbox(r)
	return f, nil
}

// settings returns the [s2s] table in force.
func (f *Federation) settings() *config.S2S { return &f.cfg().S2S }

// limits are the reader's limits for every stream (RFC 6120 §13.12).
func (f *Federation) limits() stream.Limits {
	return stream.Limits{MaxElementBytes: f.cfg().Limits.MaxStanzaBytes}
}

// mustEncrypt reports whether streams with domain must negotiate TLS
// (RFC 7590 §3.1).
func (f *Federation) mustEncrypt(domain string) bool {
	s := f.settings()
	return s.RequireEncryption && !slices.Contains(s.InsecureDomains, domain)
}

// verify checks the peer's certificate on c for domain (RFC 6125,
// XEP-0178 §3) and records the outcome on c.
func (f *Federation) verify(c *conn, domain string) error {
	if !c.secure {
		c.certErr = errNoTLS
	} else {
		c.certErr = peercert.Verify(c.tls.PeerCertificates, domain, f.roots, f.now())
	}
	return c.certErr
}

// clientTLS is the configuration of outgoing TLS to remote for local:
// SNI names the remote domain (RFC 6120 §13.7.2.1, for peers with many
// domains), the local domain's certificate is offered as the client
// certificate (XEP-0178), and the peer's certificate is checked by
// peercert rather than crypto/tls, so that a failure can fall back to
// dialback (XEP-0220) and be reported in words.
func (f *Federation) clientTLS(p pair, direct bool) *tls.Config {
	cfg := &tls.Config{
		ServerName:         asciiName(p.remote),
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // peercert.Verify after the handshake
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return f.certs.Certificate(p.local), nil
		},
	}
	if direct {
		cfg.NextProtos = []string{"xmpp-server"} // XEP-0368 §3
	}
	return cfg
}

// asciiName is a domain as SNI carries it: A-labels (RFC 6066 §3).
func asciiName(d string) string {
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return a
	}
	return d
}

// serverTLS is the configuration of incoming TLS: the certificate chosen
// by SNI, and the peer's certificate requested but checked by peercert
// (any extended key usage: serverAuth-only certificates are common).
func (f *Federation) serverTLS(direct bool) *tls.Config {
	var cfg *tls.Config
	if direct {
		cfg = f.certs.ServerConfig("xmpp-server").Clone()
	} else {
		cfg = f.certs.ServerConfig().Clone()
	}
	cfg.ClientAuth = tls.RequestClientCert
	return cfg
}

// RouteRemote sends s, a stanza from a local domain, to the remote domain
// it is addressed to (RFC 6120 §10.4), over the pair's stream.
func (f *Federation) RouteRemote(ctx context.Context, s *stanza.Stanza) {
	p := pair{local: s.From.Domainpart(), remote: s.To.Domainpart()}
	if p.local == "" || !f.router.Serves(p.local) {
		// Only stanzas of this server's domains leave for other servers.
		f.log.Debug("s2s: not relaying a stanza from a domain not served", "from", s.From.String(), "to", s.To.String())
		f.router.Bounce(ctx, s, &stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed})
		return
	}
	for {
		if f.getLink(p).send(s) {
			return
		}
	}
}

// getLink returns the pair's outgoing stream, starting one if needed.
func (f *Federation) getLink(p pair) *link {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[p]
	if l == nil {
		if len(f.links) >= max(f.sweepAt, minSweep) {
			f.sweep()
		}
		l = newLink(f, p)
		f.links[p] = l
	}
	return l
}

// minSweep is the number of links below which failed ones are never
// swept: a server talks to few domains.
const minSweep = 1024

// sweep forgets the links that failed and have waited past their retry
// window by max_retry_delay with nothing queued, so that stanzas to ever
// new unreachable domains do not hold memory for each; their backoff
// starts over if they are tried again. f.mu is held. It runs when the
// links have doubled since the last sweep, so its cost is spread over
// the links created meanwhile.
func (f *Federation) sweep() {
	now, keep := f.now(), f.settings().MaxRetryDelay.Duration
	for p, l := range f.links {
		l.mu.Lock()
		if l.state == failed && len(l.queue) == 0 && now.After(l.retryAt.Add(keep)) {
			l.state = closed
			delete(f.links, p)
		}
		l.mu.Unlock()
	}
	f.sweepAt = 2 * len(f.links)
}

// removeLink forgets l if it is still the pair's link and it may go:
// ok(l) is called with l.mu held.
func (f *Federation) removeLink(l *link, ok func() bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if f.links[l.p] != l || !ok() {
		return false
	}
	l.state = closed
	delete(f.links, l.p)
	return true
}

// bounce answers a stanza that could not be sent (RFC 6120 §8.3.3.16,
// §8.3.3.17); the router never answers errors and results.
func (f *Federation) bounce(s *stanza.Stanza, e *stanza.Error) {
	f.router.Bounce(f.ctx, s, e)
}

// Close closes the listeners and every stream, outgoing ones once what
// was queued for them is written, and waits for their goroutines.
func (f *Federation) Close() {
	f.cancel()
	f.mu.Lock()
	for _, ln := range f.lns {
		ln.Close()
	}
	f.lns = nil
	ins := make([]*inStream, 0, len(f.ins))
	for s := range f.ins {
		ins = append(ins, s)
	}
	f.mu.Unlock()
	for _, s := range ins {
		s.c.fail(&stream.Error{Condition: stream.SystemShutdown})
	}
	f.wg.Wait()
}

// acceptStanza takes a stanza another server sent: both addresses present
// (RFC 6120 §4.9.3.7), its domains accepted by check (what the stream
// authenticated), then routed from the recipient's queue. It returns the
// stream error that ends the stream, if any.
func (f *Federation) acceptStanza(el *stream.Element, check func(from, to string) *stream.Error) *stream.Error {
	st, perr := stanza.Parse(el.Raw, el.StartLen)
	if perr != nil && st == nil {
		return &stream.Error{Condition: stream.UnsupportedStanzaType}
	}
	from, to := st.From.Domainpart(), st.To.Domainpart()
	if from == "" || to == "" {
		return &stream.Error{Condition: stream.ImproperAddressing, Text: "a stanza between servers needs 'to' and 'from'"}
	}
	if se := check(from, to); se != nil {
		return se
	}
	if perr != nil {
		if !st.IsError() {
			f.router.Bounce(f.ctx, st, &stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
		}
		return nil
	}
	if raw := withoutNS(st.Raw, el.StartLen, nsServer); len(raw) != len(st.Raw) {
		st, _ = stanza.ParseElement(raw)
	}
	f.inbox.put(f.ctx, st)
	return nil
}
