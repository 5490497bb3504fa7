package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const root = "../.." // the repository root, from this package's directory

// TestTable checks the table without running it: every requirement is
// proven or says why not, and every check names a package directory, a
// Test function of that package and, for transcripts, a file that exist.
// Subtests below the top level are checked when the command runs.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	testFuncs := map[string][]string{} // directory → its Test functions
	for _, q := range requirements {
		name := q.category + " " + q.level.String() + " " + q.spec
		if seen[name] {
			t.Errorf("%s: listed twice", name)
		}
		seen[name] = true
		if !slices.Contains(categories, q.category) || q.feature == "" || q.spec == "" {
			t.Errorf("%s: category, feature or spec missing or unknown", name)
		}
		switch {
		case q.notImplemented != "" && (len(q.checks) > 0 || q.partial != ""):
			t.Errorf("%s: not implemented, yet it has checks or a partial reason", name)
		case q.notImplemented == "" && len(q.checks) == 0:
			t.Errorf("%s: no checks and no not-implemented reason", name)
		case q.notImplemented != "" && !strings.HasPrefix(q.notImplemented, "issue ") && !strings.HasPrefix(q.notImplemented, notFiled):
			t.Errorf("%s: notImplemented %q names neither an issue nor %q", name, q.notImplemented, notFiled)
		}
		var checks []string
		for _, c := range q.checks {
			if slices.Contains(checks, c) {
				t.Errorf("%s: check %q listed twice", name, c)
			}
			checks = append(checks, c)
			dir, pattern, ok := strings.Cut(c, " ")
			if !ok || !strings.HasPrefix(dir, "./") || pattern == "" || strings.Contains(pattern, " ") {
				t.Errorf("%s: check %q is not \"./dir TestName[/subtest...]\"", name, c)
				continue
			}
			if _, ok := testFuncs[dir]; !ok {
				testFuncs[dir] = parseTestFuncs(t, filepath.Join(root, dir))
			}
			top, sub, _ := strings.Cut(pattern, "/")
			if !slices.Contains(testFuncs[dir], top) {
				t.Errorf("%s: check %q: no func %s in %s's tests", name, c, top, dir)
			}
			if dir == "./conformance" && top == "TestTranscripts" {
				file := filepath.Join(root, "conformance", "testdata", strings.Split(sub, "/")[0]+".txt")
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: check %q: %v", name, c, err)
				}
			}
		}
	}
}

// parseTestFuncs lists the Test functions of dir's _test.go files.
func parseTestFuncs(t *testing.T, dir string) []string {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Errorf("%s: no test files (%v)", dir, err)
		return nil
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				names = append(names, fn.Name.Name)
			}
		}
	}
	return names
}

func TestOutcome(t *testing.T) {
	res := parse([]byte(`{"Action":"run","Package":"github.com/starling-xmpp/starling/conformance","Test":"TestTranscripts"}
{"Action":"pass","Package":"github.com/starling-xmpp/starling/conformance","Test":"TestTranscripts/rfc6120-06-sasl"}
{"Action":"fail","Package":"github.com/starling-xmpp/starling/conformance","Test":"TestTranscripts/rfc6120-07-bind"}
{"Action":"fail","Package":"github.com/starling-xmpp/starling/conformance","Test":"TestTranscripts"}
{"Action":"pass","Package":"github.com/starling-xmpp/starling/conformance/realclients","Test":"TestRealClients/sqlite/go-sendxmpp/directtls/PLAIN"}
{"Action":"skip","Package":"github.com/starling-xmpp/starling/conformance/realclients","Test":"TestRealClients/sqlite/go-sendxmpp/directtls/SCRAM-SHA-1"}
{"Action":"skip","Package":"github.com/starling-xmpp/starling/conformance/realclients","Test":"TestRealClients/postgres/go-sendxmpp/directtls/SCRAM-SHA-1"}
{"Action":"pass","Package":"github.com/starling-xmpp/starling/auth","Test":"TestPLAIN"}
{"Action":"build-fail","ImportPath":"github.com/starling-xmpp/starling/stream [github.com/starling-xmpp/starling/stream.test]"}
not json
`))
	for check, want := range map[string]string{
		"./conformance TestTranscripts/rfc6120-06-sasl":                                  "pass",
		"./conformance TestTranscripts/rfc6120-07-bind":                                  "fail",
		"./conformance TestTranscripts/rfc6120-07":                                       "missing", // parts match whole
		"./conformance TestTranscripts":                                                  "fail",
		"./conformance/realclients TestRealClients/*/go-sendxmpp/directtls":              "pass (2 subtests skipped)",
		"./conformance/realclients TestRealClients/postgres/go-sendxmpp":                 "skip",
		"./conformance/realclients TestRealClients/sqlite/go-sendxmpp/directtls/PLAIN/x": "missing",
		"./auth TestPLAIN":  "pass",
		"./auth TestPLAINX": "missing",
		"./stream TestNext": "missing",
	} {
		if got := res.outcome(check).String(); got != want {
			t.Errorf("%s: %s, want %s", check, got, want)
		}
	}
	if !slices.Equal(res.buildFailed, []string{module + "/stream"}) {
		t.Errorf("build failures: %q", res.buildFailed)
	}

	for _, tc := range []struct {
		pattern, test string
		want          bool
	}{
		{"TestRealClients/*/slixmpp", "TestRealClients", true},
		{"TestRealClients/*/slixmpp", "TestRealClients/sqlite", true},
		{"TestRealClients/*/slixmpp", "TestRealClients/sqlite/slixmpp/starttls", true},
		{"TestRealClients/*/slixmpp", "TestRealClients/sqlite/nbxmpp", false},
		{"TestTranscripts/rfc6120-06-sasl", "TestThrottle", false},
	} {
		if got := overlap(tc.pattern, tc.test); got != tc.want {
			t.Errorf("overlap(%q, %q) = %v", tc.pattern, tc.test, got)
		}
	}

	q := requirement{checks: []string{"./auth TestPLAIN"}}
	for _, tc := range []struct {
		partial, notImpl, check, want string
	}{
		{"", "", "./auth TestPLAIN", "passes"},
		{"c2s only", "", "./auth TestPLAIN", "partial"},
		{"c2s only", "", "./stream TestNext", "fails"},
		{"", "issue 4", "", "not implemented"},
	} {
		q.partial, q.notImplemented, q.checks = tc.partial, tc.notImpl, nil
		if tc.check != "" {
			q.checks = []string{tc.check}
		}
		if _, kind := res.status(q); kind != tc.want {
			t.Errorf("%+v: %s, want %s", tc, kind, tc.want)
		}
	}
}

func TestImportPath(t *testing.T) {
	for dir, want := range map[string]string{
		".":                         module,
		"./conformance":             module + "/conformance",
		"./conformance/realclients": module + "/conformance/realclients",
	} {
		if got := importPath(dir); got != want {
			t.Errorf("importPath(%q) = %q, want %q", dir, got, want)
		}
	}
}
