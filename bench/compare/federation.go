package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/dnstest"
	"github.com/starling-xmpp/starling/internal/testca"
)

// The federation runs: starling-bench's federation scenario between two
// servers started together, each on a domain of its own, senders logged
// in to the first and receivers to the second, so that every message
// crosses a server-to-server stream. They run after the servers measured
// alone, one pair at a time.
//
// Every server gets a certificate for its domain from one throwaway CA
// (internal/testca), with the extended key usages serverAuth and
// clientAuth (ejabberd 23.01 takes SASL EXTERNAL only from a peer whose
// certificate has clientAuth), and trusts that CA for its peers: the
// streams authenticate with SASL EXTERNAL (XEP-0178), both ways, over
// STARTTLS on port 5269 (anchor.External: Prosody and ejabberd have no
// dialback). Prosody and ejabberd find the other domain's address in a
// private /etc/hosts (internal/anchor); Starling asks a DNS server of
// this process (internal/dnstest), which has the same addresses and no
// SRV records, so every server connects to the other's address on 5269.

// defaultFederation is the pairs -federation runs unless told otherwise:
// users on Starling messaging users on Prosody and the reverse (Starling's
// cost of sending and of receiving), and Prosody to ejabberd for
// reference.
const defaultFederation = "starling-prosody,prosody-starling,prosody-ejabberd"

// fedPair is one federation run: users on from message users on to.
type fedPair struct{ from, to serverInfo }

func (p fedPair) name() string  { return p.from.name + "-" + p.to.name }
func (p fedPair) title() string { return p.from.title + " → " + p.to.title }

// parseFederation reads -federation: comma-separated FROM-TO pairs of
// server names ("" for none).
func parseFederation(list string) ([]fedPair, error) {
	var pairs []fedPair
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		from, to, ok := strings.Cut(f, "-")
		a, b := serverNamed(from), serverNamed(to)
		if !ok || a == nil || b == nil {
			return nil, fmt.Errorf("-federation: %q: want FROM-TO, each starling, prosody or ejabberd", f)
		}
		pairs = append(pairs, fedPair{*a, *b})
	}
	return pairs, nil
}

func serverNamed(name string) *serverInfo {
	i := slices.IndexFunc(servers, func(s serverInfo) bool { return s.name == name })
	if i < 0 {
		return nil
	}
	return &servers[i]
}

// fedSide is one server of a federation run: where it listens and the
// domain it serves.
type fedSide struct {
	serverInfo
	addr, domain string
}

// sides are where the pair's servers run: each at its server's address,
// serving NAME.test; a server paired with itself runs a second time at
// its second address, serving NAME-2.test.
func (p fedPair) sides() (a, b fedSide) {
	a = fedSide{p.from, p.from.addr, p.from.name + ".test"}
	b = fedSide{p.to, p.to.addr, p.to.name + ".test"}
	if p.from.name == p.to.name {
		b.addr, b.domain = p.to.addr2, p.to.name+"-2.test"
	}
	return a, b
}

// fedCase is the federation case: the size of the first messages case.
func fedCase(quick bool) benchCase {
	pairs, count := 10, 10000
	if quick {
		pairs, count = 2, 500
	}
	return benchCase{
		name: "federation", scenario: "federation",
		title: fmt.Sprintf("%d pairs, window 16", pairs),
		args:  strings.Fields(fmt.Sprintf("--scenario federation --n %d --count %d --window 16", pairs, count)),
	}
}

// fedArgs are starling-bench's arguments for the pair, the servers' PIDs
// as given.
func fedArgs(p fedPair, c benchCase, pidA, pidB string) []string {
	a, b := p.sides()
	args := []string{"--addr", net.JoinHostPort(a.addr, anchor.StartTLSPort), "--domain", a.domain,
		"--peer-addr", net.JoinHostPort(b.addr, anchor.StartTLSPort), "--peer-domain", b.domain, "--insecure",
		"--password", password, "--pid", pidA, "--peer-pid", pidB, "--label", p.name(), "--json",
		"--mech", a.mechs[0], "--peer-mech", b.mechs[0]}
	return append(args, c.args...)
}

// fedRun is one pair's run.
type fedRun struct {
	pair     fedPair
	versions [2]string // the servers', for those that started
	cell     *cell
}

// fedWorld is what the runs share: the CA, its certificate's file, the
// DNS server Starling asks.
type fedWorld struct {
	ca     *testca.CA
	caFile string
	dns    *dnstest.Server
}

// runFederation runs c for each pair in turn, starting both servers fresh
// with the accounts and stopping them afterwards.
func runFederation(ctx context.Context, pairs []fedPair, c benchCase, dir, bin, logDir string, accounts map[string]string, quick bool) ([]*fedRun, error) {
	ca, err := testca.New("bench/compare federation CA")
	if err != nil {
		return nil, err
	}
	w := &fedWorld{ca: ca, caFile: filepath.Join(dir, "federation-ca.crt")}
	if err := ca.WriteCA(w.caFile); err != nil {
		return nil, err
	}
	if w.dns, err = dnstest.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer w.dns.Close()
	var runs []*fedRun
	for _, p := range pairs {
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
		runs = append(runs, w.run(ctx, p, c, filepath.Join(dir, "federation-"+p.name()), bin, logDir, accounts, quick))
	}
	return runs, ctx.Err()
}

// run runs c for one pair.
func (w *fedWorld) run(ctx context.Context, p fedPair, c benchCase, dir, bin, logDir string, accounts map[string]string, quick bool) *fedRun {
	run := &fedRun{pair: p}
	a, b := p.sides()
	hosts := map[string]string{a.domain: a.addr, b.domain: b.addr}
	for domain, addr := range hosts {
		w.dns.SetA(domain, netip.MustParseAddr(addr))
	}
	log.Printf("federation %s: starting %s on %s (%s) and %s on %s (%s)", p.title(), a.title, a.domain, a.addr, b.title, b.domain, b.addr)
	var pids [2]int
	for i, side := range []fedSide{a, b} {
		srv, err := w.start(ctx, side, filepath.Join(dir, side.domain), bin, filepath.Join(logDir, "federation-"+p.name()+"-"+side.domain), hosts, accounts)
		if err == nil {
			defer srv.stop()
			pids[i], err = srv.pid()
		}
		if err != nil {
			run.cell = &cell{err: fmt.Sprintf("%s did not start: %v", side.title, err)}
			log.Printf("federation %s: %s", p.title(), run.cell.err)
			return run
		}
		run.versions[i] = srv.version
	}
	args := fedArgs(p, c, strconv.Itoa(pids[0]), strconv.Itoa(pids[1]))
	log.Printf("federation %s: %s", p.title(), c.name)
	run.cell = runBench(ctx, filepath.Join(bin, "starling-bench"), filepath.Join(logDir, "federation-"+p.name()), "federation "+p.title(), args, pids[:], quick, 0)
	return run
}

// start starts one side with the accounts, as a federation peer on its
// domain; its logs end up in logDir (as logBase-*) when it is stopped.
func (w *fedWorld) start(ctx context.Context, side fedSide, dir, bin, logBase string, hosts, accounts map[string]string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(filepath.Dir(dir), 0o755) // ejabberd runs as its own user
	if side.name == "starling" {
		cert, key, err := w.ca.WriteFilesUsages(dir, side.domain, testca.ServerAndClientAuth, side.domain)
		if err != nil {
			return nil, err
		}
		return startStarlingWith(ctx, starlingSetup{
			addr: side.addr, domain: side.domain, log: filepath.Base(logBase) + ".log",
			s2s: &starlingS2S{cert: cert, key: key, caFile: w.caFile, resolver: w.dns.Addr()},
		}, dir, filepath.Join(bin, "starling"), filepath.Dir(logBase), accounts)
	}
	a, err := anchor.Start(ctx, anchor.Options{
		Name: side.name, Addr: side.addr, Dir: dir, Domain: side.domain, Accounts: accounts,
		CA: w.ca, ClientAuth: true,
		S2S: &anchor.S2S{Auth: anchor.External, Hosts: hosts},
	})
	if err != nil {
		return nil, err
	}
	return &server{version: a.Version + " (Debian)", pid: a.PID, stop: func() {
		a.Stop()
		// The directory is removed at the end: keep the logs.
		for _, f := range a.LogFiles() {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(logBase+"-"+filepath.Base(f), b, 0o644)
			}
		}
	}}, nil
}

// --- the report ---

// fedColumns are the federation table's columns after the run's name.
var fedColumns = []struct {
	title string
	text  func(*result) string
}{
	{"messages/s", func(r *result) string { return perSecond([]float64{r.RatePerS}) }},
	{"latency p50 / p99", func(r *result) string { return millis([]float64{r.LatP50Ms, r.LatP99Ms}) }},
	{"server CPU per message, sending", func(r *result) string { return micros([]float64{r.ServerCPUUs}) }},
	{"server CPU per message, receiving", func(r *result) string { return micros([]float64{r.PeerCPUUs}) }},
	{"both", func(r *result) string { return micros([]float64{r.ServerCPUUs + r.PeerCPUUs}) }},
	{"delivered exactly once", exactlyOnce},
}

// fedTable renders the federation runs as Markdown (and numbers their
// failures after the others).
func (r *report) fedTable() string {
	var b strings.Builder
	b.WriteString("| federation, senders' server → receivers' server |")
	for _, c := range fedColumns {
		b.WriteString(" " + c.title + " |")
	}
	b.WriteString(" CPU time of other processes |\n|---|" + strings.Repeat("---|", len(fedColumns)+1) + "\n")
	for _, run := range r.fed {
		a, bs := run.pair.sides()
		fmt.Fprintf(&b, "| %s (%s → %s, %s) |", run.pair.title(), a.domain, bs.domain, r.fedCase.title)
		cl := run.cell
		for _, c := range fedColumns {
			var v string
			switch {
			case c.title == "delivered exactly once" && cl.res != nil && cl.res.Sent > 0:
				v = c.text(cl.res)
				if cl.err != "" {
					v += fmt.Sprintf(" [%d]", r.noteText(run.pair.title()+", `federation`: "+cl.err))
				}
			case !cl.ok():
				v = fmt.Sprintf("failed [%d]", r.noteText(run.pair.title()+", `federation`: "+cl.err))
			default:
				v = c.text(cl.res)
			}
			b.WriteString(" " + escape(v) + " |")
		}
		other := "—"
		if cl.busy > 0 {
			other = fmt.Sprintf("%.1f s of %.1f s (%.0f %%)", cl.other.Seconds(), cl.busy.Seconds(), 100*cl.other.Seconds()/cl.busy.Seconds())
		}
		b.WriteString(" " + other + " |\n")
	}
	return b.String()
}

// fedSection is the page's part about the federation runs.
func (r *report) fedSection() string {
	if len(r.fed) == 0 {
		return ""
	}
	var g strings.Builder
	g.WriteString("\n### Federation\n\n")
	g.WriteString("Two servers at once, each on a domain of its own; the senders log in to the first, the receivers to the\n" +
		"second, so every message crosses a server-to-server stream (STARTTLS on 5269, SASL EXTERNAL both ways with\n" +
		"certificates from one test CA every server trusts). Both servers were started fresh with the accounts\n" +
		"user1…user" + strconv.Itoa(fedAccounts(r.fedCase)) + " and stopped after the run. The servers:\n\n")
	for _, run := range r.fed {
		a, b := run.pair.sides()
		fmt.Fprintf(&g, "- %s: %s%s on %s (%s:%s), %s%s on %s (%s:%s)\n", run.pair.title(),
			a.title, r.fedVersion(run, 0), a.domain, a.addr, anchor.StartTLSPort,
			b.title, r.fedVersion(run, 1), b.domain, b.addr, anchor.StartTLSPort)
	}
	g.WriteString("\n```\n")
	for _, run := range r.fed {
		fmt.Fprintf(&g, "starling-bench %s\n", strings.Join(fedArgs(run.pair, r.fedCase, "PID_A", "PID_B"), " "))
	}
	g.WriteString("```\n\n")
	g.WriteString(r.fedTable())
	return g.String()
}

func (r *report) fedVersion(run *fedRun, i int) string {
	v := run.versions[i]
	if v == "" {
		return " (did not start)"
	}
	if strings.HasPrefix(v, "built with") {
		return " (commit " + r.commit + ", " + v + ")"
	}
	return " " + v
}

// fedAccounts is how many accounts the federation case needs on each
// server.
func fedAccounts(c benchCase) int {
	for i := 0; i+1 < len(c.args); i++ {
		if c.args[i] == "--n" {
			n, _ := strconv.Atoi(c.args[i+1])
			return n
		}
	}
	return 10 // starling-bench's default
}
