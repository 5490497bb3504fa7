// Command compare runs the standard cmd/starling-bench suite against
// Starling, Prosody and ejabberd on this machine, one server at a time, and
// writes the figures with Starling's ratios to the other two into
// docs/benchmarks.md (issue 3 part 5). `make bench-compare` runs it from the
// repository root, as root:
//
//	go run ./bench/compare [-servers starling,prosody,ejabberd] [-cases NAME,…] [-federation starling-prosody,prosody-starling,prosody-ejabberd] [-cert rsa2048|ecdsa-p256] [-quick] [-doc docs/benchmarks.md]
//
// Steps:
//  1. Raises the open-file limit, which the servers inherit, and apt-get
//     installs prosody and ejabberd if missing (internal/anchor).
//  2. Builds ./cmd/starling and ./cmd/starling-bench into a temporary
//     directory.
//  3. For each server in turn — Starling on 127.0.0.1, Prosody on 127.0.0.2,
//     ejabberd on 127.0.0.3, each on 5222 (STARTTLS), 5223 (direct TLS)
//     and 5281 (HTTPS, with XMPP over WebSocket at /xmpp-websocket, for
//     the websocket cases), domain localhost — starts it fresh with the accounts user1…userK
//     and, for presence, puser1…puserN (password "pw") the suite needs
//     (and, for group chat, its multi-user chat service: groupchat.go),
//     runs every case with
//     `starling-bench --json --pid`, and stops it before the next one
//     starts, so no two servers ever share the CPUs. Every server serves
//     one certificate chain made for the run (internal/anchor.NewChain: a
//     CA and a leaf with RSA 2048 keys, or -cert's), and the case login-ecdsa runs on
//     each started afresh with an ECDSA P-256 one. Starling runs on
//     SQLite; Prosody and ejabberd with
//     internal/anchor's configuration (no archive, no rate limits). The
//     suite ends with churn (receivers that drop their connections and
//     resume, XEP-0198), then the HTTP file upload cases (XEP-0363) on each
//     server started afresh with its upload service on (upload.go), then
//     the cases with the message archive on
//     (XEP-0313): each server is started afresh with it ([modules.mam],
//     mod_mam in Prosody's files and in ejabberd's Mnesia), for the
//     messages case with every message archived and MAM query latency on
//     archives of 1,000 to 1,000,000 messages (as far as each server fills
//     them within a case's five minutes).
//  4. Then the floor (relay.go): `starling-bench relay` with the RSA chain
//     on Starling's address, a process that parses nothing, driven by the
//     relay cases with the bytes of Starling's login of this run and the
//     messages case's stanzas; its CPU per login and per message beside
//     each server's, as ratios.
//  5. Then the federation runs (federation.go), one pair of servers at a
//     time: starling-bench's federation scenario with the senders on the
//     first server and the receivers on the second, each server on a
//     domain of its own (NAME.test) and federating with the other — Starling
//     → Prosody, and Prosody → ejabberd for reference, by default
//     (-federation; a server paired with itself runs twice, the second
//     instance on NAME-2.test) — server CPU per message measured on both.
//  6. Prints the table case × server and the federation table and writes
//     them, with the date, the machine, the commit, the versions and the
//     exact commands, between the markers of -doc (text outside them, such
//     as hand-written notes, is kept).
//
// -cases runs chosen cases only, by name or by scenario (-cases upload:
// upload-1m and upload-50m), and no federation runs unless -federation
// is given; it updates -doc in part (merge.go): the rows of those cases,
// marked with the run's date, and a section on that run, every other
// figure staying from the last full run.
//
// A case that fails on a server is recorded in its cell (with the error
// below the table) and the run goes on; the exit status is 1 if any cell
// failed. Every server is stopped on error and on interrupt. Each
// starling-bench run's JSON line and stderr, and the servers' logs, are
// kept in -logs. -quick runs the same cases at tiny sizes, to try it out,
// and only prints the table unless -doc is given.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// The servers, in the order they run, with the address each listens on
// and the SCRAM mechanisms it offers (the first is used where the case
// does not name one): Prosody stores SCRAM-SHA-1 keys, ejabberd
// SCRAM-SHA-256 ones (internal/anchor).
var servers = []serverInfo{
	{name: "starling", title: "Starling", addr: "127.0.0.1", addr2: "127.0.0.4", mechs: []string{"SCRAM-SHA-1", "SCRAM-SHA-256"}},
	{name: "prosody", title: "Prosody", addr: "127.0.0.2", addr2: "127.0.0.5", mechs: []string{"SCRAM-SHA-1"}},
	{name: "ejabberd", title: "ejabberd", addr: "127.0.0.3", addr2: "127.0.0.6", mechs: []string{"SCRAM-SHA-256"}},
}

type serverInfo struct {
	name, title, addr string
	addr2             string // a second instance's, in a federation run with itself
	mechs             []string
}

const (
	password     = "pw"
	starlingStop = 30 * time.Second
	startTimeout = time.Minute
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench-compare: ")
	doc := flag.String("doc", "docs/benchmarks.md", "Markdown file to write the results into (empty: none)")
	logs := flag.String("logs", filepath.Join(os.TempDir(), "starling-bench-compare"), "directory for each run's output and the servers' logs (kept; a new run overwrites them)")
	list := flag.String("servers", "starling,prosody,ejabberd", "comma-separated servers to measure, in this order")
	quick := flag.Bool("quick", false, "tiny sizes, to try the command out (not a benchmark); writes no -doc unless given")
	only := flag.String("cases", "", "comma-separated cases to run (default: the whole suite), by name or by scenario (all its cases), e.g. churn,mam-1k or upload; with -doc, only their rows of the page are replaced")
	certKey := flag.String("cert", string(anchor.RSA2048), "key type of the certificate chain every server serves, but for login-ecdsa: rsa2048 or ecdsa-p256")
	fed := flag.String("federation", defaultFederation, "comma-separated federation runs after the servers alone, FROM-TO: users on FROM message users on TO (\"\": none)")
	flag.Parse()
	if *quick {
		docGiven := false
		flag.Visit(func(f *flag.Flag) { docGiven = docGiven || f.Name == "doc" })
		if !docGiven {
			*doc = ""
		}
	}
	var chosen []serverInfo
	for _, name := range strings.Split(*list, ",") {
		if strings.TrimSpace(name) == "" {
			continue // -servers '': the federation runs only
		}
		i := slices.IndexFunc(servers, func(s serverInfo) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			log.Fatalf("-servers: unknown server %q (want starling, prosody, ejabberd)", name)
		}
		chosen = append(chosen, servers[i])
	}
	fedGiven := false
	flag.Visit(func(f *flag.Flag) { fedGiven = fedGiven || f.Name == "federation" })
	if strings.TrimSpace(*only) != "" && !fedGiven {
		*fed = "" // chosen cases: no federation runs unless asked for
	}
	pairs, err := parseFederation(*fed)
	if err != nil {
		log.Fatal(err)
	}
	key, err := anchor.ParseKeyType(*certKey)
	if err != nil {
		log.Fatal("-cert: ", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *doc, *logs, chosen, pairs, *quick, *only, key); err != nil {
		if ctx.Err() != nil {
			log.Fatal("interrupted; every server was stopped")
		}
		log.Fatal(err)
	}
}

// cleanups run in reverse order when run returns, whatever happened.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }
func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func run(ctx context.Context, docPath, logDir string, chosen []serverInfo, pairs []fedPair, quick bool, only string, key anchor.KeyType) error {
	began := time.Now()
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (go.mod not found)")
	}
	if os.Getuid() != 0 {
		return errors.New("must run as root: it installs packages and starts Prosody and ejabberd")
	}
	if err := anchor.RaiseOpenFiles(); err != nil {
		return err
	}
	if slices.ContainsFunc(chosen, func(s serverInfo) bool { return s.name != "starling" }) ||
		slices.ContainsFunc(pairs, func(p fedPair) bool { return p.from.name != "starling" || p.to.name != "starling" }) {
		if err := anchor.Install(ctx); err != nil {
			return err
		}
	}
	var cl cleanups
	defer func() { cl.run() }()
	dir, err := os.MkdirTemp("", "starling-bench-compare-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755) // ejabberd runs as its own user
	cl.add(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	// One certificate chain per key type for every server (a CA and a
	// leaf, as a server with a public CA's certificate sends): RSA 2048
	// for every case but those made to show ECDSA's cost (cert).
	chains := map[anchor.KeyType]*anchor.Chain{}
	for _, k := range []anchor.KeyType{anchor.RSA2048, anchor.ECDSAP256} {
		if chains[k], err = anchor.NewChain(filepath.Join(dir, "certs"), k, certNames...); err != nil {
			return err
		}
	}

	bin := filepath.Join(dir, "bin")
	for _, pkg := range []string{"starling", "starling-bench"} {
		log.Printf("go build ./cmd/%s", pkg)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, pkg), "./cmd/"+pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %v\n%s", pkg, err, out)
		}
	}
	cases, err := pick(suite(quick), only)
	if err != nil {
		return err
	}
	// A run of chosen cases updates the page in part (merge.go).
	partial := strings.TrimSpace(only) != "" && !quick && docPath != ""
	if partial {
		if len(pairs) > 0 {
			return errors.New("-cases with federation runs cannot update -doc in part: give -federation '' or -doc ''")
		}
		if b, err := os.ReadFile(docPath); err != nil || !strings.Contains(string(b), beginMarker) {
			return fmt.Errorf("-cases updates the figures of %s in part, and it has none yet: run the whole suite first", docPath)
		}
	}
	rep := &report{
		date: began.UTC(), quick: quick, cases: cases, servers: chosen, fedCase: fedCase(quick), key: key,
		machine: machine(), commit: commit(),
		versions: map[string]string{}, cells: map[string]map[string]*cell{},
	}
	for _, c := range cases {
		rep.cells[c.name] = map[string]*cell{}
	}
	accounts := map[string]string{}
	for _, a := range accountsNeeded(cases) {
		for i := 1; i <= a.k; i++ {
			accounts[a.prefix+strconv.Itoa(i)] = password
		}
	}

	// Each server runs up to five times: the cases without the archive;
	// then, started afresh with an ECDSA certificate, the logins with it;
	// then, started afresh, the cases that need a server of their own
	// (idle sessions over WebSocket: after the TCP ones, the server's RSS
	// holds memory it would reuse);
	// then, started afresh with HTTP file upload on, the upload cases;
	// then, started afresh with its message archive on, those with it.
	for _, s := range chosen {
		for _, ph := range []phase{plain, ecdsa, fresh, uploads, archived} {
			var phaseCases []benchCase
			for _, c := range cases {
				if phaseOf(c) == ph && !c.relay {
					phaseCases = append(phaseCases, c)
				}
			}
			if len(phaseCases) == 0 {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			with, sub := "", s.name
			switch ph {
			case uploads:
				with, sub = ", HTTP file upload on", s.name+"-upload"
			case archived:
				with, sub = ", the archive on", s.name+"-archive"
			case ecdsa:
				with, sub = ", an ECDSA P-256 certificate", s.name+"-ecdsa"
			case fresh:
				with, sub = " afresh", s.name+"-fresh"
			}
			log.Printf("%s: starting on %s with %d accounts%s", s.title, s.addr, len(accounts), with)
			t0 := time.Now()
			chain := chains[key]
			if ph == ecdsa {
				chain = chains[anchor.ECDSAP256]
			}
			srv, err := startServer(ctx, s, filepath.Join(dir, sub), filepath.Join(bin, "starling"), logDir, accounts, ph, needsMUC(phaseCases), chain)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				log.Printf("%s did not start: %v", s.title, err)
				for _, c := range phaseCases {
					rep.cells[c.name][s.name] = &cell{err: "did not start: " + err.Error(), skipped: skipped(c, s)}
				}
				continue
			}
			log.Printf("%s is up, %s (%.1f s)", s.title, srv.version, time.Since(t0).Seconds())
			rep.versions[s.name] = srv.version
			stopped := false
			stopSrv := func() {
				if !stopped {
					stopped = true
					srv.stop()
				}
			}
			cl.add(stopSrv)
			for _, c := range phaseCases {
				rep.cells[c.name][s.name] = runCase(ctx, filepath.Join(bin, "starling-bench"), logDir, s, srv, c, quick)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			stopSrv()
		}
	}
	// The floor: the relay cases, on a bare TLS relay with the RSA chain,
	// once every server has stopped (relay.go).
	if slices.ContainsFunc(cases, func(c benchCase) bool { return c.relay }) {
		if err := runRelayCases(ctx, rep, filepath.Join(bin, "starling-bench"), logDir, chains[key], quick); err != nil {
			return err
		}
	}
	if len(pairs) > 0 {
		fedAccts := map[string]string{}
		for i := 1; i <= fedAccounts(rep.fedCase); i++ {
			fedAccts["user"+strconv.Itoa(i)] = password
		}
		rep.fed, err = runFederation(ctx, pairs, rep.fedCase, dir, bin, logDir, fedAccts, quick)
		if err != nil {
			return err
		}
	}
	rep.took = time.Since(began)

	fmt.Println()
	if len(chosen) > 0 {
		fmt.Println(rep.table())
	}
	if f := rep.floor(); f != "" {
		fmt.Println(f)
	}
	if len(rep.fed) > 0 {
		fmt.Println(rep.fedTable())
	}
	if docPath != "" {
		write, what := rep.writeDoc, "wrote %s"
		if partial {
			write, what = rep.mergeDoc, "updated the rows of the cases run in %s"
		}
		if err := write(docPath); err != nil {
			return err
		}
		log.Printf(what, docPath)
	}
	log.Printf("took %s; each run's output and the servers' logs are in %s", rep.took.Round(time.Second), logDir)
	if n := rep.failures(); n > 0 {
		return fmt.Errorf("%d case×server cells failed (see the table and %s)", n, logDir)
	}
	return nil
}

// --- the suite ---

// benchCase is one starling-bench command of the suite.
type benchCase struct {
	name      string         // short name: log file names, footnotes
	scenario  string         // login, messages, idle, presence, pep, groupchat, websocket, churn or mam
	title     string         // what it is, for the table's row labels
	mech      string         // SASL mechanism; "" for the server's own SCRAM
	websocket bool           // over XMPP over WebSocket: --url of the server's endpoint
	args      []string       // starling-bench arguments after the common ones
	archive   bool           // run on the servers started with their message archive on
	upload    bool           // run on the servers started with HTTP file upload on
	servers   []string       // the servers it runs on; nil: all
	why       string         // why it does not run on the others
	timeout   time.Duration  // how long it may run; 0: five minutes
	cert      anchor.KeyType // the servers' certificate's key; "": RSA 2048
	fresh     bool           // on each server started afresh for it (and the other such cases)
	resume    bool           // logins resuming TLS sessions (--resume): the row of how many did
	relay     bool           // on the relay (relay.go), not on the servers: the floor
	ref       string         // relay: the servers' case it is the floor of (the ratios; login: its exchange)
	altRef    string         // relay: the case for a server that does not run ref (another mechanism)
}

// phase is how the servers are started for a case: as they are, with
// HTTP file upload on, or with the message archive on. Each server is
// started afresh for each phase, in this order.
type phase int

const (
	plain phase = iota
	ecdsa
	fresh
	uploads
	archived
)

func phaseOf(c benchCase) phase {
	switch {
	case c.archive:
		return archived
	case c.upload:
		return uploads
	case c.cert == anchor.ECDSAP256:
		return ecdsa
	case c.fresh:
		return fresh
	}
	return plain
}

// certNames are the names of the servers' certificates: the domain and
// its services.
var certNames = []string{anchor.Domain, mucDomain, anchor.UploadService(anchor.Domain)}

// skipped reports whether c does not run on s: a mechanism s does not
// offer, or a case for other servers.
func skipped(c benchCase, s serverInfo) bool {
	return mechFor(c, s) == "" || c.servers != nil && !slices.Contains(c.servers, s.name)
}

// pick keeps the cases named in only (comma-separated; "" keeps all),
// in the suite's order: a case by its name or, for a name no case has,
// every case of the scenario of that name (upload: upload-1m and
// upload-50m), or "relay": the relay cases. A relay case brings the case
// it is the floor of (relay-login: login-sha-1).
func pick(cases []benchCase, only string) ([]benchCase, error) {
	if strings.TrimSpace(only) == "" {
		return cases, nil
	}
	want := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		n := 0
		for _, c := range cases {
			if c.name == name {
				want[c.name] = true
				n++
			}
		}
		for _, c := range cases {
			if n == 0 && (c.scenario == name || name == "relay" && c.relay) {
				want[c.name] = true
			}
		}
		if !slices.ContainsFunc(cases, func(c benchCase) bool { return c.name == name || c.scenario == name || name == "relay" && c.relay }) {
			var names []string
			for _, c := range cases {
				names = append(names, c.name)
			}
			return nil, fmt.Errorf("-cases: no case or scenario %q (the suite has %s)", name, strings.Join(names, ", "))
		}
	}
	// A relay case brings the servers' case it is the floor of.
	for _, c := range cases {
		if want[c.name] && c.ref != "" {
			want[c.ref] = true
			if c.altRef != "" {
				want[c.altRef] = true
			}
		}
	}
	var out []benchCase
	for _, c := range cases {
		if want[c.name] {
			out = append(out, c)
		}
	}
	return out, nil
}

// caseArgs are c's arguments for the server at addr: its own, after the
// WebSocket URL if it has one.
func caseArgs(c benchCase, addr string) []string {
	if !c.websocket {
		return c.args
	}
	return append([]string{"--url", "wss://" + net.JoinHostPort(addr, anchor.HTTPSPort) + anchor.WebSocketPath}, c.args...)
}

// suite is the standard suite, or tiny sizes for -quick. The sizes are
// those of the first comparison, made by hand. Idle sessions are ten per
// account, as Starling allows by default: with a hundred, each login's
// presence goes to its account's hundred other resources and back
// (RFC 6121 §4.2.2), and the case measures that fan-out more than idle
// sessions (ejabberd then needs 25 ms of CPU and 400 KB per session).
// Presence has accounts of its own (puser…), so that the rosters it
// makes leave the other cases' logins as they are. The websocket cases are
// the first login and messages cases again, over XMPP over WebSocket
// (wss, port 5281) instead of STARTTLS, for the difference the transport
// makes.
func suite(quick bool) []benchCase {
	type sizes struct {
		logins, pairs, count, manyPairs, manyCount, idle, idleAccounts, accounts, concurrency int
		users, contacts, updates, items                                                       int
		rooms, occupants, gcCount                                                             int
		hold                                                                                  string
		churnPairs, churnCount, archiveCount                                                  int
		archives                                                                              [4]int
		drop                                                                                  string
		uploaders, smallFiles, bigFiles                                                       int
	}
	z := sizes{logins: 2000, pairs: 10, count: 10000, manyPairs: 50, manyCount: 2000, idle: 10000, idleAccounts: 1000, accounts: 20, concurrency: 20,
		users: 200, contacts: 20, updates: 50, items: 50, hold: "3s", rooms: 10, occupants: 20, gcCount: 50,
		churnPairs: 20, churnCount: 2000, drop: "1s", archiveCount: 1000, archives: [4]int{1000, 10000, 100000, 1000000},
		uploaders: 4, smallFiles: 50, bigFiles: 4}
	if quick {
		z = sizes{logins: 100, pairs: 2, count: 500, manyPairs: 5, manyCount: 200, idle: 100, idleAccounts: 10, accounts: 5, concurrency: 5,
			users: 20, contacts: 4, updates: 20, items: 10, hold: "1s", rooms: 2, occupants: 4, gcCount: 20,
			churnPairs: 2, churnCount: 200, drop: "300ms", archiveCount: 500, archives: [4]int{1000, 2000, 3000, 10000},
			uploaders: 2, smallFiles: 5, bigFiles: 1}
	}
	f := func(format string, a ...any) []string { return strings.Fields(fmt.Sprintf(format, a...)) }
	var cases []benchCase
	logins := func(ws bool) {
		for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
			name, over := "login-", ""
			if ws {
				name, over = "websocket-login-", " over WebSocket"
			}
			cases = append(cases, benchCase{
				name: name + strings.ToLower(strings.TrimPrefix(mech, "SCRAM-")), scenario: "login", mech: mech, websocket: ws,
				title: fmt.Sprintf("%d logins%s, %d at a time, %s", z.logins, over, z.concurrency, mech),
				args:  f("--scenario login --n %d --concurrency %d --accounts %d", z.logins, z.concurrency, z.accounts),
			})
		}
	}
	logins(false)
	logins(true)
	// The same logins with an ECDSA P-256 certificate (each server
	// started afresh with it), and resuming TLS sessions with the RSA
	// one, each server on its own SCRAM.
	cases = append(cases,
		benchCase{
			name: "login-ecdsa", scenario: "login", cert: anchor.ECDSAP256,
			title: fmt.Sprintf("%d logins, %d at a time, ECDSA P-256 certificate", z.logins, z.concurrency),
			args:  f("--scenario login --n %d --concurrency %d --accounts %d", z.logins, z.concurrency, z.accounts),
		},
		benchCase{
			name: "login-resume", scenario: "login", resume: true,
			title: fmt.Sprintf("%d logins, %d at a time, TLS resumption", z.logins, z.concurrency),
			args:  f("--scenario login --n %d --concurrency %d --accounts %d --resume", z.logins, z.concurrency, z.accounts),
		},
	)
	return append(cases,
		benchCase{
			name: "messages", scenario: "messages",
			title: fmt.Sprintf("%d pairs, window 16", z.pairs),
			args:  f("--scenario messages --n %d --count %d --window 16", z.pairs, z.count),
		},
		benchCase{
			name: "websocket", scenario: "websocket", websocket: true,
			title: fmt.Sprintf("%d pairs, window 16, over WebSocket", z.pairs),
			args:  f("--scenario websocket --n %d --count %d --window 16", z.pairs, z.count),
		},
		benchCase{
			name: "messages-pairs", scenario: "messages",
			title: fmt.Sprintf("%d pairs, window 16", z.manyPairs),
			args:  f("--scenario messages --n %d --count %d --window 16 --concurrency %d", z.manyPairs, z.manyCount, z.concurrency),
		},
		benchCase{
			name: "messages-batch", scenario: "messages",
			title: fmt.Sprintf("%d pairs, window 16, 8 stanzas per write", z.pairs),
			args:  f("--scenario messages --n %d --count %d --window 16 --batch 8", z.pairs, z.count),
		},
		benchCase{
			name: "presence", scenario: "presence",
			title: fmt.Sprintf("%d users, %d contacts each, %d updates each", z.users, z.contacts, z.updates),
			args: f("--scenario presence --users puser --n %d --contacts %d --count %d --window 16 --concurrency %d",
				z.users, z.contacts, z.updates, z.concurrency),
		},
		// PEP on the presence case's ring, on accounts of its own
		// (pepuser…): every session advertises caps with the test node's
		// +notify, and each user publishes to it.
		benchCase{
			name: "pep", scenario: "pep",
			title: fmt.Sprintf("%d users, %d contacts each, %d items each", z.users, z.contacts, z.items),
			args: f("--scenario pep --users pepuser --n %d --contacts %d --count %d --window 16 --concurrency %d",
				z.users, z.contacts, z.items, z.concurrency),
		},
		// Group chat (XEP-0045) on accounts of its own (guser…): instant
		// rooms on conference.localhost, each occupant sending to its room;
		// a delivery is one message reaching one other occupant. Up to
		// 60,800 deliveries are in flight: Prosody, on one core, has kept
		// senders waiting for more than the default --timeout of 30 s on a
		// busy machine, which is slowness, not a stall.
		benchCase{
			name: "groupchat", scenario: "groupchat",
			title: fmt.Sprintf("%d rooms × %d occupants, %d messages each", z.rooms, z.occupants, z.gcCount),
			args: f("--scenario groupchat --users guser --rooms %d --n %d --count %d --window 16 --concurrency %d --timeout 60s",
				z.rooms, z.occupants, z.gcCount, z.concurrency),
		},
		// 10,000 sessions: a login may wait for longer than the default
		// --timeout of 30 s behind the others when a server slows down as
		// they add up (Prosody over WebSocket, on a busy machine).
		benchCase{
			name: "idle", scenario: "idle", timeout: 10 * time.Minute,
			title: fmt.Sprintf("%s sessions on %s accounts", thousands(float64(z.idle)), thousands(float64(z.idleAccounts))),
			args:  f("--scenario idle --n %d --accounts %d --concurrency %d --duration %s --timeout 60s", z.idle, z.idleAccounts, z.concurrency, z.hold),
		},
		benchCase{
			name: "websocket-idle", scenario: "idle", websocket: true, fresh: true, timeout: 10 * time.Minute,
			title: fmt.Sprintf("%s sessions on %s accounts, over WebSocket", thousands(float64(z.idle)), thousands(float64(z.idleAccounts))),
			args:  f("--scenario idle --n %d --accounts %d --concurrency %d --duration %s --timeout 60s", z.idle, z.idleAccounts, z.concurrency, z.hold),
		},
		// HTTP file upload (XEP-0363), on each server started with it
		// (upload.go): a picture's size and a video's.
		uploadCase("upload-1m", "1MiB", "1 MiB", z.uploaders, z.smallFiles),
		uploadCase("upload-50m", "50MiB", "50 MiB", z.uploaders, z.bigFiles),
		benchCase{
			name: "churn", scenario: "churn",
			title: fmt.Sprintf("%d receivers resuming every %s ±50 %%, 100 messages/s each", z.churnPairs, z.drop),
			args:  f("--scenario churn --n %d --count %d --rate 100 --drop-every %s --concurrency %d", z.churnPairs, z.churnCount, z.drop, z.concurrency),
		},
		// Fewer messages than the messages case: ejabberd archives about
		// 200 a second.
		benchCase{
			name: "messages-archive", scenario: "messages", archive: true, timeout: 10 * time.Minute,
			title: fmt.Sprintf("%d pairs, %d messages each, window 16, archive on", z.pairs, z.archiveCount),
			args:  f("--scenario messages --n %d --count %d --window 16", z.pairs, z.archiveCount),
		},
		// Archives of 1,000 to 1,000,000 messages in one account each, as
		// far as each server fills them in reasonable time: ejabberd
		// archives a few hundred messages a second into one account, ever
		// slower as it grows (about 50 a second on the way to 10,000, 4.5
		// minutes); Prosody about 2,000 up to 10,000, 200 on the way to
		// 100,000 (8 minutes with the queries).
		mamCase("mam-1k", "kuser", z.archives[0], nil, ""),
		mamCase("mam-10k", "tuser", z.archives[1], nil, ""),
		mamCase("mam-100k", "huser", z.archives[2], []string{"starling", "prosody"},
			"it archives into one account ever slower as the archive grows (about 50 messages/s and 26 ms of CPU each on the way to 10,000), so 100,000 would take hours"),
		mamCase("mam-1m", "muser", z.archives[3], []string{"starling"},
			"at the rates they archive into one account (Prosody about 200 messages/s on the way to 100,000, ejabberd about 50 on the way to 10,000, both slowing as it grows), a million would take Prosody well over an hour and ejabberd days"),
		// The floor (relay.go): the first login case's exchange, byte for
		// byte and turn for turn, and the first messages case, through a
		// bare TLS relay.
		benchCase{
			name: "relay-login", scenario: "login", relay: true, ref: "login-sha-1", altRef: "login-sha-256",
			title: fmt.Sprintf("%d logins, %d at a time", z.logins, z.concurrency),
			args:  f("--scenario login --n %d --concurrency %d", z.logins, z.concurrency),
		},
		benchCase{
			name: "relay-messages", scenario: "messages", relay: true, ref: "messages",
			title: fmt.Sprintf("%d pairs, %d messages each, window 16", z.pairs, z.count),
			args:  f("--scenario messages --n %d --count %d --window 16", z.pairs, z.count),
		},
	)
}

// mamCase is a MAM query case on an archive of fill messages, its owner
// PREFIX1 and ten senders filling it.
func mamCase(name, prefix string, fill int, servers []string, why string) benchCase {
	return benchCase{
		name: name, scenario: "mam", archive: true, servers: servers, why: why, timeout: 10 * time.Minute,
		title: fmt.Sprintf("archive of %s messages, pages of 50", thousands(float64(fill))),
		args: strings.Fields(fmt.Sprintf("--scenario mam --users %s --n 10 --fill %d --page 50 --queries 100 --window 16 --batch 8",
			prefix, fill)),
	}
}

// accounts are the accounts PREFIX1…PREFIXk.
type accounts struct {
	prefix string
	k      int
}

// accountsNeeded are the accounts the cases use, per --users prefix
// ("user" if not given), in order of appearance: up to --accounts, or one
// per session for messages, websocket and churn (2 × --n), presence,
// pep and upload (--n), mam (--n + 1) and groupchat (--rooms × --n, --rooms being
// 10 if not given).
func accountsNeeded(cases []benchCase) []accounts {
	var out []accounts
	for _, c := range cases {
		prefix, k := "user", 0
		if c.scenario == "groupchat" {
			rooms, n := 10, 0
			for i := 0; i+1 < len(c.args); i++ {
				v, _ := strconv.Atoi(c.args[i+1])
				switch c.args[i] {
				case "--rooms":
					rooms = v
				case "--n":
					n = v
				}
			}
			k = rooms * n
		}
		for i := 0; i+1 < len(c.args); i++ {
			v, _ := strconv.Atoi(c.args[i+1])
			switch {
			case c.args[i] == "--users":
				prefix = c.args[i+1]
			case c.args[i] == "--accounts":
				k = max(k, v)
			case c.args[i] == "--n" && (c.scenario == "messages" || c.scenario == "websocket" || c.scenario == "churn"):
				k = max(k, 2*v)
			case c.args[i] == "--n" && c.scenario == "mam":
				k = max(k, v+1)
			case c.args[i] == "--n" && (c.scenario == "presence" || c.scenario == "pep" || c.scenario == "upload"):
				k = max(k, v)
			}
		}
		if i := slices.IndexFunc(out, func(a accounts) bool { return a.prefix == prefix }); i >= 0 {
			out[i].k = max(out[i].k, k)
		} else {
			out = append(out, accounts{prefix, k})
		}
	}
	return out
}

// mechFor is the SASL mechanism c uses on s, or "" if s does not offer it.
func mechFor(c benchCase, s serverInfo) string {
	if c.mech == "" {
		return s.mechs[0]
	}
	if slices.Contains(s.mechs, c.mech) {
		return c.mech
	}
	return ""
}

// benchArgs are the arguments every run has before the case's own.
func benchArgs(addr, pid, label string) []string {
	return []string{"--addr", net.JoinHostPort(addr, anchor.StartTLSPort), "--domain", anchor.Domain, "--insecure",
		"--password", password, "--pid", pid, "--label", label, "--json"}
}

// --- running a case ---

// result is the part of starling-bench's JSON line used here.
type result struct {
	Ops             int64   `json:"ops"`
	Errors          int64   `json:"errors"`
	FirstError      string  `json:"first_error"`
	RatePerS        float64 `json:"rate_per_s"`
	LatP50Ms        float64 `json:"lat_p50_ms"`
	LatP99Ms        float64 `json:"lat_p99_ms"`
	ServerCPUUs     float64 `json:"server_cpu_us_per_op"`
	PeerCPUUs       float64 `json:"peer_cpu_us_per_op"` // federation: the receivers' server
	WarmupS         float64 `json:"warmup_s"`
	RosterErrors    int64   `json:"roster_errors"`
	RSSBytesPerSess int64   `json:"server_rss_bytes_per_session"`
	Contacts        int     `json:"contacts"`
	Sent            int64   `json:"sent"`
	Lost            int64   `json:"lost"`
	Duplicates      int64   `json:"duplicates"`
	Misrouted       int64   `json:"misrouted"`
	Bounced         int64   `json:"bounced"`
	OutOfOrder      int64   `json:"out_of_order"`
	ExactlyOnce     bool    `json:"exactly_once"`
	// churn
	Resumptions    int64   `json:"resumptions"`
	ResumeFailures int64   `json:"resume_failures"`
	ResumeP50Ms    float64 `json:"resume_p50_ms"`
	ResumeP99Ms    float64 `json:"resume_p99_ms"`
	AcrossDrops    int64   `json:"across_drops"`
	// mam
	Fill         int64   `json:"fill"`
	FillRatePerS float64 `json:"fill_rate_per_s"`
	FillCPUUs    float64 `json:"fill_server_cpu_us_per_msg"`
	Queries      int64   `json:"queries"`
	Results      int64   `json:"results"`
	// groupchat: the reflections of the messages to their senders
	ServerCPUUsPerUpdate float64 `json:"server_cpu_us_per_update"`
	Reflections          int64   `json:"reflections"`
	ReflectionsLost      int64   `json:"reflections_lost"`
	ReflectionDuplicates int64   `json:"reflection_duplicates"`
	ReflectedOnce        bool    `json:"reflected_exactly_once"`
	ReflectP50Ms         float64 `json:"reflect_p50_ms"`
	ReflectP99Ms         float64 `json:"reflect_p99_ms"`
	SetupS               float64 `json:"setup_s"`
	// upload: the uploads and the downloads apart
	Uploads             int64   `json:"uploads"`
	UploadsPerS         float64 `json:"uploads_per_s"`
	UploadMiBPerS       float64 `json:"upload_mib_per_s"`
	UploadP50Ms         float64 `json:"upload_p50_ms"`
	UploadP99Ms         float64 `json:"upload_p99_ms"`
	SlotP50Ms           float64 `json:"slot_p50_ms"`
	SlotP99Ms           float64 `json:"slot_p99_ms"`
	UploadCPUUsPerMiB   float64 `json:"upload_server_cpu_us_per_mib"`
	Downloads           int64   `json:"downloads"`
	DownloadsPerS       float64 `json:"downloads_per_s"`
	DownloadMiBPerS     float64 `json:"download_mib_per_s"`
	DownloadP50Ms       float64 `json:"download_p50_ms"`
	DownloadP99Ms       float64 `json:"download_p99_ms"`
	DownloadCPUUsPerMiB float64 `json:"download_server_cpu_us_per_mib"`
	Verified            int64   `json:"verified"`
	// login: the byte counts of the first login (relay.go replays them),
	// and with --resume the TLS sessions resumed
	Exchange   string  `json:"exchange"`
	Resumed    int64   `json:"resumed"`
	Full       int64   `json:"full_handshakes"`
	ResumedPct float64 `json:"resumed_pct"`
}

// cell is one case on one server: a result, a failure, or not applicable.
type cell struct {
	res     *result // the JSON line, if starling-bench printed one
	err     string  // why the run failed; "" if it succeeded
	skipped bool    // the server does not offer the case's mechanism

	// While starling-bench ran: the machine's busy CPU time, and the part
	// of it neither the server nor starling-bench used (other work on the
	// machine, which skews the figures). Zero if it could not be read.
	busy, other time.Duration
}

func (c *cell) ok() bool { return c != nil && !c.skipped && c.err == "" && c.res != nil }

// runCase runs one starling-bench command against srv, keeping its output
// in logDir.
func runCase(ctx context.Context, bench, logDir string, s serverInfo, srv *server, c benchCase, quick bool) *cell {
	mech := mechFor(c, s)
	if skipped(c, s) {
		return &cell{skipped: true}
	}
	pid, err := srv.pid()
	if err != nil {
		return &cell{err: err.Error()}
	}
	args := append(benchArgs(s.addr, strconv.Itoa(pid), s.name), append([]string{"--mech", mech}, caseArgs(c, s.addr)...)...)
	log.Printf("%s: %s", s.title, c.name)
	return runBench(ctx, bench, filepath.Join(logDir, s.name+"-"+c.name), s.title+": "+c.name, args, []int{pid}, quick, c.timeout)
}

// runBench runs starling-bench with args, keeping its output in base.json
// and base.stderr, while the servers pids run; what names it in the log.
func runBench(ctx context.Context, bench, base, what string, args []string, pids []int, quick bool, timeout time.Duration) *cell {
	timeout = cmp.Or(timeout, 5*time.Minute)
	if quick {
		timeout = time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(cctx, bench, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	srvCPU := func() time.Duration {
		var sum time.Duration
		for _, pid := range pids {
			d := serverCPU(pid)
			if d < 0 {
				return -1
			}
			sum += d
		}
		return sum
	}
	busy0, srv0 := machineBusy(), srvCPU()
	runErr := cmd.Run()
	busy1, srv1 := machineBusy(), srvCPU()
	os.WriteFile(base+".json", stdout.Bytes(), 0o644)
	os.WriteFile(base+".stderr", append([]byte("starling-bench "+strings.Join(args, " ")+"\n"), stderr.Bytes()...), 0o644)
	out := &cell{}
	if busy0 >= 0 && busy1 >= 0 && srv0 >= 0 && srv1 >= 0 && cmd.ProcessState != nil {
		out.busy = busy1 - busy0
		out.other = max(0, out.busy-(srv1-srv0)-cmd.ProcessState.UserTime()-cmd.ProcessState.SystemTime())
	}
	for line := range strings.Lines(stdout.String()) {
		if strings.HasPrefix(line, "{") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err == nil {
				out.res = &r
			}
		}
	}
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		out.err = fmt.Sprintf("did not finish within %v", timeout)
	case runErr != nil && out.res != nil && out.res.Errors > 0:
		out.err = fmt.Sprintf("%d errors, first: %s", out.res.Errors, out.res.FirstError)
	case runErr != nil:
		out.err = fmt.Sprintf("%v: %s", runErr, lastLine(stderr.String()))
	case out.res == nil:
		out.err = "no JSON result: " + lastLine(stderr.String())
	}
	if out.err != "" {
		log.Printf("%s failed: %s", what, out.err)
	} else {
		log.Printf("%s: %.0f/s (%.1f s)", what, out.res.RatePerS, time.Since(t0).Seconds())
	}
	return out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// --- the servers ---

// server is one running server under test.
type server struct {
	version string
	pid     func() (int, error)
	stop    func()
}

// startServer starts s in dir with the accounts; its logs end up in logDir
// when it is stopped.
//
// With muc, the server has its multi-user chat service on mucDomain
// (groupchat.go): Starling has it anyway, Prosody gets a MUC component,
// ejabberd mod_muc. The phase turns the archive or HTTP file upload on
// (upload.go).
func startServer(ctx context.Context, s serverInfo, dir, starlingBin, logDir string, accounts map[string]string, ph phase, muc bool, chain *anchor.Chain) (*server, error) {
	if s.name == "starling" {
		return startStarlingWith(ctx, starlingSetup{addr: s.addr, domain: anchor.Domain, https: true, archive: ph == archived, upload: ph == uploads, chain: chain,
			log: map[phase]string{plain: "starling.log", ecdsa: "starling-ecdsa.log", fresh: "starling-fresh.log", uploads: "starling-upload.log", archived: "starling-archive.log"}[ph]}, dir, starlingBin, logDir, accounts)
	}
	o := anchor.Options{Name: s.name, Addr: s.addr, Dir: dir, Accounts: accounts, Archive: ph == archived, Upload: ph == uploads, Chain: chain}
	if muc && s.name == "prosody" {
		o.Prosody = prosodyMUC
	}
	a, err := anchor.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	srv := &server{version: a.Version + " (Debian)", pid: a.PID, stop: func() {
		a.Stop()
		// The anchor's directory is removed at the end: keep its logs.
		for _, f := range []string{"prosody.out", "prosody.log", "ejabberd.out", "logs/ejabberd.log", "logs/error.log"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				os.WriteFile(filepath.Join(logDir, filepath.Base(dir)+"-"+filepath.Base(f)), b, 0o644)
			}
		}
	}}
	if muc && s.name == "ejabberd" {
		pid, err := a.PID()
		if err == nil {
			err = ejabberdMUC(ctx, dir, pid)
		}
		if err != nil {
			srv.stop()
			return nil, err
		}
	}
	return srv, nil
}

// starlingSetup is where and how startStarlingWith runs Starling.
type starlingSetup struct {
	addr, domain string
	https        bool          // the HTTPS listener, for WebSocket
	archive      bool          // the message archive ([modules.mam]) on
	upload       bool          // HTTP file upload ([modules.upload]) on, with https
	s2s          *starlingS2S  // federation; nil: [s2s] enabled = false
	chain        *anchor.Chain // the certificate without s2s; nil: Starling's own, generated
	log          string        // the log file's name in logDir; "" is starling.log
}

// starlingS2S is federation for startStarlingWith: a certificate for the
// domain, the CA trusted for peers' certificates, the DNS server asked
// for their addresses, and the s2s listener on addr at anchor.S2SPort.
type starlingS2S struct {
	cert, key, caFile, resolver string
}

// startStarlingWith writes a configuration (SQLite and a generated
// certificate in dir, c2s listeners at st.addr and, with st.https, the
// HTTPS one, for WebSocket, on the anchors' port; no practical limit of
// sessions per account, as the anchors have none; no flood limits in
// group chat rooms ([modules.muc] allows an occupant 10 messages a
// second by default) and no room archive, as the anchors' MUC services
// have neither; federation as st.s2s says; the message archive on only
// with st.archive, as the anchors have it; HTTP file upload only with
// st.upload, as starlingUpload says), creates the accounts with
// `starling user add` and starts `starling serve` in its own process
// group. It returns once every listener accepts connections.
func startStarlingWith(ctx context.Context, st starlingSetup, dir, bin, logDir string, accounts map[string]string) (*server, error) {
	startTLS := net.JoinHostPort(st.addr, anchor.StartTLSPort)
	directTLS := net.JoinHostPort(st.addr, anchor.DirectTLSPort)
	https := net.JoinHostPort(st.addr, anchor.HTTPSPort)
	listeners := []string{startTLS, directTLS}
	if st.https {
		listeners = append(listeners, https)
	}
	if st.s2s != nil {
		listeners = append(listeners, net.JoinHostPort(st.addr, anchor.S2SPort))
	}
	for _, a := range listeners {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("something already listens on %s, where Starling is to run", a)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "starling.toml")
	s2s := "[s2s]\nenabled = false\n"
	if st.chain != nil {
		s2s = fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", st.chain.CertFile, st.chain.KeyFile) + s2s
	}
	if f := st.s2s; f != nil {
		s2s = fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n[s2s]\nenabled = true\nlisten = [%q]\nca_file = %q\nresolver = %q\n",
			f.cert, f.key, net.JoinHostPort(st.addr, anchor.S2SPort), f.caFile, f.resolver)
	}
	web := "[http]\ntls_listen = [" + strconv.Quote(https) + "]\n"
	if !st.https {
		web = ""
	}
	conf := fmt.Sprintf(`# written by bench/compare
[server]
hosts = [%q]
data_dir = %q
%s
[c2s]
listen = [%q]
direct_tls_listen = [%q]
%s[limits]
max_sessions_per_account = 10000
[modules.mam]
enabled = %t
[modules.muc]
occupant_rate = 1000000
room_rate = 1000000
archive = false
%s`, st.domain, filepath.Join(dir, "data"), s2s, startTLS, directTLS, web, st.archive, starlingUpload(st.upload))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	users := make([]string, 0, len(accounts))
	for u := range accounts {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		cmd := exec.CommandContext(ctx, bin, "user", "add", "--config", cfg, u+"@"+st.domain)
		cmd.Stdin = strings.NewReader(accounts[u] + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("starling user add %s: %v\n%s", u, err, out)
		}
	}
	logFile := filepath.Join(logDir, cmp.Or(st.log, "starling.log"))
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // an interrupt at the terminal is ours to handle
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(exited)
	}()
	stop := func() {
		select {
		case <-exited:
			log.Printf("Starling had already exited: %v", cmd.ProcessState)
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			log.Printf("Starling stopped")
		case <-time.After(starlingStop):
			log.Printf("Starling did not stop within %v: killing it", starlingStop)
			cmd.Process.Kill()
			<-exited
		}
	}
	srv := &server{version: "built with Go " + goVersion() + ", on SQLite", stop: stop, pid: func() (int, error) {
		select {
		case <-exited:
			return 0, fmt.Errorf("starling has exited (%v); its log: %s", cmd.ProcessState, logFile)
		default:
			return cmd.Process.Pid, nil
		}
	}}
	deadline := time.Now().Add(startTimeout)
	for _, a := range listeners {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				stop()
				return nil, fmt.Errorf("not listening on %s within %v; its log: %s", a, startTimeout, logFile)
			}
			select {
			case <-exited:
				return nil, fmt.Errorf("exited before listening on %s (%v); its log %s:\n%s", a, cmd.ProcessState, logFile, tail(logFile))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return srv, nil
}

// tail returns the last lines of a log file.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 20 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// --- the machine ---

// clockTicks is the kernel's USER_HZ, the unit of /proc/stat and
// /proc/PID/stat, read from the auxiliary vector (AT_CLKTCK) since sysconf
// needs cgo; 100 on every common Linux.
var clockTicks = func() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	for i := 0; err == nil && i+16 <= len(b); i += 16 {
		typ, val := binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+8:])
		if typ == 17 && val > 0 { // AT_CLKTCK
			return int64(val)
		}
		if typ == 0 {
			break
		}
	}
	return 100
}()

func ticks(fields []string) time.Duration {
	var n int64
	for _, f := range fields {
		v, _ := strconv.ParseInt(f, 10, 64)
		n += v
	}
	return time.Duration(n) * time.Second / time.Duration(clockTicks)
}

// machineBusy is the CPU time all CPUs have spent on anything but idling
// since boot (/proc/stat: user, nice, system, irq, softirq, steal), or -1.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	return ticks([]string{f[1], f[2], f[3], f[6], f[7], f[8]})
}

// serverCPU is utime+stime of process pid (/proc/PID/stat), or -1.
func serverCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// After the command name in parentheses (which may hold anything),
	// utime and stime are the 12th and 13th fields.
	i := strings.LastIndexByte(string(b), ')')
	if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) >= 13 {
		return ticks(f[11:13])
	}
	return -1
}

// machine describes this computer: CPUs, memory, kernel.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				mem = fmt.Sprintf(", %.1f GiB of memory", kb/(1<<20))
			}
		}
	}
	nproc := strings.TrimSpace(output("nproc"))
	return fmt.Sprintf("%s CPUs%s%s, %s", nproc, cpu, mem, strings.TrimSpace(output("uname", "-srm")))
}

// commit is the checked-out commit, with "+dirty" if the working tree has
// changes.
func commit() string {
	wd, _ := os.Getwd()
	git := func(args ...string) string {
		// Run as root in someone else's checkout, git wants it declared safe.
		return strings.TrimSpace(output("git", append([]string{"-c", "safe.directory=" + wd}, args...)...))
	}
	c := git("rev-parse", "--short", "HEAD")
	if c == "" {
		return "unknown"
	}
	if git("status", "--porcelain") != "" {
		c += "+dirty"
	}
	return c
}

func goVersion() string {
	return strings.TrimPrefix(strings.TrimSpace(output("go", "env", "GOVERSION")), "go")
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}
