package arch

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is the Go module path of Starling.
const module = "github.com/starling-xmpp/starling"

// root is the repository, from this package's directory.
const root = "../.."

// moduleList is the one file that may name the modules (DESIGN.md).
const moduleList = "server/modules.go"

// isModule reports whether pkg (relative to the module) is a module: an
// extension under xep/. The roster and presence (RFC 6121) are the IM
// core the modules build on, as c2s and the router are the stream core.
func isModule(pkg string) bool {
	return strings.HasPrefix(pkg, "xep/")
}

// knownViolations are the imports that break a rule today, each with the
// part of issue 11 that removes it. The test fails on any other, and on
// one listed here that no longer happens, so the list only shrinks.
var knownViolations = map[string]string{}

// TestImportRules checks every non-test Go file of the repository.
func TestImportRules(t *testing.T) {
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Fatalf("not at the repository's root: %v", err)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	var broken []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "testdata", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		file := filepath.ToSlash(rel)
		pkg := path.Dir(file)
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			dep, ours := strings.CutPrefix(ip, module+"/")
			if !ours {
				continue
			}
			var rule, key string
			switch {
			case pkg == "stanza" || pkg == "stream":
				rule, key = "stanza and stream import no package of ours", pkg+" -> "+dep
			case isModule(pkg) && isModule(dep):
				rule, key = "no module imports another module", pkg+" -> "+dep
			case !isModule(pkg) && isModule(dep) && file != moduleList:
				rule, key = "only the module list ("+moduleList+") names the modules", file+" -> "+dep
			default:
				continue
			}
			if _, ok := knownViolations[key]; ok {
				seen[key] = true
				continue
			}
			broken = append(broken, key+": breaks the rule: "+rule)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(broken)
	for _, b := range slices.Compact(broken) {
		t.Error(b)
	}
	for key, why := range knownViolations {
		if !seen[key] {
			t.Errorf("%s no longer happens (%s): remove it from knownViolations", key, why)
		}
	}
}
