package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// suite is one package of real-client checks and its top-level test. The
// test's subtests are <column>/<check>: a column is a server (an anchor's
// name, or Starling's storage backend), a check is a row of the table.
type suite struct{ pkg, test string }

var suites = []suite{
	{"realclients", "TestRealClients"},
	{"xmppjs", "TestXMPPJS"},
	{"profanity", "TestProfanity"},
	{"browser", "TestBrowser"},
	// Last: it leaves alice and bob subscribed to each other, with vCards.
	{"imclients", "TestIMClients"},
}

// goTestArgs is the command each run uses; the anchors' runs add
// STARLING_ANCHOR_*. With -p 1 the packages run one after the other: on an
// anchor they share the accounts alice and bob, and a message one suite
// sends to bob's bare JID must not reach another suite's bob.
var goTestArgs = func() []string {
	var tests, pkgs []string
	for _, s := range suites {
		tests = append(tests, s.test)
		pkgs = append(pkgs, "./conformance/"+s.pkg+"/")
	}
	return append([]string{"test", "-race", "-count=1", "-p", "1", "-timeout", "20m", "-json",
		"-run", "^(" + strings.Join(tests, "|") + ")$"}, pkgs...)
}()

// testRun is one go test of the suites against one server: Starling, whose
// columns are its storage backends, or an anchor, the column named after
// it.
type testRun struct {
	name    string
	columns []string
	env     []string
	events  []testEvent
	err     error // go test's exit status
	took    time.Duration
}

// testEvent is a line of go test -json (cmd/test2json).
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func (r *testRun) run(ctx context.Context, logDir string) error {
	logPath := filepath.Join(logDir, r.name+".json")
	log.Printf("running the suites against %s: %s go %s  (output: %s)", r.name, strings.Join(redactEnv(r.env), " "), strings.Join(goTestArgs, " "), logPath)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", goTestArgs...)
	cmd.Env = append(append(os.Environ(), "STARLING_REQUIRE_ALL=1"), r.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if werr := os.WriteFile(logPath, out, 0o644); werr != nil {
		return werr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.err = err
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e testEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			r.events = append(r.events, e)
		}
	}
	status := "ok"
	if err != nil {
		status = fmt.Sprintf("%v", err)
	}
	r.took = time.Since(start)
	log.Printf("%s: %s after %v", r.name, status, r.took.Round(time.Second))
	if len(r.events) == 0 {
		return fmt.Errorf("go test against %s produced no results: %v\n%s", r.name, err, stderr.Bytes())
	}
	return nil
}

func redactEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == "STARLING_ANCHOR_ACCOUNTS" {
			e = k + "=alice:…,bob:…,carol:…"
		}
		out = append(out, e)
	}
	return out
}

// cell is one check on one server.
type cell struct {
	status string // pass, fail, skip, or "" when the check did not run
	reason string // a skip's or a failure's message
}

// row is a check of a suite.
type row struct{ suite, check string }

type results struct {
	columns []string
	rows    []row                    // in the order they first start
	cells   map[row]map[string]*cell // row → column → cell
	offers  map[string][]string      // column → "transport: mechanisms" lines, anchors only
}

var (
	// A t.Log/t.Skip/t.Error line in go test output: "    file_test.go:123: message".
	testLineRE = regexp.MustCompile(`^\s+(\w+\.go):\d+: (.*)$`)
	offersRE   = regexp.MustCompile(`offers over (\w+): \[(.*)\]`)
)

func collect(runs []*testRun) *results {
	res := &results{cells: map[row]map[string]*cell{}, offers: map[string][]string{}}
	const setup = "(setup of the server)"
	// What failed above the checks: a column's subtest, a suite's
	// top-level test or its whole package (a build failure, a panic).
	// They fail with any of their checks; a row of its own shows them only
	// when no check did.
	type scope struct{ suite, column string }
	setupFailed := map[scope]*cell{}
	for _, r := range runs {
		res.columns = append(res.columns, r.columns...)
		outputs := map[string][]string{} // by package and test
		for _, e := range r.events {
			key := e.Package + " " + e.Test
			if e.Action == "output" {
				outputs[key] = append(outputs[key], e.Output)
			}
			if e.Test == "" {
				if e.Action == "fail" {
					for _, s := range suites {
						if strings.HasSuffix(e.Package, "/conformance/"+s.pkg) {
							for _, column := range r.columns {
								setupFailed[scope{s.pkg, column}] = &cell{status: "fail", reason: e.Package + " failed: " + reason("fail", outputs[key])}
							}
						}
					}
				}
				continue
			}
			s, column, check, ok := splitTest(e.Test)
			if !ok {
				continue
			}
			if column != "" && check == "" {
				if m := offersRE.FindStringSubmatch(e.Output); m != nil {
					offer := m[1] + ": " + strings.ReplaceAll(m[2], " ", ", ")
					if !slices.Contains(res.offers[column], offer) {
						res.offers[column] = append(res.offers[column], offer)
					}
				}
			}
			rw := row{s.pkg, check}
			switch e.Action {
			case "run": // rows in the order the checks start
				if check != "" && !slices.Contains(res.rows, rw) {
					res.rows = append(res.rows, rw)
				}
			case "pass", "fail", "skip":
				c := &cell{status: e.Action, reason: reason(e.Action, outputs[key])}
				switch {
				case check != "":
					if res.cells[rw] == nil {
						res.cells[rw] = map[string]*cell{}
					}
					res.cells[rw][column] = c
				case e.Action == "fail" && column != "":
					setupFailed[scope{s.pkg, column}] = c
				case e.Action == "fail": // the top-level test, e.g. a missing prerequisite
					for _, column := range r.columns {
						if setupFailed[scope{s.pkg, column}] == nil {
							setupFailed[scope{s.pkg, column}] = c
						}
					}
				}
			}
		}
	}
	for _, s := range suites {
		for _, column := range res.columns {
			c := setupFailed[scope{s.pkg, column}]
			if c == nil || res.failed(s.pkg, column) {
				continue
			}
			rw := row{s.pkg, setup}
			if res.cells[rw] == nil {
				res.rows = append(res.rows, rw)
				res.cells[rw] = map[string]*cell{}
			}
			res.cells[rw][column] = c
		}
	}
	// Each suite's rows together, in the order of suites.
	slices.SortStableFunc(res.rows, func(a, b row) int {
		return slices.IndexFunc(suites, func(s suite) bool { return s.pkg == a.suite }) -
			slices.IndexFunc(suites, func(s suite) bool { return s.pkg == b.suite })
	})
	return res
}

// failed reports whether a check of suite failed in column.
func (r *results) failed(suite, column string) bool {
	for rw, byCol := range r.cells {
		if c := byCol[column]; rw.suite == suite && c != nil && c.status == "fail" {
			return true
		}
	}
	return false
}

// splitTest splits "<suite's test>/<column>/<check...>"; column and check
// are "" for the suite's top-level test, check for a column's subtest.
func splitTest(name string) (s suite, column, check string, ok bool) {
	top, rest, _ := strings.Cut(name, "/")
	i := slices.IndexFunc(suites, func(s suite) bool { return s.test == top })
	if i < 0 {
		return suite{}, "", "", false
	}
	column, check, _ = strings.Cut(rest, "/")
	return suites[i], column, check, true
}

// reason picks the message of a skip (its last test line) or of a failure
// (its first test line that is not a log of a client's output, else its
// last).
func reason(action string, output []string) string {
	var msgs []string
	for _, o := range output {
		for _, l := range strings.Split(strings.TrimRight(o, "\n"), "\n") {
			if m := testLineRE.FindStringSubmatch(l); m != nil {
				msgs = append(msgs, m[2])
			}
		}
	}
	switch action {
	case "skip":
		if len(msgs) > 0 {
			return msgs[len(msgs)-1]
		}
	case "fail":
		for _, m := range msgs {
			if failureLine(m) {
				return m
			}
		}
		if len(msgs) > 0 { // a t.Fatal in words failureLine does not know
			return msgs[len(msgs)-1]
		}
		return "see the go test output"
	}
	return ""
}

// failureLine tells an assertion's message from the suite's t.Logf chatter.
func failureLine(m string) bool {
	for _, w := range []string{"want", "did not", "exited", "failed", "error", "missing prerequisite", "cannot", "not TLS"} {
		if strings.Contains(m, w) && !strings.HasSuffix(m, "stderr:") && !strings.Contains(m, "ignoring") {
			return true
		}
	}
	return false
}

func (r *results) failures() int {
	n := 0
	for _, byCol := range r.cells {
		for _, c := range byCol {
			if c.status == "fail" {
				n++
			}
		}
	}
	return n
}

// markdown renders the table, with skip and failure reasons as numbered
// notes under it.
func (r *results) markdown() string {
	var b strings.Builder
	var notes []string
	note := func(s string) int {
		if i := slices.Index(notes, s); i >= 0 {
			return i + 1
		}
		notes = append(notes, s)
		return len(notes)
	}
	b.WriteString("| suite | check |")
	for _, c := range r.columns {
		b.WriteString(" " + columnTitle(c) + " |")
	}
	b.WriteString("\n|---|---|")
	for range r.columns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, rw := range r.rows {
		b.WriteString("| " + rw.suite + " | " + rw.check + " |")
		for _, col := range r.columns {
			c := r.cells[rw][col]
			switch {
			case c == nil:
				b.WriteString(" — |")
			case c.reason != "" && c.status != "pass":
				fmt.Fprintf(&b, " %s [%d] |", c.status, note(c.reason))
			default:
				b.WriteString(" " + c.status + " |")
			}
		}
		b.WriteString("\n")
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, strings.ReplaceAll(n, "|", "\\|"))
		}
	}
	return b.String()
}

func columnTitle(c string) string {
	switch c {
	case "sqlite", "postgres":
		return "Starling (" + c + ")"
	case "starling":
		return "Starling"
	case "prosody":
		return "Prosody"
	case "ejabberd":
		return "ejabberd"
	}
	return c
}

const (
	beginMarker = "<!-- BEGIN GENERATED by `make conformance-anchors` (conformance/anchors); edits here are overwritten -->"
	endMarker   = "<!-- END GENERATED -->"
)

// writeDoc puts the generated section between the markers of path,
// creating the file if needed.
func writeDoc(path string, res *results, runs []*testRun, anchors []*anchor.Server, table string) error {
	var g strings.Builder
	g.WriteString(beginMarker + "\n\n")
	var took []string
	for _, r := range runs {
		took = append(took, fmt.Sprintf("%s %v", columnTitle(r.name), r.took.Round(time.Second)))
	}
	fmt.Fprintf(&g, "Run on %s with `make conformance-anchors` (`go run ./conformance/anchors`), which runs\n`go %s`\nonce per server (it took %s).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(goTestArgs, " "), strings.Join(took, ", "))
	g.WriteString("| server | version | address | SASL mechanisms offered after TLS |\n|---|---|---|---|\n")
	g.WriteString("| Starling | this working tree, on SQLite and on PostgreSQL | 127.0.0.1, free ports | not probed: every mechanism of the matrix must work |\n")
	for _, a := range anchors {
		fmt.Fprintf(&g, "| %s | %s (Debian) | %s:5222 STARTTLS, :5223 direct TLS, :5281 HTTPS (WebSocket, BOSH) | %s |\n", columnTitle(a.Name), a.Version, a.Addr, strings.Join(res.offers[a.Name], "; "))
	}
	g.WriteString("\n" + table + "\n")
	g.WriteString("A suite is a package of conformance/: realclients (slixmpp, nbxmpp, go-sendxmpp), xmppjs (xmpp.js in Node),\n" +
		"profanity (Profanity in tmux), browser (Converse.js in headless Chromium over WebSocket and BOSH); xmppjs,\n" +
		"profanity and browser run Starling on SQLite only. pass/fail/skip is go test's\n" +
		"verdict; [n] is the skip's or failure's message; — means the check did not run there: the case it belongs to\n" +
		"was skipped first, or the suite does not run on that storage. A `…/server-log` row is the cross-check of a\n" +
		"check against Starling's own log, which only a Starling run can do.\n\n" + endMarker + "\n")

	old, err := os.ReadFile(path)
	var doc string
	switch {
	case err == nil && strings.Contains(string(old), beginMarker) && strings.Contains(string(old), endMarker):
		before, _, _ := strings.Cut(string(old), beginMarker)
		_, after, _ := strings.Cut(string(old), endMarker+"\n")
		doc = before + g.String() + after
	case err == nil || os.IsNotExist(err):
		doc = "# Real-client conformance: Starling beside Prosody and ejabberd\n\n" + g.String()
	default:
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
