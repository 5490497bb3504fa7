// Package profanity checks Starling with Profanity (a terminal client on
// libstrophe, from Debian), driven in tmux: it logs in to the built binary
// over STARTTLS, sends a message that is checked on arrival, and shows one
// it receives.
package profanity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// waitScreen polls the screen until it contains want.
func (x *tmux) waitScreen(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(screenTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		screen := x.run(t, "capture-pane", "-p", "-t", "p")
		if strings.Contains(screen, want) {
			return
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

	setup := testbin.NewSetup(t, "")
	cfg, dir, addr := setup.Config, setup.DataDir, setup.StartTLS
	bin := testbin.Build(t)
	testbin.AddUser(t, bin, cfg, "alice@localhost", "alice-secret")
	testbin.AddUser(t, bin, cfg, "bob@localhost", "bob-secret")
	srv := testbin.Start(t, bin, cfg)

	bob := xmpptest.Login(t, addr, "localhost", "bob", "bob-secret", "SCRAM-SHA-256", "go")
	bob.Send("<presence/>")

	home := filepath.Join(dir, "home")
	x := &tmux{socket: "starling-" + randomHex(6), env: append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_DATA_HOME="+home+"/.local/share", "TERM=xterm")}
	x.run(t, "new-session", "-d", "-s", "p", "-x", "200", "-y", "50", "profanity")
	t.Cleanup(func() {
		exec.Command("tmux", "-L", x.socket, "kill-server").Run()
	})
	x.waitScreen(t, "/connect")

	// Log in over STARTTLS, trusting the server's self-signed certificate.
	from := len(srv.Log())
	host, port, _ := strings.Cut(addr, ":")
	x.keys(t, fmt.Sprintf("/connect alice@localhost server %s port %s tls trust", host, port))
	x.waitScreen(t, "password")
	x.keys(t, "alice-secret")
	x.waitScreen(t, "logged in successfully")
	line, _ := srv.WaitLog(t, from, screenTimeout, "alice's session", func(l string) bool {
		return strings.Contains(l, `msg="session bound"`) && strings.Contains(l, "jid=alice@localhost/")
	})
	t.Logf("server: %s", line)

	// A message from Profanity arrives at bob, from alice's full JID.
	body := "hello from profanity " + randomHex(4)
	x.keys(t, "/msg bob@localhost "+body)
	var alice string
	for alice == "" {
		el := bob.MustNext()
		var msg struct {
			XMLName xml.Name
			From    string `xml:"from,attr"`
			Body    string `xml:"body"`
		}
		xml.Unmarshal(el.Raw, &msg)
		if msg.XMLName.Local != "message" || msg.Body == "" {
			continue // presence, chat states
		}
		if msg.Body != body || !strings.HasPrefix(msg.From, "alice@localhost/") {
			t.Fatalf("bob received %s", el.Raw)
		}
		alice = msg.From
	}

	// bob's answer shows up in Profanity's chat window with him.
	reply := "hello profanity " + randomHex(4)
	bob.Send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", alice, reply))
	x.waitScreen(t, reply)
	x.keys(t, "/quit")
}
