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

// The command each run uses; the anchors' runs add STARLING_ANCHOR_*.
var goTestArgs = []string{"test", "-race", "-count=1", "-timeout", "20m", "-json", "-run", "^TestRealClients$", "./conformance/realclients/"}

// testRun is one go test of the suite. Its top-level subtests
// (TestRealClients/<column>) are the table's columns.
type testRun struct {
	name    string
	columns []string
	env     []string
	events  []testEvent
	err     error // go test's exit status
}

// testEvent is a line of go test -json (cmd/test2json).
type testEvent struct {
	Action string
	Test   string
	Output string
}

func (r *testRun) run(ctx context.Context, logDir string) error {
	logPath := filepath.Join(logDir, r.name+".json")
	log.Printf("running the suite against %s: %s go %s  (output: %s)", r.name, strings.Join(redactEnv(r.env), " "), strings.Join(goTestArgs, " "), logPath)
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
	log.Printf("%s: %s after %v", r.name, status, time.Since(start).Round(time.Second))
	if len(r.events) == 0 {
		return fmt.Errorf("go test against %s produced no results: %v\n%s", r.name, err, stderr.Bytes())
	}
	return nil
}

func redactEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == "STARLING_ANCHOR_ACCOUNTS" {
			e = k + "=alice:…,bob:…"
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

type results struct {
	columns []string
	checks  []string                    // in the order they first start
	cells   map[string]map[string]*cell // check → column → cell
	offers  map[string][]string         // column → "transport: mechanisms" lines, anchors only
}

var (
	// A t.Log/t.Skip/t.Error line in go test output: "    file_test.go:123: message".
	testLineRE = regexp.MustCompile(`^\s+(\w+_test\.go):\d+: (.*)$`)
	offersRE   = regexp.MustCompile(`offers over (\w+): \[(.*)\]`)
)

func collect(runs []*testRun) *results {
	res := &results{cells: map[string]map[string]*cell{}, offers: map[string][]string{}}
	const setup = "(setup of the server)"
	setupFailed := map[string]*cell{} // column → its top-level test's failure
	for _, r := range runs {
		res.columns = append(res.columns, r.columns...)
		outputs := map[string][]string{}
		for _, e := range r.events {
			column, check, ok := splitTest(e.Test)
			if !ok {
				continue
			}
			if check == "" {
				if m := offersRE.FindStringSubmatch(e.Output); m != nil {
					res.offers[column] = append(res.offers[column], m[1]+": "+strings.ReplaceAll(m[2], " ", ", "))
				}
			}
			switch e.Action {
			case "run": // rows in the order the checks start
				if check != "" && !slices.Contains(res.checks, check) {
					res.checks = append(res.checks, check)
				}
			case "output":
				outputs[e.Test] = append(outputs[e.Test], e.Output)
			case "pass", "fail", "skip":
				if check == "" {
					if e.Action == "fail" {
						setupFailed[column] = &cell{status: e.Action, reason: reason(e.Action, outputs[e.Test])}
					}
					continue
				}
				if res.cells[check] == nil {
					res.cells[check] = map[string]*cell{}
				}
				res.cells[check][column] = &cell{status: e.Action, reason: reason(e.Action, outputs[e.Test])}
			}
		}
	}
	// A top-level test fails with any of its checks: show it only when
	// none did, which means the server's setup failed.
	for column, c := range setupFailed {
		if res.failed(column) {
			continue
		}
		if res.cells[setup] == nil {
			res.checks = append(res.checks, setup)
			res.cells[setup] = map[string]*cell{}
		}
		res.cells[setup][column] = c
	}
	return res
}

func (r *results) failed(column string) bool {
	for _, byCol := range r.cells {
		if c := byCol[column]; c != nil && c.status == "fail" {
			return true
		}
	}
	return false
}

// splitTest splits "TestRealClients/<column>/<check...>".
func splitTest(name string) (column, check string, ok bool) {
	rest, ok := strings.CutPrefix(name, "TestRealClients/")
	if !ok {
		return "", "", false
	}
	column, check, _ = strings.Cut(rest, "/")
	return column, check, true
}

// reason picks the message of a skip (its last test line) or of a failure
// (its first test line that is not a log of a client's output).
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
	b.WriteString("| check |")
	for _, c := range r.columns {
		b.WriteString(" " + columnTitle(c) + " |")
	}
	b.WriteString("\n|---|")
	for range r.columns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, check := range r.checks {
		b.WriteString("| " + check + " |")
		for _, col := range r.columns {
			c := r.cells[check][col]
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
func writeDoc(path string, res *results, anchors []*anchor.Server, table string) error {
	var g strings.Builder
	g.WriteString(beginMarker + "\n\n")
	fmt.Fprintf(&g, "Run on %s with `make conformance-anchors` (`go run ./conformance/anchors`), which runs\n`go %s` once per server.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(goTestArgs, " "))
	g.WriteString("| server | version | address | SASL mechanisms offered after TLS |\n|---|---|---|---|\n")
	g.WriteString("| Starling | this working tree, on SQLite and on PostgreSQL | 127.0.0.1, free ports | not probed: every mechanism of the matrix must work |\n")
	for _, a := range anchors {
		fmt.Fprintf(&g, "| %s | %s (Debian) | %s:5222 STARTTLS, :5223 direct TLS | %s |\n", columnTitle(a.Name), a.Version, a.Addr, strings.Join(res.offers[a.Name], "; "))
	}
	g.WriteString("\n" + table + "\n")
	g.WriteString("pass/fail/skip is go test's verdict; [n] is the skip's or failure's message; — means the check did not run\n" +
		"because the case it belongs to was skipped first. A `…/server-log` row is the cross-check of a case against\n" +
		"Starling's own log, which only a Starling run can do.\n\n" + endMarker + "\n")

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
