// Package systemd holds the systemd unit of contrib/systemd; its test
// checks the unit with systemd's own parser.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnit: systemd-analyze verify parses starling.service without a
// warning (an unknown key or a bad value is only a warning to systemd,
// and a hardening line silently lost). The binary's path is replaced by
// one that exists here.
func TestUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("STARLING_REQUIRE_ALL") != "" {
			t.Fatal("systemd-analyze is missing (package systemd)")
		}
		t.Skip("systemd-analyze is missing (package systemd)")
	}
	unit, err := os.ReadFile("starling.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/starling serve --config /etc/starling/starling.toml") {
		t.Fatal("ExecStart is not the one README documents")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "starling.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/starling", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
