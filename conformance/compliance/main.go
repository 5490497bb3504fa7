// Command compliance writes docs/compliance.md: every server requirement of
// XEP-0479 (XMPP Compliance Suites 2023) with its status and the checks
// that prove it (issue 3 part 4). `make compliance` runs it from the
// repository root:
//
//	go run ./conformance/compliance [-doc docs/compliance.md] [-log FILE]
//
// The requirements and their checks are the table in requirements.go. The
// command runs go test -json once over every package the table names, in
// its own environment (make passes STARLING_REQUIRE_ALL=1, under which a
// missing client or database fails instead of skipping, and
// STARLING_TEST_POSTGRES), and renders the table with each check's result.
// It exits nonzero when a check of the table failed, was skipped or did
// not run at all, so a renamed or deleted test cannot leave a requirement
// silently unproven.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const module = "github.com/starling-xmpp/starling"

var goTestArgs = []string{"test", "-json", "-count=1", "-timeout", "20m"}

func main() {
	log.SetFlags(0)
	log.SetPrefix("compliance: ")
	doc := flag.String("doc", "docs/compliance.md", "Markdown file to write")
	logPath := flag.String("log", filepath.Join(os.TempDir(), "starling-compliance.json"), "file for the go test -json output (kept)")
	flag.Parse()
	if err := run(*doc, *logPath); err != nil {
		log.Fatal(err)
	}
}

func run(docPath, logPath string) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (go.mod not found)")
	}
	args := append(slices.Clone(goTestArgs), packages()...)
	command := displayEnv() + "go " + strings.Join(args, " ")
	log.Printf("running %s  (output: %s)", command, logPath)
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, testErr := cmd.Output() // go test exits nonzero when a test fails; the results say which
	if err := os.WriteFile(logPath, out, 0o644); err != nil {
		return err
	}
	res := parse(out)
	if len(res.tests) == 0 {
		return fmt.Errorf("go test produced no results: %v", testErr)
	}
	took := time.Since(start).Round(time.Second)
	log.Printf("go test took %v", took)

	r := report{start: start.UTC(), took: took, commit: commit(), command: command, res: res}
	if err := os.WriteFile(docPath, []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", docPath)
	for _, c := range r.counts() {
		log.Printf("%-6s %-15s %s", c.category, c.level, c.String())
	}

	if others := res.failedOutside(); len(others) > 0 {
		log.Printf("tests outside the table failed (they do not count here): %s", strings.Join(others, ", "))
	}
	var bad []string
	n := 0
	for _, q := range requirements {
		for _, c := range q.checks {
			if o := res.outcome(c); o.result != "pass" {
				n++
				bad = append(bad, fmt.Sprintf("%s (%s): %s %s", q.spec, q.category, c, o.result))
				for _, t := range o.failed {
					bad = append(bad, "    failed: "+t)
				}
			}
		}
	}
	if n > 0 {
		return fmt.Errorf("%d checks of the table did not pass (go test output in %s):\n%s", n, logPath, strings.Join(bad, "\n"))
	}
	return nil
}

// packages are the directories the table's checks name, sorted.
func packages() []string {
	var pkgs []string
	for _, q := range requirements {
		for _, c := range q.checks {
			dir, _, _ := strings.Cut(c, " ")
			if !slices.Contains(pkgs, dir) {
				pkgs = append(pkgs, dir)
			}
		}
	}
	slices.Sort(pkgs)
	return pkgs
}

// displayEnv shows the variables the run depends on, without the DSN
// itself (it may hold a password).
func displayEnv() string {
	var s string
	if v := os.Getenv("STARLING_REQUIRE_ALL"); v != "" {
		s += "STARLING_REQUIRE_ALL=" + v + " "
	}
	if os.Getenv("STARLING_TEST_POSTGRES") != "" {
		s += "STARLING_TEST_POSTGRES=… "
	}
	return s
}

// commit is HEAD's short hash, with "+dirty" when the working tree differs.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	// --no-optional-locks: status must not rewrite the index that others use.
	if st, err := exec.Command("git", "--no-optional-locks", "status", "--porcelain").Output(); err != nil || len(bytes.TrimSpace(st)) > 0 {
		c += "+dirty"
	}
	return c
}

// importPath turns a directory of the table ("./conformance") into the
// package's import path, as go test -json reports it.
func importPath(dir string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(dir, "."), "/")
	if rest == "" {
		return module
	}
	return module + "/" + rest
}

// testEvent is a line of go test -json (cmd/test2json).
type testEvent struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
}

type results struct {
	tests       map[string]map[string]string // package → test → pass, fail or skip
	buildFailed []string                     // packages that did not build
}

func parse(out []byte) *results {
	res := &results{tests: map[string]map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e testEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case e.Action == "build-fail":
			pkg, _, _ := strings.Cut(e.ImportPath, " ") // "pkg [pkg.test]"
			if !slices.Contains(res.buildFailed, pkg) {
				res.buildFailed = append(res.buildFailed, pkg)
			}
		case e.Test != "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			if res.tests[e.Package] == nil {
				res.tests[e.Package] = map[string]string{}
			}
			res.tests[e.Package][e.Test] = e.Action
		}
	}
	return res
}

// match reports whether test is pattern or a subtest below it; a "*" part
// of pattern matches any one part of the name.
func match(pattern, test string) bool {
	p, t := strings.Split(pattern, "/"), strings.Split(test, "/")
	if len(t) < len(p) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != t[i] {
			return false
		}
	}
	return true
}

// overlap reports whether test is pattern, below it or above it.
func overlap(pattern, test string) bool {
	p, t := strings.Split(pattern, "/"), strings.Split(test, "/")
	for i := range min(len(p), len(t)) {
		if p[i] != "*" && p[i] != t[i] {
			return false
		}
	}
	return true
}

// outcome is one check's result: fail if any test it covers failed, else
// pass if any passed (deliberate skips of some subtests, such as a client
// that lacks a mechanism, are counted), else skip; missing if no test
// matched.
type outcome struct {
	result  string
	skipped int
	failed  []string
}

func (o outcome) String() string {
	if o.result == "pass" && o.skipped > 0 {
		return fmt.Sprintf("pass (%d subtests skipped)", o.skipped)
	}
	return o.result
}

func (r *results) outcome(check string) outcome {
	dir, pattern, _ := strings.Cut(check, " ")
	var o outcome
	passed := 0
	for name, action := range r.tests[importPath(dir)] {
		if !match(pattern, name) {
			continue
		}
		switch action {
		case "pass":
			passed++
		case "skip":
			o.skipped++
		case "fail":
			o.failed = append(o.failed, name)
		}
	}
	slices.Sort(o.failed)
	switch {
	case len(o.failed) > 0:
		o.result = "fail"
	case passed > 0:
		o.result = "pass"
	case o.skipped > 0:
		o.result = "skip"
	default:
		o.result = "missing"
	}
	return o
}

// failedOutside lists the failed tests that no check of the table covers.
func (r *results) failedOutside() []string {
	var names []string
	for pkg, tests := range r.tests {
		for name, action := range tests {
			if action == "fail" && !covered(pkg, name) {
				names = append(names, strings.TrimPrefix(pkg, module+"/")+" "+name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// covered reports whether a check of the table covers the test, or a
// subtest of it (a parent fails with its subtests).
func covered(pkg, name string) bool {
	for _, q := range requirements {
		for _, c := range q.checks {
			dir, pattern, _ := strings.Cut(c, " ")
			if importPath(dir) == pkg && overlap(pattern, name) {
				return true
			}
		}
	}
	return false
}

// status is a requirement's status and its kind for the summary.
func (r *results) status(q requirement) (text, kind string) {
	if q.notImplemented != "" {
		return "not implemented (" + q.notImplemented + ")", "not implemented"
	}
	for _, c := range q.checks {
		if r.outcome(c).result != "pass" {
			return "**fails**", "fails"
		}
	}
	if q.partial != "" {
		return "partial: " + q.partial, "partial"
	}
	return "passes", "passes"
}
