package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// starling runs the built binary with stdin and returns its combined
// output and whether it succeeded.
func starling(t *testing.T, stdin string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbin.CLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Build(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// TestCheckConfig: `starling check-config` accepts the example file and
// lists every problem of a bad one with its key path (issue 2 part 2).
func TestCheckConfig(t *testing.T) {
	if out, ok := starling(t, "", "check-config", "../../config.example.toml"); !ok {
		t.Fatalf("config.example.toml: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[server]\nhosts = []\n[limits]\nmax_stanzas_bytes = 1\nidle_timeout = \"soon\"\n"), 0o600)
	out, ok := starling(t, "", "check-config", bad)
	if ok {
		t.Fatalf("a bad file passed: %s", out)
	}
	for _, want := range []string{"server.hosts", "limits.max_stanzas_bytes", "limits.idle_timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not name %s:\n%s", want, out)
		}
	}

	// The modules' tables are checked too, each problem with the file
	// and its path (issue 11 part 1).
	mods := filepath.Join(t.TempDir(), "modules.toml")
	os.WriteFile(mods, []byte("[modules.vcrad]\n[modules.offline]\nmax_messages = \"many\"\n[modules.ping]\nenabled = false\n"), 0o600)
	out, ok = starling(t, "", "check-config", mods)
	if ok {
		t.Fatalf("bad module tables passed: %s", out)
	}
	for _, want := range []string{
		mods + ": modules.vcrad: unknown module",
		mods + ": modules.offline.max_messages: expected an integer, got a string",
		mods + ": modules.ping.enabled: this module cannot be turned off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q:\n%s", want, out)
		}
	}
}

// TestUserCommands: add, list, passwd and del, with the password read from
// stdin; `user del` ends the sessions of the account on a running server
// (issue 2 part 9).
func TestUserCommands(t *testing.T) {
	setup := testbin.NewSetup(t, "")
	cfg, addr := setup.Config, setup.StartTLS

	if out, ok := starling(t, "first-secret\n", "user", "add", "--config", cfg, "alice@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	if out, ok := starling(t, "other\n", "user", "add", "--config", cfg, "alice@localhost"); ok {
		t.Fatalf("adding alice twice succeeded: %s", out)
	}
	if out, ok := starling(t, "x\n", "user", "add", "--config", cfg, "bob@elsewhere.example"); ok {
		t.Fatalf("a user on a host not served was added: %s", out)
	}
	if out, ok := starling(t, "", "user", "list", "--config", cfg); !ok || strings.TrimSpace(out) != "alice@localhost" {
		t.Fatalf("user list: %q", out)
	}
	if out, ok := starling(t, "second-secret\n", "user", "passwd", "--config", cfg, "alice@localhost"); !ok {
		t.Fatalf("user passwd: %s", out)
	}

	testbin.Start(t, testbin.Build(t), cfg)
	c := xmpptest.Dial(t, addr, "localhost")
	c.OpenStream()
	c.StartTLS(0)
	if err := c.Auth("SCRAM-SHA-1", "alice", "first-secret"); err == nil {
		t.Fatal("the old password still works")
	}
	alice := xmpptest.Login(t, addr, "localhost", "alice", "second-secret", "SCRAM-SHA-256", "laptop")

	if out, ok := starling(t, "", "user", "del", "--config", cfg, "alice@localhost"); !ok || !strings.Contains(out, "sessions ended") {
		t.Fatalf("user del: %s", out)
	}
	alice.ExpectStreamError("not-authorized")
	if out, ok := starling(t, "", "user", "list", "--config", cfg); !ok || strings.TrimSpace(out) != "" {
		t.Fatalf("user list after del: %q", out)
	}
}

// TestSignals: SIGHUP reloads the configuration without dropping sessions;
// SIGTERM sends <system-shutdown/> on every stream and exits with code 0
// (issue 2 part 11).
func TestSignals(t *testing.T) {
	setup := testbin.NewSetup(t, "[log]\nlevel = \"info\"\n")
	cfg, addr := setup.Config, setup.StartTLS
	if out, ok := starling(t, "alice-secret\n", "user", "add", "--config", cfg, "alice@localhost"); !ok {
		t.Fatalf("user add: %s", out)
	}
	p := testbin.Start(t, testbin.Build(t), cfg)
	alice := xmpptest.Login(t, addr, "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")

	setup.Write(t, "[log]\nlevel = \"debug\"\n")
	from := len(p.Log())
	p.Cmd.Process.Signal(syscall.SIGHUP)
	p.WaitLog(t, from, 10*time.Second, "the reload", func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	alice.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := alice.MustNext(); !strings.Contains(string(el.Raw), "result") {
		t.Fatalf("after SIGHUP: %s", el.Raw)
	}

	stopped := make(chan struct{})
	go func() {
		p.Stop()
		close(stopped)
	}()
	alice.ExpectStreamError("system-shutdown")
	<-stopped
}
