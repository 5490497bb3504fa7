// Package migration moves users between Starling and the real servers it
// is compared with, through XEP-0227 files, both ways (issue 17 part 5):
//
//   - TestEjabberd: accounts with a roster and a vCard made on ejabberd
//     (internal/anchor), exported with `ejabberdctl export_piefxis DIR`,
//     imported with `starling import`; a Starling user exported with
//     `starling export --scram-hash SHA-256` and imported with
//     `ejabberdctl import_piefxis FILE`. Each user then logs in to the
//     other server with the original password and finds the roster and
//     the vCard.
//   - TestProsody: the same with Prosody 0.12, whose prosody-migrator
//     converts between its internal storage and mod_storage_xep0227's
//     files (a file per account, `starling export --per-user`). The
//     migrator writes that driver's files only in its compiled-in data
//     directory, /var/lib/prosody: it runs in a private mount namespace
//     where the test's directory is bind-mounted there.
//
// The servers are installed from Debian packages (make deps, or
// anchor.Install) and run as root; without root or packages the tests
// skip, and fail under STARLING_REQUIRE_ALL=1.
package migration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/stream"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// The anchors' addresses, which no other test uses; both serve
// anchor.Domain, localhost, as the Starling servers do.
const (
	ejabberdAddr = "127.0.0.41"
	prosodyAddr  = "127.0.0.42"
	domain       = anchor.Domain
)

var install struct {
	once sync.Once
	err  error
}

// requireAnchors checks that this test can run Prosody and ejabberd: root,
// and both installed (anchor.Install installs them the first time).
func requireAnchors(t *testing.T) {
	t.Helper()
	testbin.Require(t, "root (to install and run Prosody and ejabberd)", os.Getuid() == 0)
	install.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		install.err = anchor.Install(ctx)
	})
	testbin.Require(t, fmt.Sprintf("prosody and ejabberd from Debian packages: %v", install.err), install.err == nil)
}

func startAnchor(t *testing.T, name, addr string, accounts map[string]string) *anchor.Server {
	t.Helper()
	if err := anchor.RaiseOpenFiles(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := anchor.Start(ctx, anchor.Options{Name: name, Addr: addr, Dir: openDir(t), Accounts: accounts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s's logs:\n%s", name, s.Tail())
		}
	})
	return s
}

// openDir is a new directory every user may enter, as t.TempDir's are
// not: prosody-migrator runs as the prosody user and reads the anchor's
// data directory in it.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "migration-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// starling runs the built binary and returns its combined output.
func starling(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbin.CLITimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, testbin.Build(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("starling %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// starlingServer is a configuration of a Starling server on localhost,
// with the binary started when start is called.
func starlingServer(t *testing.T) testbin.Setup { return testbin.NewSetup(t, "") }

// fill has user, logged in on the server at addr, add contact to its
// roster in the group Friends and set its vCard's FN to fn.
func fill(t *testing.T, addr, user, password, mech, contact, fn string) {
	t.Helper()
	c := xmpptest.Login(t, addr, domain, user, password, mech, "fill")
	defer c.Close()
	c.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='" + contact + "' name='Buddy'><group>Friends</group></item></query></iq>")
	c.Send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>" + fn + "</FN></vCard></iq>")
	for got := 0; got < 2; {
		el := c.MustNext()
		if el.Name.Local == "iq" && (el.AttrValue("id") == "r1" || el.AttrValue("id") == "v1") {
			if el.AttrValue("type") != "result" {
				t.Fatalf("%s", el.Raw)
			}
			got++
		}
	}
}

// check logs user in on the server at addr with mech and checks what
// fill set: the contact in the roster, in its group, and the vCard (when
// fn is not "").
func check(t *testing.T, addr, user, password, mech, contact, fn string) {
	t.Helper()
	c := xmpptest.Login(t, addr, domain, user, password, mech, "check")
	defer c.Close()
	c.Send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	el := next(t, c, "r2")
	if raw := string(el.Raw); !strings.Contains(raw, "'"+contact+"'") && !strings.Contains(raw, `"`+contact+`"`) || !strings.Contains(raw, "Friends") {
		t.Errorf("%s's roster on %s: %s", user, addr, raw)
	}
	if fn == "" {
		return
	}
	c.Send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
	if el := next(t, c, "v2"); !strings.Contains(string(el.Raw), fn) {
		t.Errorf("%s's vCard on %s: %s", user, addr, el.Raw)
	}
}

// next returns the IQ answer with that id, skipping anything else.
func next(t *testing.T, c *xmpptest.Client, id string) *stream.Element {
	t.Helper()
	for {
		el := c.MustNext()
		if el.Name.Local == "iq" && el.AttrValue("id") == id {
			return el
		}
	}
}

// TestEjabberd: ejabberd → Starling with ejabberd's export, and Starling
// → ejabberd with its import.
func TestEjabberd(t *testing.T) {
	requireAnchors(t)
	ej := startAnchor(t, "ejabberd", ejabberdAddr, map[string]string{"alice": "alice's secret", "bob": "bob-pw"})
	ejAddr := ejabberdAddr + ":" + anchor.StartTLSPort
	// The anchor stores SCRAM-SHA-256 keys only (auth_scram_hash: sha256).
	fill(t, ejAddr, "alice", "alice's secret", "SCRAM-SHA-256", "bob@localhost", "Alice from ejabberd")

	t.Run("to Starling", func(t *testing.T) {
		dir := openDir(t) // ejabberd writes it as its own user
		if err := exec.Command("chown", "ejabberd:ejabberd", dir).Run(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := ej.Ejabberdctl(ctx, "export_piefxis", dir); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("ejabberdctl export_piefxis: %s", out)
		}
		// The main file, YYYYMMDD-hhmmss.xml, includes the host's,
		// YYYYMMDD-hhmmss_localhost.xml.
		files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		main := ""
		for _, f := range files {
			if !strings.Contains(filepath.Base(f), "_") {
				main = f
			}
		}
		if main == "" {
			t.Fatalf("no main file among %q", files)
		}
		if data, err := os.ReadFile(strings.TrimSuffix(main, ".xml") + "_localhost.xml"); err != nil || !strings.Contains(string(data), "scram-credentials") {
			t.Fatalf("ejabberd's host file: %v\n%s", err, data)
		}
		s := starlingServer(t)
		out := starling(t, "import", "--config", s.Config, main)
		if !strings.Contains(out, "2 accounts, 1 roster items, 1 vCards") {
			t.Errorf("import: %s", out)
		}
		testbin.Start(t, testbin.Build(t), s.Config)
		check(t, s.StartTLS, "alice", "alice's secret", "SCRAM-SHA-256", "bob@localhost", "Alice from ejabberd")
		xmpptest.Login(t, s.StartTLS, domain, "bob", "bob-pw", "PLAIN", "check").Close()
	})

	t.Run("from Starling", func(t *testing.T) {
		s := starlingServer(t)
		cmd := exec.Command(testbin.Build(t), "user", "add", "--config", s.Config, "carol@localhost")
		cmd.Stdin = strings.NewReader("carol's secret\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
		srv := testbin.Start(t, testbin.Build(t), s.Config)
		fill(t, s.StartTLS, "carol", "carol's secret", "SCRAM-SHA-256", "dave@example.net", "Carol from Starling")
		srv.Stop()
		dir := openDir(t) // ejabberd reads it as its own user
		file := filepath.Join(dir, "starling.xml")
		// ejabberd keeps the first family: the one it uses; and it
		// reads the values base64-encoded twice.
		starling(t, "export", "--config", s.Config, "--ejabberd", "--scram-hash", "SHA-256,SHA-1", file)
		for _, p := range []string{dir, file} {
			if err := exec.Command("chown", "ejabberd:ejabberd", p).Run(); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := ej.Ejabberdctl(ctx, "import_piefxis", file); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("ejabberdctl import_piefxis: %s", out)
		}
		check(t, ejAddr, "carol", "carol's secret", "SCRAM-SHA-256", "dave@example.net", "Carol from Starling")
		xmpptest.Login(t, ejAddr, domain, "carol", "carol's secret", "PLAIN", "plain").Close()
	})
}

// migrate runs prosody-migrator with a configuration of input and output
// stores for host, in a private mount namespace where dir is
// /var/lib/prosody, the only place the migrator's xep0227 driver uses.
// The migrator becomes the prosody user: dir and data are handed to it.
func migrate(t *testing.T, dir, input, output, stores string, chown ...string) {
	t.Helper()
	cfg := filepath.Join(openDir(t), "migrator.cfg.lua") // read as the prosody user
	conf := fmt.Sprintf("input { %s; hosts = { [%q] = %s } }\noutput { %s }\n", input, domain, stores, output)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{dir}, chown...) {
		if out, err := exec.Command("chown", "-R", "prosody:prosody", p).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", p, err, out)
		}
	}
	const script = `mount --bind "$1" /var/lib/prosody && shift && exec "$@"`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
		dir, "prosody-migrator", "--config", cfg, "input", "output").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Done!") {
		t.Fatalf("prosody-migrator: %v\n%s", err, out)
	}
	t.Logf("prosody-migrator:\n%s", out)
}

// The stores prosody-migrator moves: what Prosody 0.12's
// mod_storage_xep0227 has a handler for, which leaves out offline
// messages (offline-archive) and the blocklist. Out of XEP-0227 files it
// cannot move the archive: the migrator asks for the host's archive
// first, which the driver answers with an error.
const (
	toXEP0227   = `{ "accounts", "roster", "vcard", "private", "pep-pubsub", "archive-archive" }`
	fromXEP0227 = `{ "accounts", "roster", "vcard", "private", "pep-pubsub" }`
)

// TestProsody: Prosody → Starling and Starling → Prosody, through
// prosody-migrator and mod_storage_xep0227's files.
func TestProsody(t *testing.T) {
	requireAnchors(t)
	if _, err := os.Stat("/usr/lib/prosody/modules/mod_storage_xep0227.lua"); err != nil {
		testbin.Require(t, "Prosody's mod_storage_xep0227 (Prosody 0.12 or later)", false)
	}
	if _, err := os.Stat("/var/lib/prosody"); err != nil {
		testbin.Require(t, "/var/lib/prosody, the migrator's data directory", false)
	}
	pr := startAnchor(t, "prosody", prosodyAddr, map[string]string{"alice": "alice's secret", "bob": "bob-pw"})
	prAddr := prosodyAddr + ":" + anchor.StartTLSPort
	// Prosody stores SCRAM-SHA-1 keys (internal_hashed).
	fill(t, prAddr, "alice", "alice's secret", "SCRAM-SHA-1", "bob@localhost", "Alice from Prosody")

	t.Run("to Starling", func(t *testing.T) {
		out := t.TempDir()
		migrate(t, out, fmt.Sprintf("type = %q; path = %q", "internal", pr.ProsodyData()), `type = "xep0227"`, toXEP0227, pr.ProsodyData())
		files, _ := filepath.Glob(filepath.Join(out, "*@localhost.xml"))
		if len(files) != 2 {
			t.Fatalf("the migrator wrote %q", files)
		}
		s := starlingServer(t)
		res := starling(t, append([]string{"import", "--config", s.Config}, files...)...)
		if strings.Count(res, "1 accounts") != 2 || !strings.Contains(res, "1 roster items") {
			t.Errorf("import: %s", res)
		}
		testbin.Start(t, testbin.Build(t), s.Config)
		// Prosody keeps a vCard set with vcard-temp as vCard4 in PEP
		// (mod_vcard_legacy); it comes as a PEP node, not as a
		// vcard-temp document.
		check(t, s.StartTLS, "alice", "alice's secret", "SCRAM-SHA-1", "bob@localhost", "")
		xmpptest.Login(t, s.StartTLS, domain, "bob", "bob-pw", "PLAIN", "check").Close()
	})

	t.Run("from Starling", func(t *testing.T) {
		s := starlingServer(t)
		cmd := exec.Command(testbin.Build(t), "user", "add", "--config", s.Config, "carol@localhost")
		cmd.Stdin = strings.NewReader("carol's secret\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
		srv := testbin.Start(t, testbin.Build(t), s.Config)
		fill(t, s.StartTLS, "carol", "carol's secret", "SCRAM-SHA-256", "dave@example.net", "Carol from Starling")
		srv.Stop()
		dir := filepath.Join(t.TempDir(), "export")
		starling(t, "export", "--config", s.Config, "--per-user", dir)
		// Into the running Prosody's data directory: its internal
		// storage reads the files at login.
		migrate(t, dir, `type = "xep0227"`, fmt.Sprintf("type = %q; path = %q", "internal", pr.ProsodyData()), fromXEP0227, pr.ProsodyData())
		check(t, prAddr, "carol", "carol's secret", "SCRAM-SHA-1", "dave@example.net", "Carol from Starling")
	})
}
