// Command anchors runs every real-client check (the suites
// conformance/realclients, conformance/xmppjs, conformance/profanity,
// conformance/imclients and conformance/browser) against Starling and
// against the two "anchors", Prosody and ejabberd from Debian packages,
// and prints a table check × server (issue 3 part 3).
// `make conformance-anchors` runs it from the repository root:
//
//	go run ./conformance/anchors [-doc docs/conformance-anchors.md]
//
// Steps:
//  1. apt-get installs prosody and ejabberd if missing; no service is
//     started by the install (a temporary policy-rc.d says no if the machine
//     has none), and none is left running.
//  2. internal/anchor starts Prosody on 127.0.0.2 and ejabberd on
//     127.0.0.3 (5222 STARTTLS, 5223 direct TLS, 5281 HTTPS with WebSocket
//     and BOSH) in a temporary directory, with accounts alice, bob and
//     carol with random passwords, the same on both.
//  3. go test -json of the suites' packages three times: as usual
//     (Starling on SQLite and PostgreSQL for realclients and imclients, on
//     SQLite for xmppjs, profanity and browser), then with
//     STARLING_ANCHOR=prosody and STARLING_ANCHOR=ejabberd and the
//     STARLING_ANCHOR_* variables (internal/anchorenv) that point the same
//     checks at that server.
//  4. Prints the table and writes it, with the date, the command, the
//     versions and the mechanisms each server offers, between the markers
//     of the -doc file (text outside the markers, such as hand-written
//     notes, is kept).
//  5. Stops both servers (also on error or interrupt) and removes the
//     temporary directory. The raw go test output is kept in -logs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/starling-xmpp/starling/internal/anchor"
)

const (
	prosodyAddr  = "127.0.0.2"
	ejabberdAddr = "127.0.0.3"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("anchors: ")
	doc := flag.String("doc", "docs/conformance-anchors.md", "Markdown file to write the table into (empty: none)")
	logs := flag.String("logs", filepath.Join(os.TempDir(), "starling-conformance-anchors"), "directory for the go test -json output of each run (kept)")
	servers := flag.String("servers", "starling,prosody,ejabberd", "comma-separated servers to run the suite against")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *doc, *logs, strings.Split(*servers, ",")); err != nil {
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

func run(ctx context.Context, docPath, logDir string, servers []string) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (go.mod not found)")
	}
	if os.Getuid() != 0 {
		return errors.New("must run as root: it installs packages and starts Prosody and ejabberd")
	}
	if err := anchor.RaiseOpenFiles(); err != nil {
		return err
	}
	if err := anchor.Install(ctx); err != nil {
		return err
	}
	var cl cleanups
	defer func() { cl.run() }()
	dir, err := os.MkdirTemp("", "starling-anchors-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755) // ejabberd runs as its own user
	cl.add(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	passwords := map[string]string{"alice": randomHex(12), "bob": randomHex(12), "carol": randomHex(12)}
	accounts := "alice:" + passwords["alice"] + ",bob:" + passwords["bob"] + ",carol:" + passwords["carol"]
	var anchors []*anchor.Server
	for _, o := range []anchor.Options{
		{Name: "prosody", Addr: prosodyAddr},
		{Name: "ejabberd", Addr: ejabberdAddr},
	} {
		if !slices.Contains(servers, o.Name) {
			continue
		}
		o.Dir, o.Accounts = filepath.Join(dir, o.Name), passwords
		a, err := anchor.Start(ctx, o)
		if err != nil {
			return err
		}
		cl.add(a.Stop)
		anchors = append(anchors, a)
		log.Printf("%s %s is up on %s:5222 (STARTTLS) and %s:5223 (direct TLS), WebSocket at %s, BOSH at %s", a.Name, a.Version, a.Addr, a.Addr, a.WebSocketURL(true), a.BOSHURL(true))
	}

	// The runs. Starling's is the one `make check` does.
	var runs []*testRun
	if slices.Contains(servers, "starling") {
		runs = append(runs, &testRun{name: "starling", columns: []string{"sqlite", "postgres"}})
	}
	for _, a := range anchors {
		runs = append(runs, &testRun{name: a.Name, columns: []string{a.Name}, env: []string{
			"STARLING_ANCHOR=" + a.Name,
			"STARLING_ANCHOR_HOST=" + a.Addr,
			"STARLING_ANCHOR_DOMAIN=" + anchor.Domain,
			"STARLING_ANCHOR_STARTTLS_PORT=" + anchor.StartTLSPort,
			"STARLING_ANCHOR_DIRECTTLS_PORT=" + anchor.DirectTLSPort,
			"STARLING_ANCHOR_CA=" + a.CAFile,
			"STARLING_ANCHOR_ACCOUNTS=" + accounts,
			"STARLING_ANCHOR_WEBSOCKET_URL=" + a.WebSocketURL(true),
			"STARLING_ANCHOR_BOSH_URL=" + a.BOSHURL(true),
		}})
	}
	for _, r := range runs {
		if err := r.run(ctx, logDir); err != nil {
			return err
		}
	}
	res := collect(runs)
	table := res.markdown()
	fmt.Println()
	fmt.Println(table)
	if docPath != "" {
		if err := writeDoc(docPath, res, runs, anchors, table); err != nil {
			return err
		}
		log.Printf("wrote %s", docPath)
	}
	log.Printf("go test output kept in %s", logDir)
	if n := res.failures(); n > 0 {
		return fmt.Errorf("%d check×server cells failed (see the table and %s)", n, logDir)
	}
	for _, r := range runs {
		if r.err != nil { // no failed cell says why: go test's output must
			return fmt.Errorf("go test against %s failed (%v) with no failed check: see %s", r.name, r.err, logDir)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
