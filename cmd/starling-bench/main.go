// Command starling-bench is a load generator that speaks plain XMPP
// (RFC 6120/6121) to any server — Starling, Prosody, ejabberd — so they
// can be measured side by side on the same machine.
//
// It is lean on purpose, since it shares the CPUs with the server under
// test: stanzas are written from byte templates and incoming elements are
// only split at their boundaries (no XML decoding on the hot path). It
// reports its own CPU time next to the server's, which it reads from
// /proc/PID/stat (utime+stime) and /proc/PID/status (VmRSS) for --pid.
//
// Scenarios:
//
//	login     N × (connect, STARTTLS or direct TLS, SASL, bind, initial
//	          presence, roster get); logins/s, latency p50/p99
//	idle      N authenticated sessions held open; server RSS before/after,
//	          bytes per session
//	messages  N pairs of sessions, each side sending --count messages (or
//	          for --duration) to its partner's full JID with at most
//	          --window in flight; delivered messages/s, latency
//	          p50/p99/p999, exactly-once delivery checked for every message
//	presence  N users, each a mutual contact of its --contacts K nearest on
//	          a ring (subscriptions made first, not measured); each sends
//	          --count presence updates, broadcast to its K contacts;
//	          deliveries/s, latency, exactly-once for every delivery
//	pep       the presence ring, every session advertising entity caps
//	          (XEP-0115) with a test node's +notify and answering the
//	          server's disco#info; each user publishes --count items to
//	          that PEP node (XEP-0163), notified to its K contacts;
//	          notifications/s, latency publish → notification, server
//	          CPU per notification, exactly-once for every notification
//	groupchat --rooms R multi-user chat rooms (XEP-0045) on --muc
//	          (conference.DOMAIN), each of --n N occupants, made instant
//	          rooms and entered first, not measured; each occupant sends
//	          --count messages to its room with at most --window
//	          outstanding to each other occupant; deliveries/s (one
//	          message reaching one other occupant), latency, server CPU
//	          per delivery, exactly-once for every delivery and for every
//	          reflection to the sender, checked apart
//	websocket messages with every session over XMPP over WebSocket
//	          (RFC 7395) at --url instead of TCP: the same figures and
//	          the same exactly-once check
//	churn     N receivers with stream management (XEP-0198) and
//	          resumption, each sent numbered messages by a sender of its
//	          own at a steady --rate; every --drop-every (±50 %) each
//	          receiver resets its TCP connection (no stream close) and
//	          resumes with <resume previd h/>; lost and duplicated
//	          messages (both must be 0), resumption latency p50/p99
//	mam       N senders fill account PREFIX1's archive with --fill
//	          messages through the server, then PREFIX1 pages back
//	          through it with --queries MAM queries (XEP-0313) of --page
//	          messages each; query latency p50/p99, server CPU per query
//	federation
//	          N senders logged in to server A (--addr, --domain) each
//	          sending --count messages to a receiver logged in to server
//	          B (--peer-addr, --peer-domain), across a server-to-server
//	          stream; a warm-up message per pair first, not measured;
//	          delivered messages/s, latency, server CPU per message on
//	          both sides (--pid, --peer-pid), exactly-once delivery
//	upload    HTTP file upload (XEP-0363): N clients find the upload
//	          service by disco, then each requests slots for --count
//	          files of --size bytes and PUTs them; then each downloads
//	          the files of another and checks every byte; uploads and
//	          downloads/s, MiB/s each way, latency, server CPU per MiB
//
// --resume makes login resume TLS sessions (a session cache per worker)
// and report how many did. --relay points login (with --script, a login's
// recorded byte counts) or messages at `starling-bench relay --listen ADDR
// --cert F --key F`, a bare TLS relay that parses nothing: the floor of
// syscalls and crypto for the same bytes (relay.go).
//
// --url wss://HOST:PORT/xmpp-websocket runs any scenario over WebSocket
// (subprotocol xmpp, <open/> and <close/> framing, one element per
// message, no STARTTLS: the TLS is wss's); --scenario websocket is
// messages with it.
//
// Accounts PREFIX1…PREFIXk (--users, --password) must exist. --create
// registers them first by in-band registration (XEP-0077) when the server
// allows it; otherwise create them with the server's tool:
//
//	printf 'pw\n' | starling user add --config starling.toml user1@localhost
//	prosodyctl --config prosody.cfg.lua register user1 localhost pw
//	ejabberdctl register user1 localhost pw
//
// Servers under load (see README.md in this directory): raise the
// server's open-file limit (`ulimit -n`; Prosody and ejabberd started
// through su get 1024), give ejabberd a listen backlog above its default
// of 5, and remove Debian Prosody's c2s rate limit. This tool raises its
// own limit to the hard one.
//
// Example:
//
//	starling-bench --addr 127.0.0.1:5222 --domain localhost --insecure \
//	    --pid $(pidof starling) --scenario messages --n 10 --count 2000 --json
//	starling-bench --url wss://127.0.0.1:5443/xmpp-websocket --domain localhost \
//	    --insecure --pid $(pidof starling) --scenario websocket --n 10 --count 2000
//	starling-bench --scenario federation --addr 127.0.0.1:5222 --domain a.test \
//	    --pid PIDA --peer-addr 127.0.0.2:5222 --peer-domain b.test --peer-pid PIDB \
//	    --insecure --n 10 --count 2000
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"
)

type config struct {
	addr, domain      string
	url               string       // XMPP over WebSocket instead of TCP, if set
	http              *http.Client // for the WebSocket upgrades, with url
	directTLS         bool
	insecure          bool
	roots             *x509.CertPool
	users, password   string
	mech              string
	scenario          string
	n, count          int
	contacts          int
	accounts          int
	duration          time.Duration
	concurrency       int
	window            int
	batch             int
	timeout           time.Duration
	settle            time.Duration
	pid               int
	create            bool
	json              bool
	label             string
	source            func() net.IP
	stderr            io.Writer
	progressEvery     time.Duration
	createConcurrency int
	cpuProfile        string
	scramCache        bool
	pq                bool
	rate              float64       // churn: messages per second from each sender
	dropEvery         time.Duration // churn: how often each receiver drops its connection
	fill              int           // mam: messages put in the archive first
	page              int           // mam: messages per query
	queries           int           // mam: queries measured
	rooms             int           // groupchat: rooms, each with --n occupants
	muc               string        // groupchat: the MUC service's domain
	size              int64         // upload: bytes per file
	resume            bool          // login: each worker resumes its TLS session after its first login
	relay             bool          // login, messages: --addr is `starling-bench relay`
	scriptPlain       []turn        // login --relay: the exchange played, plaintext turns
	scriptTLS         []turn        // and those inside TLS

	// Per login, on copies of the configuration: the worker's TLS session
	// cache (--resume), and where a login's byte counts are recorded.
	sessionCache tls.ClientSessionCache
	rec          *exchange

	// federation: server B, where the receivers log in (the fields above
	// are server A's, where the senders do).
	peerAddr, peerDomain string
	peerMech             string
	peerPID              int
}

// peer is the configuration of the sessions on server B (federation):
// this one with B's address, domain, mechanism and PID.
func (cfg *config) peer() *config {
	p := *cfg
	p.addr, p.domain, p.mech, p.pid = cfg.peerAddr, cfg.peerDomain, cfg.peerMech, cfg.peerPID
	return &p
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "relay" {
		return runRelay(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "starling-bench:", err)
		return 2
	}
	raiseFileLimit()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "starling-bench:", err)
			return 2
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if cfg.create {
		err := createAccounts(ctx, cfg)
		if err == nil && cfg.scenario == "federation" {
			err = createAccounts(ctx, cfg.peer())
		}
		if err != nil {
			fmt.Fprintln(stderr, "starling-bench: --create:", err)
			fmt.Fprintln(stderr, "create the accounts with the server's own tool instead (see -help)")
			return 1
		}
	}
	var res *result
	switch cfg.scenario {
	case "login":
		res, err = runLogin(ctx, cfg)
	case "idle":
		res, err = runIdle(ctx, cfg)
	case "messages", "websocket":
		res, err = runMessages(ctx, cfg)
	case "presence", "pep":
		res, err = runPresence(ctx, cfg)
	case "federation":
		res, err = runFederation(ctx, cfg)
	case "churn":
		res, err = runChurn(ctx, cfg)
	case "mam":
		res, err = runMAM(ctx, cfg)
	case "groupchat":
		res, err = runGroupchat(ctx, cfg)
	case "upload":
		res, err = runUpload(ctx, cfg)
	}
	if res != nil {
		if cfg.json {
			res.writeJSON(stdout)
		} else {
			res.writeTable(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "starling-bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{stderr: stderr}
	fs := flag.NewFlagSet("starling-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: starling-bench --addr HOST:PORT --domain DOMAIN [--insecure] --scenario login|idle|messages|presence|pep|groupchat|churn|mam|upload [flags]")
		fmt.Fprintln(stderr, "       starling-bench --url wss://HOST:PORT/xmpp-websocket --domain DOMAIN [--insecure] --scenario websocket|login|idle|presence [flags]")
		fmt.Fprintln(stderr, "       starling-bench --addr HOST:PORT --domain DOMAIN --peer-addr HOST:PORT --peer-domain DOMAIN [--insecure] --scenario federation [flags]")
		fmt.Fprintln(stderr, "       starling-bench --relay --addr HOST:PORT [--insecure] --scenario login --script EXCHANGE | --scenario messages [flags]")
		fmt.Fprintln(stderr, "       starling-bench relay --listen HOST:PORT --cert FILE --key FILE   (the bare TLS relay those drive)")
		fmt.Fprintln(stderr, "\nAccounts PREFIX1..PREFIXk must exist (or use --create for XEP-0077 registration). Otherwise:")
		fmt.Fprintln(stderr, "  printf 'pw\\n' | starling user add --config F user1@DOMAIN")
		fmt.Fprintln(stderr, "  prosodyctl --config F register user1 DOMAIN pw")
		fmt.Fprintln(stderr, "  ejabberdctl register user1 DOMAIN pw")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:5222", "server `host:port` (the STARTTLS port, or the direct TLS one with --directtls)")
	fs.StringVar(&cfg.domain, "domain", "localhost", "XMPP domain (stream 'to', TLS server name, account domain)")
	fs.StringVar(&cfg.url, "url", "", "connect every session by XMPP over WebSocket (RFC 7395) to this `ws:// or wss:// URL` instead of --addr, e.g. wss://HOST:5443/xmpp-websocket")
	fs.BoolVar(&cfg.directTLS, "directtls", false, "connect with direct TLS (XEP-0368, ALPN xmpp-client) instead of STARTTLS")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server's certificate (needed for self-signed test certificates)")
	ca := fs.String("ca", "", "PEM `file` of CA certificates to trust instead of the system's")
	fs.StringVar(&cfg.users, "users", "user", "account name `prefix`: accounts are PREFIX1..PREFIXk")
	fs.StringVar(&cfg.password, "password", "pw", "password of every account")
	fs.StringVar(&cfg.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS forms, or PLAIN")
	fs.BoolVar(&cfg.pq, "tls-pq", false, "offer Go's default post-quantum hybrid key exchange (X25519MLKEM768) instead of X25519/P-256 only")
	fs.BoolVar(&cfg.scramCache, "scram-cache", true, "keep each account's SCRAM ClientKey/ServerKey after its first login, as clients that store them do; false: PBKDF2 on every login (mellium.im/sasl)")
	fs.StringVar(&cfg.scenario, "scenario", "login", "login, idle, messages, presence, pep (PEP notifications to contacts), groupchat (messages in multi-user chat rooms), websocket (messages over --url), federation (messages from --domain to --peer-domain), churn (receivers that drop their connections and resume), mam (archive queries), or upload (HTTP file upload, XEP-0363)")
	fs.IntVar(&cfg.n, "n", 0, "login: logins (default 200); idle: sessions (default 1000); messages, websocket, federation, churn: pairs (default 10); presence, pep: users (default 100); groupchat: occupants per room (default 10); mam: senders filling the archive (default 10); upload: clients (default 4)")
	fs.IntVar(&cfg.contacts, "contacts", 10, "presence, pep: each user's mutual contacts, an even number below --n: the K/2 next and K/2 previous users on a ring")
	fs.IntVar(&cfg.count, "count", 1000, "messages, churn: messages each sender sends; presence: presence updates each user sends; pep: items each user publishes; groupchat: messages each occupant sends (ignored with --duration); upload: files each client uploads (default 10)")
	fs.IntVar(&cfg.accounts, "accounts", 0, "accounts to use, PREFIX1..PREFIXk (default: login --concurrency, idle --n, messages 2×--n, presence --n, groupchat --rooms×--n, federation --n on each server)")
	fs.DurationVar(&cfg.duration, "duration", 0, "login: run for this long instead of --n logins; idle: hold the sessions this long; messages, presence, pep: send for this long instead of --count")
	fs.Float64Var(&cfg.rate, "rate", 100, "churn: messages per second each sender sends, steadily")
	fs.DurationVar(&cfg.dropEvery, "drop-every", time.Second, "churn: each receiver drops its connection and resumes this often (±50 %, at random)")
	fs.IntVar(&cfg.fill, "fill", 1000, "mam: messages sent to PREFIX1 first, which the server archives")
	fs.IntVar(&cfg.page, "page", 50, "mam: messages per query (RSM <max/>)")
	fs.IntVar(&cfg.queries, "queries", 200, "mam: queries measured, one at a time, after 5 not measured")
	fs.IntVar(&cfg.rooms, "rooms", 10, "groupchat: rooms, each with --n occupants")
	fs.StringVar(&cfg.muc, "muc", "", "groupchat: the multi-user chat service's `domain` (default conference.DOMAIN)")
	size := fs.String("size", "1MiB", "upload: `bytes` per file, optionally with K, M or G (KiB, MiB, GiB)")
	fs.BoolVar(&cfg.resume, "resume", false, "login: each of the --concurrency workers keeps a TLS session cache; its first login is a full handshake, the rest offer to resume (the result says how many did)")
	fs.BoolVar(&cfg.relay, "relay", false, "login, messages: --addr is a `starling-bench relay`, which parses nothing: the floor of syscalls and crypto for the same bytes (login needs --script)")
	script := fs.String("script", "", "login --relay: the `exchange` to play, byte counts C/S per turn, plaintext turns|TLS turns, as a login's JSON result records it (\"exchange\")")
	fs.IntVar(&cfg.concurrency, "concurrency", 10, "logins in progress at once")
	fs.IntVar(&cfg.window, "window", 16, "messages: messages in flight per sender; presence, pep: updates (items) in flight from each user to each contact; groupchat: messages in flight from each occupant to each other occupant")
	fs.IntVar(&cfg.batch, "batch", 1, "messages, presence, pep, groupchat: write up to this many stanzas at once when the window allows (1: one stanza per write, like a real client)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "bound on one login, on waiting for outstanding messages or presence, and on the presence setup without a roster push")
	fs.DurationVar(&cfg.settle, "settle", time.Second, "idle: wait this long after the last login before reading the server's RSS")
	fs.IntVar(&cfg.pid, "pid", 0, "`PID` of the server process to measure (CPU, RSS); 0: none")
	fs.StringVar(&cfg.peerAddr, "peer-addr", "", "federation: server B's `host:port`, where the receivers log in (as --addr for server A, where the senders do)")
	fs.StringVar(&cfg.peerDomain, "peer-domain", "", "federation: server B's XMPP `domain`, federating with --domain")
	fs.StringVar(&cfg.peerMech, "peer-mech", "", "federation: SASL mechanism on server B (default: --mech)")
	fs.IntVar(&cfg.peerPID, "peer-pid", 0, "federation: `PID` of server B's process, to measure its CPU; 0: none")
	fs.BoolVar(&cfg.create, "create", false, "first register the accounts by in-band registration (XEP-0077); an existing account is fine")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON line instead of a table")
	fs.StringVar(&cfg.label, "label", "", "server name to put in the output (e.g. starling, prosody)")
	srcs := fs.String("source-ips", "", "comma-separated local `addresses` to connect from, in turn (ejabberd throttles registrations per IP)")
	fs.DurationVar(&cfg.progressEvery, "progress", 0, "print progress to stderr this often (0: never)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write this tool's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, ok := mechanisms[cfg.mech]; !ok {
		return nil, fmt.Errorf("--mech %q: unsupported", cfg.mech)
	}
	defaults := map[string]int{"login": 200, "idle": 1000, "messages": 10, "presence": 100, "pep": 100, "websocket": 10, "federation": 10, "churn": 10, "mam": 10, "groupchat": 10, "upload": 4}
	def, ok := defaults[cfg.scenario]
	if !ok {
		return nil, fmt.Errorf("--scenario %q: want login, idle, messages, presence, pep, groupchat, websocket, federation, churn, mam or upload", cfg.scenario)
	}
	if err := cfg.checkPeer(fs); err != nil {
		return nil, err
	}
	if cfg.url != "" {
		u, err := url.Parse(cfg.url)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want ws://HOST:PORT/PATH or wss://HOST:PORT/PATH", cfg.url)
		}
		if cfg.directTLS {
			return nil, errors.New("--url and --directtls exclude each other")
		}
		if cfg.scenario == "churn" {
			return nil, errors.New("--scenario churn resets TCP connections: --url does not apply")
		}
	} else if cfg.scenario == "websocket" {
		return nil, errors.New("--scenario websocket needs --url wss://HOST:PORT/xmpp-websocket")
	}
	if cfg.n == 0 {
		cfg.n = def
	}
	if cfg.resume && cfg.scenario != "login" {
		return nil, errors.New("--resume: only for --scenario login")
	}
	if cfg.relay {
		if cfg.scenario != "login" && cfg.scenario != "messages" {
			return nil, errors.New("--relay: only for --scenario login or messages")
		}
		if cfg.url != "" || cfg.directTLS || cfg.create {
			return nil, errors.New("--relay: over TCP, without --url, --directtls or --create")
		}
		if cfg.scenario == "login" {
			var err error
			if cfg.scriptPlain, cfg.scriptTLS, err = parseScript(*script); err != nil {
				return nil, err
			}
		}
	} else if *script != "" {
		return nil, errors.New("--script: only with --relay")
	}
	if cfg.n < 0 || cfg.count < 1 || cfg.concurrency < 1 || cfg.window < 1 || cfg.batch < 1 || cfg.accounts < 0 {
		return nil, errors.New("--n, --count, --concurrency, --window, --batch and --accounts must be positive")
	}
	if cfg.accounts == 0 {
		switch cfg.scenario {
		case "login":
			cfg.accounts = min(cfg.concurrency, cfg.n)
		case "idle":
			cfg.accounts = cfg.n
		case "messages", "websocket", "churn":
			cfg.accounts = 2 * cfg.n
		case "presence", "pep", "federation", "upload":
			cfg.accounts = cfg.n
		case "mam":
			cfg.accounts = cfg.n + 1
		case "groupchat":
			cfg.accounts = cfg.rooms * cfg.n
		}
	}
	if cfg.scenario == "groupchat" {
		if cfg.n < 2 || cfg.rooms < 1 {
			return nil, errors.New("groupchat needs --rooms of at least 1 and --n of at least 2 occupants per room")
		}
		if cfg.accounts < cfg.rooms*cfg.n {
			return nil, fmt.Errorf("groupchat needs one account per occupant: --accounts %d < --rooms×--n (%d)", cfg.accounts, cfg.rooms*cfg.n)
		}
		if cfg.muc == "" {
			cfg.muc = "conference." + cfg.domain
		}
	}
	if cfg.scenario == "mam" && (cfg.n < 1 || cfg.fill < 1 || cfg.page < 1 || cfg.queries < 1 || cfg.accounts < cfg.n+1) {
		return nil, errors.New("mam needs --n, --fill, --page and --queries of at least 1, and --accounts of at least --n + 1")
	}
	if cfg.scenario == "upload" {
		var err error
		if cfg.size, err = parseSize(*size); err != nil {
			return nil, fmt.Errorf("--size %q: %w", *size, err)
		}
		countSet := false
		fs.Visit(func(f *flag.Flag) { countSet = countSet || f.Name == "count" })
		if !countSet {
			cfg.count = 10
		}
		if cfg.n < 1 || cfg.accounts < cfg.n {
			return nil, fmt.Errorf("upload needs --n of at least 1 and one account per client: --accounts %d < --n", cfg.accounts)
		}
	}
	if cfg.scenario == "churn" && (cfg.rate <= 0 || cfg.dropEvery <= 0) {
		return nil, errors.New("--rate and --drop-every must be positive")
	}
	if (cfg.scenario == "messages" || cfg.scenario == "websocket" || cfg.scenario == "churn") && cfg.accounts < 2*cfg.n {
		return nil, fmt.Errorf("%s needs one account per session: --accounts %d < 2×--n", cfg.scenario, cfg.accounts)
	}
	if cfg.scenario == "federation" && cfg.accounts < cfg.n {
		return nil, fmt.Errorf("federation needs one account per session on each server: --accounts %d < --n", cfg.accounts)
	}
	if cfg.scenario == "presence" || cfg.scenario == "pep" {
		if cfg.accounts < cfg.n {
			return nil, fmt.Errorf("%s needs one account per user: --accounts %d < --n", cfg.scenario, cfg.accounts)
		}
		if cfg.contacts < 2 || cfg.contacts%2 != 0 || cfg.contacts >= cfg.n {
			return nil, fmt.Errorf("--contacts %d: want an even number from 2 to --n - 1 (%d)", cfg.contacts, cfg.n-1)
		}
	}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return nil, err
		}
		cfg.roots = x509.NewCertPool()
		if !cfg.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no certificates", *ca)
		}
	}
	if *srcs != "" {
		var ips []net.IP
		for _, s := range strings.Split(*srcs, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				return nil, fmt.Errorf("--source-ips: bad address %q", s)
			}
			ips = append(ips, ip)
		}
		var next atomic.Uint64
		cfg.source = func() net.IP { return ips[(next.Add(1)-1)%uint64(len(ips))] }
	}
	if cfg.pid > 0 {
		if _, err := procCPU(cfg.pid); err != nil {
			return nil, fmt.Errorf("--pid: %w", err)
		}
	}
	if cfg.pid < 0 || cfg.peerPID < 0 {
		return nil, errors.New("--pid and --peer-pid: a process ID, or 0 for none")
	}
	if cfg.peerPID > 0 {
		if _, err := procCPU(cfg.peerPID); err != nil {
			return nil, fmt.Errorf("--peer-pid: %w", err)
		}
	}
	if cfg.url != "" {
		cfg.http = cfg.httpClient()
	}
	cfg.createConcurrency = min(cfg.concurrency, 8)
	return cfg, nil
}

// checkPeer checks the flags of server B: all of --peer-addr and
// --peer-domain with --scenario federation (over TCP: --url does not
// apply), none of the --peer flags with another scenario.
func (cfg *config) checkPeer(fs *flag.FlagSet) error {
	if cfg.scenario != "federation" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "peer-") {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return fmt.Errorf("%s: only for --scenario federation", strings.Join(set, ", "))
		}
		return nil
	}
	if cfg.url != "" {
		return errors.New("--scenario federation runs over TCP: --url does not apply")
	}
	if cfg.peerAddr == "" || cfg.peerDomain == "" {
		return errors.New("--scenario federation needs --peer-addr and --peer-domain: server B, where the receivers log in")
	}
	if _, _, err := net.SplitHostPort(cfg.peerAddr); err != nil {
		return fmt.Errorf("--peer-addr %q: want host:port", cfg.peerAddr)
	}
	if strings.EqualFold(cfg.peerDomain, cfg.domain) {
		return fmt.Errorf("--peer-domain %q is --domain: federation is between two domains", cfg.peerDomain)
	}
	if cfg.peerMech == "" {
		cfg.peerMech = cfg.mech
	}
	if _, ok := mechanisms[cfg.peerMech]; !ok {
		return fmt.Errorf("--peer-mech %q: unsupported", cfg.peerMech)
	}
	return nil
}

// createAccounts registers PREFIX1..PREFIXk in parallel.
func createAccounts(ctx context.Context, cfg *config) error {
	var created, existed atomic.Int64
	err := parallel(ctx, cfg.accounts, cfg.createConcurrency, func(i int) error {
		ok, err := register(ctx, cfg, cfg.account(i+1))
		if ok {
			created.Add(1)
		} else if err == nil {
			existed.Add(1)
		}
		return err
	})
	fmt.Fprintf(cfg.stderr, "accounts: %d created, %d already existed\n", created.Load(), existed.Load())
	return err
}
