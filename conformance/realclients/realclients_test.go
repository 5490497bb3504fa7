// Package realclients drives third-party XMPP clients, installed from
// Debian packages, against Starling started from its built binary
// (issue 2, "Done means"; issue 3 part 2).
//
// For each storage backend (SQLite, and PostgreSQL via pgtest.Database)
// one server runs with a STARTTLS and a direct TLS (XEP-0368) listener on
// free loopback ports, and accounts alice and bob with random passwords.
// Each case of the matrix
//
//	client ∈ {slixmpp, nbxmpp, go-sendxmpp} × transport ∈ {starttls, directtls} × mechanism ∈ {SCRAM-SHA-1, SCRAM-SHA-256, PLAIN}
//
// logs in as alice with that client, transport and mechanism and sends a
// chat message with a unique body to bob@localhost/<resource>, where a
// slixmpp receiver logged in as bob must get exactly that body from
// alice@localhost/<alice's resource>. Clients verify the server's
// self-signed certificate against data_dir/certs/localhost.crt, not with
// verification turned off. The mechanism used is checked twice: by the
// client (slixmpp's chosen mechanism; for nbxmpp, the one in the <auth/> it
// sent) and by the server's "session bound" log line, which must also say
// whether the stream was direct TLS.
//
// Where a client cannot do a combination (go-sendxmpp has no SCRAM), the
// case is skipped with the reason. More checks per backend, for the
// receiving side of the other clients: go-sendxmpp-receives
// (go-sendxmpp --listen as bob gets slixmpp's message) and
// nbxmpp-receives (nbxmpp as bob gets slixmpp's message), per transport;
// nbxmpp-defaults (nbxmpp with no forced mechanism must log in) and
// slixmpp-defaults (slixmpp with no forced mechanism; see slixmppDefaults
// for its known failure). slixmpp runs its SCRAM with its channel binding
// hidden; see slixmppMech for why. nbxmpp needs no such help: it never
// tries -PLUS and its plain SCRAMs send the gs2 flag "n".
//
// With STARLING_ANCHOR set, the same checks run against a server this test
// did not start, such as Prosody or ejabberd (anchor_test.go; `make
// conformance-anchors`). The cross-checks against Starling's log are the
// "server-log" subtests, skipped there with the reason.
//
// Prerequisites (python3-slixmpp and python3-nbxmpp run by
// /usr/bin/python3, go-sendxmpp) are checked with testbin.Require: a skip,
// or a failure under STARLING_REQUIRE_ALL=1.
package realclients

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/anchorenv"
	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

const (
	starlingDomain = "localhost" // the domain Starling serves here
	// clientTimeout bounds every client process; the scripts' own
	// timeout is a little shorter so they can report what they saw.
	clientTimeout = 30 * time.Second
	scriptTimeout = 25 * time.Second
	python        = "/usr/bin/python3" // Debian's, which has python3-slixmpp and python3-nbxmpp
)

var (
	transports = anchorenv.Transports
	mechanisms = []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}
)

// server is one running server under test with its accounts: Starling
// started here, or an anchor (see anchor_test.go).
type server struct {
	proc                *testbin.Proc     // nil for a server not started here
	anchor              *anchorenv.Server // the anchor, with the mechanisms it offers; nil for Starling
	host                string            // IP address the clients connect to
	domain              string            // the XMPP domain of the accounts
	cert                string            // the certificate (PEM) clients trust: self-signed, so also the CA
	starttls, directTLS int               // ports
	passwords           map[string]string
}

func (s *server) port(transport string) int {
	if transport == "directtls" {
		return s.directTLS
	}
	return s.starttls
}

// TestRealClients runs every check against Starling on each storage
// backend or, when STARLING_ANCHOR is set, against that external server
// only (see anchor_test.go).
func TestRealClients(t *testing.T) {
	if name := anchorenv.Name(); name != "" {
		t.Run(name, func(t *testing.T) {
			runChecks(t, anchorServer(t))
		})
		return
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = pgtest.Database(t)
			}
			runChecks(t, startServer(t, backend, dsn))
		})
	}
}

// runChecks runs every check against srv, each as a subtest.
func runChecks(t *testing.T, srv *server) {
	for _, client := range []string{"slixmpp", "nbxmpp", "go-sendxmpp"} {
		for _, transport := range transports {
			for _, mech := range mechanisms {
				t.Run(client+"/"+transport+"/"+mech, func(t *testing.T) {
					runCase(t, srv, client, transport, mech)
				})
			}
		}
	}
	// The other direction: go-sendxmpp receives.
	for _, transport := range transports {
		t.Run("go-sendxmpp-receives/"+transport, func(t *testing.T) {
			goSendxmppReceives(t, srv, transport)
		})
	}
	// The other direction: nbxmpp receives.
	for _, transport := range transports {
		t.Run("nbxmpp-receives/"+transport, func(t *testing.T) {
			nbxmppReceives(t, srv, transport)
		})
	}
	for _, transport := range transports {
		t.Run("nbxmpp-defaults/"+transport, func(t *testing.T) {
			nbxmppDefaults(t, srv, transport)
		})
	}
	// Last, because failed attempts count towards the per-address
	// login throttle that every case shares.
	t.Run("slixmpp-defaults", func(t *testing.T) {
		slixmppDefaults(t, srv)
	})
}

// startServer writes a config for backend, starts Starling and adds alice
// and bob.
func startServer(t *testing.T, backend, dsn string) *server {
	bin := testbin.Build(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := &server{
		host:      "127.0.0.1",
		domain:    starlingDomain,
		cert:      filepath.Join(data, "certs", starlingDomain+".crt"),
		starttls:  testbin.FreePort(t),
		directTLS: testbin.FreePort(t),
		passwords: map[string]string{"alice": randomHex(12), "bob": randomHex(12)},
	}
	cfg := fmt.Sprintf(`[server]
hosts = [%q]
data_dir = %q

[s2s]
enabled = false

[c2s]
listen = ["127.0.0.1:%d"]
direct_tls_listen = ["127.0.0.1:%d"]

[storage]
driver = %q
dsn = %q

[log]
level = "debug"
`, s.domain, data, s.starttls, s.directTLS, backend, dsn)
	path := filepath.Join(dir, "starling.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("config %s:\n%s", path, cfg)
	s.proc = testbin.Start(t, bin, path)
	// Accounts are added while the server runs, as an operator would.
	for _, user := range []string{"alice", "bob"} {
		testbin.AddUser(t, bin, path, user+"@"+s.domain, s.passwords[user])
	}
	if _, err := os.Stat(s.cert); err != nil {
		t.Fatalf("generated certificate: %v", err)
	}
	return s
}

// runCase is one cell of the matrix.
func runCase(t *testing.T, srv *server, client, transport, mech string) {
	requireSlixmpp(t) // the receiver
	switch client {
	case "nbxmpp":
		requireNbxmpp(t)
	case "go-sendxmpp":
		requireGoSendxmpp(t)
		if mech != "PLAIN" {
			// go-sendxmpp 0.5.6 (Debian bookworm) is built on a
			// github.com/mattn/go-xmpp that implements only PLAIN,
			// DIGEST-MD5, X-OAUTH2 and ANONYMOUS (its binary holds no
			// SCRAM code at all), and it has no flag to choose one.
			t.Skipf("go-sendxmpp %s cannot do %s: its go-xmpp speaks only PLAIN (and DIGEST-MD5, X-OAUTH2, ANONYMOUS)", goSendxmppVersion, mech)
		}
	}
	srv.requireOffered(t, transport, mech)
	tag := randomHex(8)
	aliceRes := "rc-" + client + "-" + transport + "-" + tag
	bobRes := "recv-" + tag
	alice := "alice@" + srv.domain + "/" + aliceRes
	bob := "bob@" + srv.domain + "/" + bobRes
	// Unique, and with characters that must be escaped in XML and that
	// are outside ASCII, so the check covers the escaping on both sides.
	body := fmt.Sprintf("starling %s %s <&> \"quoted\" 'apos' héllo ☃ %s", client, transport, tag)

	// The receiver: slixmpp as bob, STARTTLS, SCRAM-SHA-256. It is bound
	// before the sender starts.
	logStart := 0
	if srv.proc != nil {
		logStart = len(srv.proc.Log())
	}
	recv := startScript(t, "slixmpp", "receiver", srv, bob, srv.passwords["bob"], "starttls", slixmppMech(srv.scram(t, "starttls"), "--expect", tag)...)
	sess := recv.waitEvent(t, "session")
	t.Logf("receiver bound as %s with %s over %s", sess.JID, sess.Mechanism, sess.TLS)

	switch client {
	case "slixmpp", "nbxmpp":
		extra := []string{"--mech", mech}
		if client == "slixmpp" {
			extra = slixmppMech(mech)
		}
		send := startScript(t, client, "sender", srv, alice, srv.passwords["alice"], transport, append(extra, "--send-to", bob, "--body", body)...)
		send.checkSession(t, alice, mech)
		send.wait(t)
	case "go-sendxmpp":
		runGoSendxmpp(t, srv, transport, "alice@"+srv.domain, srv.passwords["alice"], aliceRes, bob, body)
	}

	msg := recv.waitMessage(t, tag)
	if msg.Body != body {
		t.Errorf("bob received body %q, want %q", msg.Body, body)
	}
	if msg.From != alice {
		t.Errorf("bob received the message from %q, want %q", msg.From, alice)
	}
	if msg.To != bob {
		t.Errorf("bob received the message addressed to %q, want %q", msg.To, bob)
	}
	if msg.Type != "chat" {
		t.Errorf("bob received a message of type %q, want chat", msg.Type)
	}
	recv.wait(t)
	checkServerLogin(t, srv, logStart, alice, transport, mech)
}

// checkServerLogin checks the server's side of jid's login, from its log
// line index logStart on: bound, with mech, over transport. It is a
// subtest of its own, "server-log", skipped for a server not started here,
// which has no log to check.
func checkServerLogin(t *testing.T, srv *server, logStart int, jid, transport, mech string) {
	t.Helper()
	t.Run("server-log", func(t *testing.T) {
		if srv.proc == nil {
			t.Skip("cross-checks the mechanism and transport in Starling's \"session bound\" log line; the log of a server not started by the test is not read")
		}
		checkStarlingLog(t, srv, logStart, jid, transport, mech)
	})
}

func checkStarlingLog(t *testing.T, srv *server, logStart int, jid, transport, mech string) {
	line, _ := srv.proc.WaitLog(t, logStart, 5*time.Second, "session bound for "+jid, func(l string) bool {
		return strings.Contains(l, `msg="session bound"`) && strings.Contains(l, " jid="+jid+" ")
	})
	if m := logValue(line, "mechanism"); m != mech {
		t.Errorf("server says %s authenticated with %q, want %s", jid, m, mech)
	}
	want := strconv.FormatBool(transport == "directtls")
	if d := logValue(line, "direct_tls"); d != want {
		t.Errorf("server says %s has direct_tls=%q, want %s (%s)", jid, d, want, transport)
	}
	if tls := logValue(line, "tls"); tls != "true" {
		t.Errorf("server says %s has tls=%q, want true", jid, tls)
	}
}

// nbxmppReceives has nbxmpp log in as bob over transport with SCRAM-SHA-256
// and checks the message slixmpp sends it as alice.
func nbxmppReceives(t *testing.T, srv *server, transport string) {
	requireSlixmpp(t)
	requireNbxmpp(t)
	mech := srv.scram(t, transport)
	tag := randomHex(8)
	alice := "alice@" + srv.domain + "/send-" + tag
	bob := "bob@" + srv.domain + "/nbxmpp-recv-" + tag
	body := fmt.Sprintf("to nbxmpp over %s <&> \"quoted\" 'apos' héllo ☃ %s", transport, tag)

	logStart := 0
	if srv.proc != nil {
		logStart = len(srv.proc.Log())
	}
	recv := startScript(t, "nbxmpp", "receiver", srv, bob, srv.passwords["bob"], transport, "--mech", mech, "--expect", tag)
	recv.checkSession(t, bob, mech)

	send := startScript(t, "slixmpp", "sender", srv, alice, srv.passwords["alice"], "starttls", slixmppMech(srv.scram(t, "starttls"), "--send-to", bob, "--body", body)...)
	send.waitEvent(t, "session")
	send.wait(t)

	msg := recv.waitMessage(t, tag)
	if msg.Body != body {
		t.Errorf("nbxmpp received body %q, want %q", msg.Body, body)
	}
	if msg.From != alice {
		t.Errorf("nbxmpp received the message from %q, want %q", msg.From, alice)
	}
	if msg.To != bob {
		t.Errorf("nbxmpp received the message addressed to %q, want %q", msg.To, bob)
	}
	if msg.Type != "chat" {
		t.Errorf("nbxmpp received a message of type %q, want chat", msg.Type)
	}
	recv.wait(t)
	checkServerLogin(t, srv, logStart, bob, transport, mech)
}

// nbxmppDefaults logs in with nbxmpp as it comes, over both transports: no
// forced mechanism, so it picks its favourite of what Starling offers
// (never a -PLUS: nbxmpp 4.2 cannot get channel-binding data from GIO).
// It must get in.
func nbxmppDefaults(t *testing.T, srv *server, transport string) {
	requireNbxmpp(t)
	alice := "alice@" + srv.domain + "/nbxmpp-defaults-" + randomHex(4)
	logStart := 0
	if srv.proc != nil {
		logStart = len(srv.proc.Log())
	}
	p := startScript(t, "nbxmpp", "defaults-"+transport, srv, alice, srv.passwords["alice"], transport)
	e := p.checkSession(t, alice, "")
	p.wait(t)
	checkServerLogin(t, srv, logStart, alice, transport, e.Mechanism)
}

// goSendxmppReceives runs `go-sendxmpp --listen` as bob over transport and
// has slixmpp send to it as alice.
//
// go-sendxmpp says nothing on stdout when it is ready. On Starling the
// server's log tells when it is bound; on an anchor, whose log is not read,
// its --debug output does (it prints on stderr what it receives, among
// which the bind result holding the bound JID).
func goSendxmppReceives(t *testing.T, srv *server, transport string) {
	requireSlixmpp(t)
	requireGoSendxmpp(t)
	tag := randomHex(8)
	alice := "alice@" + srv.domain + "/send-" + tag
	bobRes := "gsx-listen-" + tag
	bob := "bob@" + srv.domain + "/" + bobRes
	body := fmt.Sprintf("to go-sendxmpp over %s <&> héllo ☃ %s", transport, tag)

	logStart := 0
	if srv.proc != nil {
		logStart = len(srv.proc.Log())
	}
	args := []string{
		"--username", "bob@" + srv.domain, "--password", srv.passwords["bob"],
		"--jserver", net.JoinHostPort(srv.host, strconv.Itoa(srv.port(transport))),
		"--resource", bobRes, "--listen",
	}
	if transport == "directtls" {
		args = append(args, "--tls")
	}
	if srv.proc == nil {
		args = append(args, "--debug")
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := goSendxmppCommand(ctx, t, srv, args)
	t.Logf("receiver: go-sendxmpp %s", strings.Join(redact(args, srv.passwords["bob"]), " "))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &boundWriter{want: "<jid>" + bob + "</jid>", bound: make(chan struct{})}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64) // closed at EOF
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody will read that many
			}
		}
	}()
	defer func() {
		cmd.Process.Kill() // --listen runs until stopped
		for range lines {
		}
		cmd.Wait()
		t.Logf("go-sendxmpp --listen stderr:\n%s", stderr.bytes())
	}()
	if srv.proc != nil {
		srv.proc.WaitLog(t, logStart, clientTimeout, "session bound for "+bob, func(l string) bool {
			return strings.Contains(l, `msg="session bound"`) && strings.Contains(l, "jid="+bob)
		})
	} else {
		select {
		case <-stderr.bound:
		case <-time.After(clientTimeout):
			t.Fatalf("go-sendxmpp --listen --debug did not show a bind result for %s within %v", bob, clientTimeout)
		}
	}

	send := startScript(t, "slixmpp", "sender", srv, alice, srv.passwords["alice"], "starttls", slixmppMech(srv.scram(t, "starttls"), "--send-to", bob, "--body", body)...)
	send.waitEvent(t, "session")
	send.wait(t)

	// It prints "TIMESTAMP BARE-FROM: BODY" per message.
	want := "alice@" + srv.domain + ": " + body
	timer := time.NewTimer(clientTimeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("go-sendxmpp --listen exited before the message arrived")
			}
			if !strings.Contains(l, tag) {
				t.Logf("go-sendxmpp --listen: ignoring a line not from this case: %q", l)
				continue
			}
			if _, got, _ := strings.Cut(l, " "); got != want {
				t.Errorf("go-sendxmpp --listen printed %q, want a timestamp and %q", l, want)
			}
			return
		case <-timer.C:
			t.Fatalf("go-sendxmpp --listen did not print the message within %v", clientTimeout)
		}
	}
}

// slixmppDefaults logs in with slixmpp as it comes: no forced mechanism,
// its channel binding left on, so it picks what it likes best from what
// Starling offers.
//
// slixmpp 1.8.3 tries the -PLUS mechanisms with tls-unique, which does
// not exist on TLS 1.3 (RFC 9266) and which Starling does not offer, then
// the plain SCRAMs with the gs2 flag "y", which Starling must reject as a
// downgrade since it offered -PLUS (RFC 5802 §6), and then PLAIN. Those
// failures are protocol failures, not rejected credentials, so they count
// neither against the per-stream bound on rejected attempts nor against
// the failed-login throttles, and slixmpp gets in.
func slixmppDefaults(t *testing.T, srv *server) {
	requireSlixmpp(t)
	alice := "alice@" + srv.domain + "/defaults-" + randomHex(4)
	p := startScript(t, "slixmpp", "defaults", srv, alice, srv.passwords["alice"], "starttls")
	var failures []string
	timer := time.NewTimer(clientTimeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-p.events:
			switch {
			case ok && e.Event == "sasl-failure":
				failures = append(failures, e.Error)
				continue
			case ok && e.Event == "session":
				t.Logf("slixmpp with its defaults authenticated with %s over %s after %d failures", e.Mechanism, e.TLS, len(failures))
				p.wait(t)
				return
			}
			t.Fatalf("slixmpp with its defaults did not log in: %d SASL failures %q, then %+v", len(failures), failures, e)
		case <-timer.C:
			t.Fatalf("slixmpp with its defaults did not log in within %v", clientTimeout)
		}
	}
}

// --- slixmpp ---

var slixmpp struct {
	once    sync.Once
	version string
	err     error
}

func requireSlixmpp(t *testing.T) {
	t.Helper()
	slixmpp.once.Do(func() {
		out, err := exec.Command(python, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
		slixmpp.version = strings.TrimSpace(string(out))
		if err != nil {
			slixmpp.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	testbin.Require(t, fmt.Sprintf("python3-slixmpp for %s (apt-get install python3-slixmpp): %v", python, slixmpp.err), slixmpp.err == nil)
}

// --- nbxmpp ---

var nbxmpp struct {
	once    sync.Once
	version string
	err     error
}

// requireNbxmpp checks that Debian's python3 can import nbxmpp, whose
// GObject dependencies (python3-gi, the GLib and Soup 3 typelibs) load on
// import, and that GIO has a TLS backend (glib-networking).
func requireNbxmpp(t *testing.T) {
	t.Helper()
	nbxmpp.once.Do(func() {
		out, err := exec.Command(python, "-c", `import nbxmpp
from gi.repository import Gio
assert Gio.TlsBackend.get_default().supports_tls(), "GIO has no TLS backend (glib-networking)"
print(nbxmpp.__version__)`).CombinedOutput()
		nbxmpp.version = strings.TrimSpace(string(out))
		if err != nil {
			nbxmpp.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	testbin.Require(t, fmt.Sprintf("python3-nbxmpp for %s (apt-get install python3-nbxmpp python3-gi gir1.2-glib-2.0 gir1.2-soup-3.0 glib-networking): %v", python, nbxmpp.err), nbxmpp.err == nil)
}

// event is one JSON line printed by testdata/slixmpp_client.py or
// testdata/nbxmpp_client.py.
type event struct {
	Event     string `json:"event"`
	JID       string `json:"jid"`
	Mechanism string `json:"mechanism"`
	TLS       string `json:"tls"`
	Cipher    string `json:"cipher"`
	From      string `json:"from"`
	To        string `json:"to"`
	Type      string `json:"type"`
	Body      string `json:"body"`
	Error     string `json:"error"`
}

// clientProc is a running slixmpp or nbxmpp script whose stdout is a
// stream of events.
type clientProc struct {
	client string // "slixmpp" or "nbxmpp"
	name   string
	cmd    *exec.Cmd
	events chan event    // closed at EOF of stdout
	pumped chan struct{} // closed at EOF of stdout
	stderr bytes.Buffer  // read only after done
	done   chan struct{} // closed when the process has been waited for
	err    error         // Wait's result; read after done
}

// slixmppMech returns the script's arguments that force mech, followed by
// extra.
//
// For SCRAM it also hides the TLS channel binding from slixmpp: slixmpp
// 1.8.3 knows only tls-unique, and hands it to its SCRAM code whenever the
// stream is TLS, even on TLS 1.3 where tls-unique is undefined (RFC 9266
// §3). A non -PLUS SCRAM then sends the gs2 flag "y" ("I could bind, but
// you offer no -PLUS"), which a server that did offer -PLUS must reject as
// a downgrade (RFC 5802 §6), as Starling does. With the binding hidden it
// sends "n", like any client without channel binding. Prosody 0.12 offers
// no -PLUS on TLS 1.3, which is why slixmpp works there unmodified.
func slixmppMech(mech string, extra ...string) []string {
	args := []string{"--mech", mech}
	if strings.HasPrefix(mech, "SCRAM-") && !strings.HasSuffix(mech, "-PLUS") {
		args = append(args, "--no-channel-binding")
	}
	return append(args, extra...)
}

// startScript runs testdata/<client>_client.py (client is "slixmpp" or
// "nbxmpp") as jid over transport, trusting the server's certificate.
func startScript(t *testing.T, client, name string, srv *server, jid, password, transport string, extra ...string) *clientProc {
	t.Helper()
	args := []string{filepath.Join("testdata", client+"_client.py"),
		"--jid", jid, "--password", password,
		"--host", srv.host, "--port", strconv.Itoa(srv.port(transport)),
		"--ca-file", srv.cert,
		"--timeout", strconv.Itoa(int(scriptTimeout / time.Second)),
		"--debug",
	}
	if transport == "directtls" {
		args = append(args, "--direct-tls")
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	p := &clientProc{
		client: client,
		name:   name,
		cmd:    exec.CommandContext(ctx, python, args...),
		events: make(chan event, 64),
		pumped: make(chan struct{}),
		done:   make(chan struct{}),
	}
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Logf("%s: %s %s", name, python, strings.Join(redact(args, password), " "))
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s %s: %v", client, name, err)
	}
	go func() {
		defer close(p.pumped)
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Event: "garbage", Error: sc.Text()}
			}
			select {
			case p.events <- e:
			default: // nobody will read that many
			}
		}
	}()
	go func() {
		<-p.pumped // Wait closes stdout: read it all first
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() // no-op if it has exited
		<-p.done
		version := slixmpp.version
		if client == "nbxmpp" {
			version = nbxmpp.version
		}
		t.Logf("%s (%s %s) stderr:\n%s", p.name, client, version, p.stderr.Bytes())
	})
	return p
}

// waitEvent returns the next event of the given kind. An "error" event, an
// exit or the client timeout fail the test.
func (p *clientProc) waitEvent(t *testing.T, kind string) event {
	t.Helper()
	timer := time.NewTimer(clientTimeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-p.events:
			switch {
			case !ok:
				<-p.done
				t.Fatalf("%s %s exited (%v) before reporting %q", p.client, p.name, p.err, kind)
			case e.Event == kind:
				return e
			case e.Event == "error" || e.Event == "garbage":
				t.Fatalf("%s %s, waiting for %q: %s: %s", p.client, p.name, kind, e.Event, e.Error)
			default:
				t.Logf("%s %s, waiting for %q: ignoring %+v", p.client, p.name, kind, e)
			}
		case <-timer.C:
			t.Fatalf("%s %s did not report %q within %v", p.client, p.name, kind, clientTimeout)
		}
	}
}

// checkSession waits for the "session" event and checks that the client is
// bound as jid, over TLS, and, unless mech is "", authenticated with mech.
func (p *clientProc) checkSession(t *testing.T, jid, mech string) event {
	t.Helper()
	s := p.waitEvent(t, "session")
	if s.JID != jid {
		t.Errorf("%s %s bound as %q, want %q", p.client, p.name, s.JID, jid)
	}
	if s.Mechanism == "" || mech != "" && s.Mechanism != mech {
		t.Errorf("%s %s authenticated with %q, want %q", p.client, p.name, s.Mechanism, mech)
	}
	if s.TLS == "" {
		t.Errorf("%s %s's stream is not TLS", p.client, p.name)
	}
	t.Logf("%s %s bound as %s with %s over %s (%s)", p.client, p.name, s.JID, s.Mechanism, s.TLS, s.Cipher)
	return s
}

// waitMessage returns the first message whose body contains tag, logging
// any other.
func (p *clientProc) waitMessage(t *testing.T, tag string) event {
	t.Helper()
	for {
		e := p.waitEvent(t, "message")
		if strings.Contains(e.Body, tag) {
			return e
		}
		t.Logf("%s %s: ignoring a message not from this case: %+v", p.client, p.name, e)
	}
}

// wait checks that the client exits with status 0 and reports nothing
// more.
func (p *clientProc) wait(t *testing.T) {
	t.Helper()
	for e := range p.events {
		if e.Event == "error" || e.Event == "garbage" {
			t.Errorf("%s %s: %s: %s", p.client, p.name, e.Event, e.Error)
		}
	}
	<-p.done
	if p.err != nil {
		t.Errorf("%s %s: %v", p.client, p.name, p.err)
	}
}

// --- go-sendxmpp ---

var (
	goSendxmppOnce    sync.Once
	goSendxmppPath    string
	goSendxmppVersion string
)

func requireGoSendxmpp(t *testing.T) {
	t.Helper()
	goSendxmppOnce.Do(func() {
		goSendxmppPath, _ = exec.LookPath("go-sendxmpp")
		if goSendxmppPath != "" {
			out, _ := exec.Command(goSendxmppPath, "--version").Output()
			goSendxmppVersion, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
		}
	})
	testbin.Require(t, "go-sendxmpp (apt-get install go-sendxmpp)", goSendxmppPath != "")
}

// goSendxmppCommand prepares a go-sendxmpp run that verifies the server
// certificate: Go's crypto/x509 takes its roots from SSL_CERT_FILE, here the
// server's own certificate. HOME is empty, so no configuration file of the
// machine's user is read.
func goSendxmppCommand(ctx context.Context, t *testing.T, srv *server, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goSendxmppPath, args...)
	cmd.WaitDelay = 5 * time.Second
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "SSL_CERT_FILE="+srv.cert, "SSL_CERT_DIR="+home)
	return cmd
}

// runGoSendxmpp sends body to `to` as user/resource and checks that
// go-sendxmpp exits 0.
func runGoSendxmpp(t *testing.T, srv *server, transport, user, password, resource, to, body string) {
	t.Helper()
	args := []string{
		"--username", user, "--password", password,
		"--jserver", net.JoinHostPort(srv.host, strconv.Itoa(srv.port(transport))),
		"--resource", resource,
		"--timeout", strconv.Itoa(int(scriptTimeout / time.Second)),
		"--debug",
	}
	if transport == "directtls" {
		args = append(args, "--tls")
	}
	args = append(args, to)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := goSendxmppCommand(ctx, t, srv, args)
	cmd.Stdin = strings.NewReader(body + "\n")
	t.Logf("sender: go-sendxmpp %s", strings.Join(redact(args, password), " "))
	out, err := cmd.CombinedOutput()
	t.Logf("go-sendxmpp %s output:\n%s", goSendxmppVersion, out)
	if err != nil {
		t.Fatalf("go-sendxmpp: %v", err)
	}
	// --debug prints what go-sendxmpp received. Its go-xmpp can only
	// authenticate with PLAIN, DIGEST-MD5, X-OAUTH2 or ANONYMOUS, so a
	// SASL success after an offer holding PLAIN and none of the others
	// shows that PLAIN was used.
	offered := offeredMechanisms(string(out))
	if !slices.Contains(offered, "PLAIN") {
		t.Errorf("go-sendxmpp saw no PLAIN in the offered mechanisms %v", offered)
	}
	for _, m := range []string{"DIGEST-MD5", "X-OAUTH2", "ANONYMOUS"} {
		if slices.Contains(offered, m) {
			t.Errorf("the server offered %s (%v): go-sendxmpp may not have used PLAIN", m, offered)
		}
	}
	if !regexp.MustCompile(`<success\s+xmlns=['"]urn:ietf:params:xml:ns:xmpp-sasl['"]`).Match(out) {
		t.Errorf("go-sendxmpp's debug output shows no SASL <success/>")
	}
}

var mechanismRE = regexp.MustCompile(`<mechanism>([^<]*)</mechanism>`)

// offeredMechanisms lists the SASL mechanisms in a transcript.
func offeredMechanisms(transcript string) []string {
	var ms []string
	for _, m := range mechanismRE.FindAllStringSubmatch(transcript, -1) {
		if !slices.Contains(ms, m[1]) {
			ms = append(ms, m[1])
		}
	}
	return ms
}

// --- helpers ---

// boundWriter keeps what a process writes and closes bound once it has
// written want.
type boundWriter struct {
	want  string
	bound chan struct{}
	mu    sync.Mutex
	buf   bytes.Buffer
}

func (w *boundWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := bytes.Contains(w.buf.Bytes(), []byte(w.want))
	w.buf.Write(b)
	if !seen && bytes.Contains(w.buf.Bytes(), []byte(w.want)) {
		close(w.bound)
	}
	return len(b), nil
}

func (w *boundWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// redact replaces the password in a command line for the log.
func redact(args []string, password string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == password {
			a = "********"
		}
		out[i] = a
	}
	return out
}

// logValue returns the value of key in a slog text line, or "".
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}
