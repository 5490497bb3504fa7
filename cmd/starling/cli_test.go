package main_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// run runs the built binary in dir (the working directory) and returns
// its standard output, standard error and exit code.
func run(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbin.CLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Build(t), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("starling %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// commandNames reads the commands out of `starling help`: the words after
// "starling" up to the first argument of each synopsis, which is followed
// by at least three spaces and the summary.
func commandNames(t *testing.T) []string {
	t.Helper()
	out, stderr, code := run(t, t.TempDir(), "", "help")
	if code != 0 {
		t.Fatalf("starling help: exit %d: %s", code, stderr)
	}
	var names []string
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, "  starling ")
		if !ok {
			continue
		}
		synopsis, _, _ := strings.Cut(rest, "   ") // the summary follows
		var words []string
		for _, w := range strings.Fields(synopsis) {
			if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "-") || strings.ToUpper(w) == w {
				break
			}
			words = append(words, w)
		}
		names = append(names, strings.Join(words, " "))
	}
	return names
}

// TestHelp: every command and group has -h and --help, which print its
// usage to standard output and exit 0 without doing anything: no
// ./data appears in the working directory (issue 17 part 1).
func TestHelp(t *testing.T) {
	names := commandNames(t)
	for _, want := range []string{"serve", "user add", "user list", "version", "sessions", "kick", "announce", "reload", "s2s"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("starling help does not list %q: %q", want, names)
		}
	}
	names = append(names, "user")
	for _, name := range names {
		for _, flag := range []string{"--help", "-h"} {
			dir := t.TempDir()
			args := append(strings.Fields(name), flag)
			out, stderr, code := run(t, dir, "", args...)
			if code != 0 || !strings.HasPrefix(out, "usage: starling "+name) {
				t.Errorf("starling %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("starling %s left %v in the working directory", strings.Join(args, " "), entries)
			}
		}
	}
	// Help after other arguments, and `starling help COMMAND`.
	if out, _, code := run(t, t.TempDir(), "", "user", "add", "alice@localhost", "--help"); code != 0 || !strings.Contains(out, "usage: starling user add") {
		t.Errorf("user add JID --help: exit %d: %q", code, out)
	}
	if out, _, code := run(t, t.TempDir(), "", "help", "kick"); code != 0 || !strings.Contains(out, "usage: starling kick") {
		t.Errorf("help kick: exit %d: %q", code, out)
	}
	// Wrong command lines exit 2 with a usage.
	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"user", "frob"}, {"user", "add"}, {"serve", "extra"}, {"version", "--nope"}, {"--config", "x.toml", "user", "list"}} {
		dir := t.TempDir()
		_, stderr, code := run(t, dir, "", args...)
		if code != 2 || !strings.Contains(stderr, "usage: starling") {
			t.Errorf("starling %s: exit %d, stderr %q; want 2 and a usage", strings.Join(args, " "), code, stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("starling %s left %v in the working directory", strings.Join(args, " "), entries)
		}
	}
}

// TestVersion: `starling version` names the version, Go's and the module.
func TestVersion(t *testing.T) {
	out, stderr, code := run(t, t.TempDir(), "", "version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"starling 0.", "go1.", "module github.com/starling-xmpp/starling"} {
		if !strings.Contains(out, want) {
			t.Errorf("version does not say %q:\n%s", want, out)
		}
	}
}

// TestFlagsAfterArguments: --config may follow the positional arguments,
// and "--" ends the flags.
func TestFlagsAfterArguments(t *testing.T) {
	setup := testbin.NewSetup(t, "")
	dir := t.TempDir()
	if out, stderr, code := run(t, dir, "secret\n", "user", "add", "alice@localhost", "--config", setup.Config); code != 0 {
		t.Fatalf("user add JID --config F: exit %d: %s%s", code, out, stderr)
	}
	if out, stderr, code := run(t, dir, "", "user", "list", "localhost", "--config="+setup.Config); code != 0 || strings.TrimSpace(out) != "alice@localhost" {
		t.Fatalf("user list HOST --config=F: exit %d: %q %s", code, out, stderr)
	}
	if out, stderr, code := run(t, dir, "", "user", "list", "--config", setup.Config, "--", "localhost"); code != 0 || strings.TrimSpace(out) != "alice@localhost" {
		t.Fatalf("user list --config F -- HOST: exit %d: %q %s", code, out, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the working directory got %v", entries)
	}
}

// TestRelativeDataDir: a relative data_dir in the file is relative to the
// file's directory, from any working directory and however the file is
// named; without a file, ./data is the working directory's.
func TestRelativeDataDir(t *testing.T) {
	base := t.TempDir()
	confDir := filepath.Join(base, "etc")
	os.Mkdir(confDir, 0o700)
	conf := filepath.Join(confDir, "starling.toml")
	os.WriteFile(conf, []byte("[server]\nhosts = [\"localhost\"]\ndata_dir = \"state\"\n[s2s]\nenabled = false\n"), 0o600)

	elsewhere := t.TempDir()
	if out, stderr, code := run(t, elsewhere, "secret\n", "user", "add", "--config", conf, "alice@localhost"); code != 0 {
		t.Fatalf("user add: exit %d: %s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(confDir, "state", "starling.db")); err != nil {
		t.Errorf("the database is not beside the file: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the working directory got %v", entries)
	}
	// The file named relatively, from its parent directory.
	if out, stderr, code := run(t, base, "", "user", "list", "--config", filepath.Join("etc", "starling.toml")); code != 0 || strings.TrimSpace(out) != "alice@localhost" {
		t.Errorf("user list from %s: exit %d: %q %s", base, code, out, stderr)
	}

	// The embedded defaults keep ./data in the working directory.
	cwd := t.TempDir()
	if out, stderr, code := run(t, cwd, "secret\n", "user", "add", "bob@localhost"); code != 0 {
		t.Fatalf("user add without --config: exit %d: %s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(cwd, "data", "starling.db")); err != nil {
		t.Errorf("without --config the database is not in ./data: %v", err)
	}
}

// TestHostNotServed: commands naming a host the configuration does not
// serve fail and say which hosts it serves.
func TestHostNotServed(t *testing.T) {
	setup := testbin.NewSetup(t, "")
	want := "elsewhere.example is not served (server.hosts: localhost)"
	for _, args := range [][]string{
		{"user", "list", "elsewhere.example"},
		{"user", "add", "bob@elsewhere.example"},
		{"user", "passwd", "bob@elsewhere.example"},
		{"user", "del", "bob@elsewhere.example"},
		{"sessions", "elsewhere.example"},
		{"kick", "bob@elsewhere.example"},
		{"announce", "--host", "elsewhere.example", "hello"},
	} {
		_, stderr, code := run(t, t.TempDir(), "secret\n", append(args, "--config", setup.Config)...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("starling %s: exit %d, stderr %q; want 1 and %q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// TestAdminCommandsNotRunning: the commands that ask the running server
// say that it is not running.
func TestAdminCommandsNotRunning(t *testing.T) {
	setup := testbin.NewSetup(t, "")
	for _, args := range [][]string{{"sessions"}, {"kick", "alice@localhost"}, {"announce", "hello"}, {"reload"}, {"s2s"}} {
		_, stderr, code := run(t, t.TempDir(), "", append(args, "--config", setup.Config)...)
		if code != 1 || !strings.Contains(stderr, "the server is not running") || !strings.Contains(stderr, setup.Config) {
			t.Errorf("starling %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
}

// poll runs starling with args until its standard output satisfies ok,
// failing the test after a deadline.
func poll(t *testing.T, what string, ok func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, stderr, code := run(t, t.TempDir(), "", args...)
		if code == 0 && ok(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("starling %s: %s never came: exit %d\n%s%s", strings.Join(args, " "), what, code, out, stderr)
		}
	}
}

// row returns the line of the sessions table for full.
func row(out, full string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, full+" ") {
			return line
		}
	}
	return ""
}

// TestAdminCommands: sessions, announce, kick and reload against a running
// server with real clients logged in (issue 17 part 1).
func TestAdminCommands(t *testing.T) {
	// A web listener with the generated certificate, for WebSocket and
	// BOSH clients.
	httpAddr := testbin.FreeAddr(t)
	web := fmt.Sprintf("[http]\ntls_listen = [%q]\n", httpAddr)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	setup := testbin.NewSetup(t, "[log]\nlevel = \"info\"\n"+web)
	cfg, addr := setup.Config, setup.StartTLS
	bin := testbin.Build(t)
	testbin.AddUser(t, bin, cfg, "alice@localhost", "alice-secret")
	testbin.AddUser(t, bin, cfg, "bob@localhost", "bob-secret")
	p := testbin.Start(t, bin, cfg)

	if out, stderr, code := run(t, t.TempDir(), "", "sessions", "--config", cfg); code != 0 || strings.TrimSpace(out) != "no sessions" {
		t.Fatalf("sessions with nobody online: exit %d: %q %s", code, out, stderr)
	}

	// alice: stream management with resumption, available, then
	// inactive (CSI); bob: bound only.
	alice := xmpptest.Login(t, addr, "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	alice.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	if el := alice.MustNext(); el.Name.Local != "enabled" {
		t.Fatalf("enable: %s", el.Raw)
	}
	alice.Send("<presence/>")
	for el := alice.MustNext(); el.Name.Local != "presence"; el = alice.MustNext() {
	}
	bob := xmpptest.Login(t, addr, "localhost", "bob", "bob-secret", "PLAIN", "phone")
	bobWeb := xmpptest.LoginWebSocket(t, "wss://"+httpAddr+"/xmpp-websocket", "localhost",
		&websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPClient: hc}, "SCRAM-SHA-256", "bob", "bob-secret", "web")
	bobBOSH := xmpptest.LoginBOSH(t, hc, "https://"+httpAddr+"/http-bind", "localhost", "SCRAM-SHA-256", "bob", "bob-secret", "bosh")

	out := poll(t, "alice available and resumable", func(out string) bool {
		r := row(out, "alice@localhost/laptop")
		return strings.Contains(r, "resumable") && strings.Contains(r, "available 0")
	}, "sessions", "--config", cfg)
	t.Logf("starling sessions:\n%s", out)
	for _, want := range []string{"JID", "TRANSPORT", "4 sessions"} {
		if !strings.Contains(out, want) {
			t.Errorf("sessions does not show %q:\n%s", want, out)
		}
	}
	a, b := strings.Fields(row(out, "alice@localhost/laptop")), strings.Fields(row(out, "bob@localhost/phone"))
	if len(a) < 8 || a[1] != "tcp" || !strings.HasPrefix(a[2], "127.0.0.1:") || a[3] != "tls" || a[7] != "active" {
		t.Errorf("alice's row: %q", a)
	}
	if len(b) < 9 || b[1] != "tcp" || b[6] != "off" || b[7] != "active" || b[8] != "unavailable" {
		t.Errorf("bob's row: %q", b)
	}
	if w := strings.Fields(row(out, "bob@localhost/web")); len(w) < 4 || w[1] != "websocket" || !strings.HasPrefix(w[2], "127.0.0.1:") || w[3] != "tls" {
		t.Errorf("bob's WebSocket row: %q", w)
	}
	if w := strings.Fields(row(out, "bob@localhost/bosh")); len(w) < 2 || w[1] != "bosh" {
		t.Errorf("bob's BOSH row: %q", w)
	}
	alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	poll(t, "alice inactive", func(out string) bool {
		return strings.Contains(row(out, "alice@localhost/laptop"), " inactive ")
	}, "sessions", "localhost", "--config", cfg)
	alice.Send("<active xmlns='urn:xmpp:csi:0'/>")

	// An announcement reaches the available session, as a headline from
	// the host; bob is not available.
	if out, stderr, code := run(t, t.TempDir(), "", "announce", "--config", cfg, "Maintenance", "at", "<noon> & after"); code != 0 || strings.TrimSpace(out) != "sent to 1 session" {
		t.Fatalf("announce: exit %d: %q %s", code, out, stderr)
	}
	for {
		el := alice.MustNext()
		if el.Name.Local != "message" {
			continue
		}
		raw := string(el.Raw)
		if xmpptest.Attr(el, "type") != "headline" || xmpptest.Attr(el, "from") != "localhost" ||
			!strings.Contains(raw, "Maintenance at &lt;noon&gt; &amp; after") {
			t.Fatalf("announcement: %s", raw)
		}
		break
	}

	// A session whose connection broke waits for its client to resume it.
	tablet := xmpptest.Login(t, addr, "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "tablet")
	tablet.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	if el := tablet.MustNext(); el.Name.Local != "enabled" {
		t.Fatalf("enable: %s", el.Raw)
	}
	tablet.Close()
	poll(t, "the tablet detached", func(out string) bool {
		return strings.Contains(row(out, "alice@localhost/tablet"), " detached until ")
	}, "sessions", "--config", cfg)

	// kick: one session by its full JID, with the reason in the stream
	// error; then the account's other one, detached; a JID without
	// sessions is an error.
	from := len(p.Log())
	if out, stderr, code := run(t, t.TempDir(), "", "kick", "alice@localhost/laptop", "no", "spam", "--config", cfg); code != 0 || strings.TrimSpace(out) != "alice@localhost/laptop: 1 session ended" {
		t.Fatalf("kick: exit %d: %q %s", code, out, stderr)
	}
	alice.ExpectStreamError("policy-violation")
	p.WaitLog(t, from, 10*time.Second, "the kick", func(l string) bool {
		return strings.Contains(l, "sessions ended by an administrator") && strings.Contains(l, "no spam")
	})
	if out, stderr, code := run(t, t.TempDir(), "", "kick", "alice@localhost", "--config", cfg); code != 0 || strings.TrimSpace(out) != "alice@localhost: 1 session ended" {
		t.Fatalf("kick of the detached session: exit %d: %q %s", code, out, stderr)
	}
	if _, stderr, code := run(t, t.TempDir(), "", "kick", "alice@localhost", "--config", cfg); code != 1 || !strings.Contains(stderr, "alice@localhost has no session") {
		t.Errorf("kick without sessions: exit %d: %s", code, stderr)
	}
	if out, stderr, code := run(t, t.TempDir(), "", "kick", "bob@localhost", "--config", cfg); code != 0 || strings.TrimSpace(out) != "bob@localhost: 3 sessions ended" {
		t.Fatalf("kick bob: exit %d: %q %s", code, out, stderr)
	}
	bob.ExpectStreamError("policy-violation")
	bobWeb.ExpectStreamError("policy-violation")
	bobBOSH.ExpectStreamError("policy-violation")

	// reload: the configuration's problem is the answer; the server
	// keeps running on the old one; fixed, it reloads.
	// The CLI reads the file first; a copy of the good one finds the
	// server's data directory while the server's own file is broken.
	good, _ := os.ReadFile(cfg)
	cliConf := filepath.Join(t.TempDir(), "cli.toml")
	os.WriteFile(cliConf, good, 0o600)
	os.WriteFile(cfg, []byte("[server]\nhosts = [\"localhost\"]\n[limits]\nmax_stanza_bytes = \"big\"\n"), 0o600)
	if _, stderr, code := run(t, t.TempDir(), "", "reload", "--config", cfg); code != 1 || !strings.Contains(stderr, "limits.max_stanza_bytes") || !strings.Contains(stderr, "not asked") {
		t.Errorf("reload with a bad file: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, t.TempDir(), "", "reload", "--config", cliConf); code != 1 || !strings.Contains(stderr, "limits.max_stanza_bytes") || !strings.Contains(stderr, "keeps its configuration") {
		t.Errorf("reload of a server whose file is bad: exit %d: %s", code, stderr)
	}
	setup.Write(t, "[log]\nlevel = \"debug\"\n"+web)
	from = len(p.Log())
	if out, stderr, code := run(t, t.TempDir(), "", "reload", "--config", cfg); code != 0 || strings.TrimSpace(out) != "configuration reloaded" {
		t.Fatalf("reload: exit %d: %q %s", code, out, stderr)
	}
	p.WaitLog(t, from, 10*time.Second, "the reload", func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	xmpptest.Login(t, addr, "localhost", "alice", "alice-secret", "SCRAM-SHA-256", "again")
}
