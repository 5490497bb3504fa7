// Package profanity checks Starling with Profanity (a terminal client on
// libstrophe, from Debian), driven in tmux: it logs in to the built binary
// over STARTTLS, sends a message that is checked on arrival, and shows one
// it receives. TestProfanityOMEMO (omemo_test.go, on Starling only) has it
// exchange OMEMO messages with python-omemo, through Starling's PEP.
//
// With STARLING_ANCHOR set (internal/anchorenv; `make conformance-anchors`)
// the same checks run against that server instead, such as Prosody or
// ejabberd; the cross-check against Starling's log is skipped there.
package profanity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// screenTimeout bounds each wait for Profanity's screen.
const screenTimeout = 20 * time.Second

// tmux runs Profanity in a tmux server of its own.
type tmux struct {
	socket string
	env    []string
	log    string // Profanity's log file, if the test reads it
}

func (x *tmux) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tmux", append([]string{"-L", x.socket}, args...)...)
	cmd.Env = x.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys types text followed by Enter.
func (x *tmux) keys(t *testing.T, text string) {
	t.Helper()
	x.run(t, "send-keys", "-t", "p", "-l", text)
	x.run(t, "send-keys", "-t", "p", "Enter")
}

// waitScreen polls the screen until it contains want, and returns it.
func (x *tmux) waitScreen(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(screenTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		screen := x.run(t, "capture-pane", "-p", "-t", "p")
		if strings.Contains(screen, want) {
			return screen
		}
		if time.Now().After(deadline) {
			t.Fatalf("Profanity's screen never showed %q; it shows:\n%s", want, screen)
		}
		<-tick.C
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestProfanity(t *testing.T) {
	_, perr := exec.LookPath("profanity")
	_, terr := exec.LookPath("tmux")
	testbin.Require(t, "profanity and tmux (Debian packages)", perr == nil && terr == nil)

	if name := anchorenv.Name(); name != "" {
		t.Run(name, func(t *testing.T) {
			a := anchorenv.FromEnv(t)
			runChecks(t, &server{anchor: a, domain: a.Domain, starttls: a.Addr("starttls"), passwords: a.Passwords})
		})
		return
	}
	// Starling on its default storage, SQLite: the subtest is named after
	// it, as in conformance/realclients, for conformance/anchors' table.
	t.Run("sqlite", func(t *testing.T) {
		setup := testbin.NewSetup(t, "")
		bin := testbin.Build(t)
		srv := &server{domain: "localhost", starttls: setup.StartTLS,
			passwords: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}}
		for _, user := range []string{"alice", "bob"} {
			testbin.AddUser(t, bin, setup.Config, user+"@"+srv.domain, srv.passwords[user])
		}
		srv.proc = testbin.Start(t, bin, setup.Config)
		runChecks(t, srv)
	})
}

// server is the server under test: Starling started by the test, or an
// anchor (internal/anchorenv).
type server struct {
	proc      *testbin.Proc     // Starling; nil for an anchor
	anchor    *anchorenv.Server // nil for Starling
	domain    string
	starttls  string // host:port
	passwords map[string]string
}

// runChecks has Profanity log in as alice over STARTTLS, send bob a
// message and show bob's answer, each a subtest that needs the one before.
// bob is a test client that logs in with SCRAM-SHA-256 (on an anchor, the
// strongest plain SCRAM it offers).
func runChecks(t *testing.T, srv *server) {
	mech := "SCRAM-SHA-256"
	if srv.anchor != nil {
		mech = srv.anchor.SCRAM(t, "starttls")
	}
	bob := xmpptest.Login(t, srv.starttls, srv.domain, "bob", srv.passwords["bob"], mech, "profanity-peer")
	bob.Send("<presence/>")

	home := t.TempDir()
	x := &tmux{socket: "starling-" + randomHex(6), env: append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_DATA_HOME="+home+"/.local/share", "TERM=xterm")}
	x.run(t, "new-session", "-d", "-s", "p", "-x", "200", "-y", "50", "profanity")
	t.Cleanup(func() {
		exec.Command("tmux", "-L", x.socket, "kill-server").Run()
	})
	x.waitScreen(t, "/connect")

	// Log in over STARTTLS, trusting the server's self-signed certificate
	// (Profanity's "tls trust" accepts it without checking).
	ok := t.Run("login", func(t *testing.T) {
		from := 0
		if srv.proc != nil {
			from = len(srv.proc.Log())
		}
		host, port, _ := strings.Cut(srv.starttls, ":")
		x.keys(t, fmt.Sprintf("/connect alice@%s server %s port %s tls trust", srv.domain, host, port))
		x.waitScreen(t, "password")
		x.keys(t, srv.passwords["alice"])
		x.waitScreen(t, "logged in successfully")
		t.Run("server-log", func(t *testing.T) {
			if srv.proc == nil {
				t.Skip("cross-checks alice's session in Starling's \"session bound\" log line; the log of a server not started by the test is not read")
			}
			line, _ := srv.proc.WaitLog(t, from, screenTimeout, "alice's session", func(l string) bool {
				return strings.Contains(l, `msg="session bound"`) && strings.Contains(l, "jid=alice@"+srv.domain+"/")
			})
			t.Logf("server: %s", line)
		})
	})
	if !ok {
		return
	}

	// A message from Profanity arrives at bob, from alice's full JID.
	var alice string
	ok = t.Run("send", func(t *testing.T) {
		tag := randomHex(4)
		body := "hello from profanity " + tag
		x.keys(t, "/msg bob@"+srv.domain+" "+body)
		for alice == "" {
			el := bob.MustNext()
			var msg struct {
				XMLName xml.Name
				From    string `xml:"from,attr"`
				Body    string `xml:"body"`
			}
			xml.Unmarshal(el.Raw, &msg)
			if msg.XMLName.Local != "message" || !strings.Contains(msg.Body, tag) {
				// Presence, chat states; on an anchor, messages to bob
				// that other checks left offline.
				t.Logf("bob: ignoring %s", el.Raw)
				continue
			}
			if msg.Body != body || !strings.HasPrefix(msg.From, "alice@"+srv.domain+"/") {
				t.Fatalf("bob received %s", el.Raw)
			}
			alice = msg.From
		}
	})
	if !ok {
		return
	}

	// bob's answer shows up in Profanity's chat window with him.
	t.Run("receive", func(t *testing.T) {
		reply := "hello profanity " + randomHex(4)
		bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", alice, reply))
		x.waitScreen(t, reply)
	})
	x.keys(t, "/quit")
}
