// Package realclients drives third-party XMPP clients, installed from
// Debian packages, against Starling started from its built binary
// (issue 2, "Done means"; issue 3 part 2).
//
// For each storage backend (SQLite, and PostgreSQL via pgtest.Database)
// one server runs with a STARTTLS and a direct TLS (XEP-0368) listener on
// free loopback ports, and accounts alice and bob with random passwords.
// Each case of the matrix
//
//	client ∈ {slixmpp, go-sendxmpp} × transport ∈ {starttls, directtls} × mechanism ∈ {SCRAM-SHA-1, SCRAM-SHA-256, PLAIN}
//
// logs in as alice with that client, transport and mechanism and sends a
// chat message with a unique body to bob@localhost/<resource>, where a
// slixmpp receiver logged in as bob must get exactly that body from
// alice@localhost/<alice's resource>. Clients verify the server's
// self-signed certificate against data_dir/certs/localhost.crt, not with
// verification turned off.
//
// Prerequisites (python3-slixmpp run by /usr/bin/python3, go-sendxmpp) are
// checked with testbin.Require: a skip, or a failure under
// STARLING_REQUIRE_ALL=1.
package realclients

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/pgtest"
	"github.com/starling-xmpp/starling/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

const (
	domain = "localhost"
	// clientTimeout bounds every client process; the scripts' own
	// timeout is a little shorter so they can report what they saw.
	clientTimeout = 30 * time.Second
	scriptTimeout = 25 * time.Second
	python        = "/usr/bin/python3" // Debian's, which has python3-slixmpp
)

var (
	transports = []string{"starttls", "directtls"}
	mechanisms = []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}
)

// server is one running Starling with its accounts.
type server struct {
	proc                *testbin.Proc
	cert                string // the generated self-signed certificate (PEM)
	starttls, directTLS int    // ports
	passwords           map[string]string
}

func (s *server) port(transport string) int {
	if transport == "directtls" {
		return s.directTLS
	}
	return s.starttls
}

func TestRealClients(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = pgtest.Database(t)
			}
			srv := startServer(t, backend, dsn)
			for _, client := range []string{"slixmpp", "go-sendxmpp"} {
				for _, transport := range transports {
					for _, mech := range mechanisms {
						t.Run(client+"/"+transport+"/"+mech, func(t *testing.T) {
							runCase(t, srv, client, transport, mech)
						})
					}
				}
			}
		})
	}
}

// startServer writes a config for backend, starts Starling and adds alice
// and bob.
func startServer(t *testing.T, backend, dsn string) *server {
	bin := testbin.Build(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := &server{
		cert:      filepath.Join(data, "certs", domain+".crt"),
		starttls:  testbin.FreePort(t),
		directTLS: testbin.FreePort(t),
		passwords: map[string]string{"alice": randomHex(12), "bob": randomHex(12)},
	}
	cfg := fmt.Sprintf(`[server]
hosts = [%q]
data_dir = %q

[c2s]
listen = ["127.0.0.1:%d"]
direct_tls_listen = ["127.0.0.1:%d"]

[storage]
driver = %q
dsn = %q

[log]
level = "debug"
`, domain, data, s.starttls, s.directTLS, backend, dsn)
	path := filepath.Join(dir, "starling.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("config %s:\n%s", path, cfg)
	s.proc = testbin.Start(t, bin, path)
	// Accounts are added while the server runs, as an operator would.
	for _, user := range []string{"alice", "bob"} {
		testbin.AddUser(t, bin, path, user+"@"+domain, s.passwords[user])
	}
	if _, err := os.Stat(s.cert); err != nil {
		t.Fatalf("generated certificate: %v", err)
	}
	return s
}

// runCase is one cell of the matrix.
func runCase(t *testing.T, srv *server, client, transport, mech string) {
	requireSlixmpp(t) // the receiver
	if client == "go-sendxmpp" {
		requireGoSendxmpp(t)
		if mech != "PLAIN" {
			// go-sendxmpp 0.5.6 (Debian bookworm) is built on a
			// github.com/mattn/go-xmpp that implements only PLAIN,
			// DIGEST-MD5, X-OAUTH2 and ANONYMOUS (its binary holds no
			// SCRAM code at all), and it has no flag to choose one.
			t.Skipf("go-sendxmpp %s cannot do %s: its go-xmpp speaks only PLAIN (and DIGEST-MD5, X-OAUTH2, ANONYMOUS)", goSendxmppVersion, mech)
		}
	}
	tag := randomHex(4)
	aliceRes := "rc-" + client + "-" + transport + "-" + tag
	bobRes := "recv-" + tag
	alice := "alice@" + domain + "/" + aliceRes
	bob := "bob@" + domain + "/" + bobRes
	// Unique, and with characters that must be escaped in XML and that
	// are outside ASCII, so the check covers the escaping on both sides.
	body := fmt.Sprintf("starling %s %s <&> \"quoted\" 'apos' héllo ☃ %s", client, transport, randomHex(8))

	// The receiver: slixmpp as bob, STARTTLS, slixmpp's own choice of
	// mechanism. It is bound before the sender starts.
	logStart := len(srv.proc.Log())
	recv := startSlixmpp(t, "receiver", srv, bob, srv.passwords["bob"], "starttls", "", "--receive")
	sess := recv.waitEvent(t, "session")
	t.Logf("receiver bound as %s with %s over %s", sess.JID, sess.Mechanism, sess.TLS)

	switch client {
	case "slixmpp":
		send := startSlixmpp(t, "sender", srv, alice, srv.passwords["alice"], transport, mech, "--send-to", bob, "--body", body)
		s := send.waitEvent(t, "session")
		if s.JID != alice {
			t.Errorf("slixmpp sender bound as %q, want %q", s.JID, alice)
		}
		if s.Mechanism != mech {
			t.Errorf("slixmpp sender authenticated with %q, want %q", s.Mechanism, mech)
		}
		if s.TLS == "" {
			t.Errorf("slixmpp sender's stream is not TLS")
		}
		t.Logf("sender bound as %s with %s over %s (%s)", s.JID, s.Mechanism, s.TLS, s.Cipher)
		send.wait(t)
	case "go-sendxmpp":
		runGoSendxmpp(t, srv, transport, "alice@"+domain, srv.passwords["alice"], aliceRes, bob, body)
	}

	msg := recv.waitEvent(t, "message")
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

	// The server's side of the sender's login. If it names the SASL
	// mechanism, it must be the forced one.
	line, _ := srv.proc.WaitLog(t, logStart, 5*time.Second, "session bound for "+alice, func(l string) bool {
		return strings.Contains(l, `msg="session bound"`) && strings.Contains(l, "jid="+alice)
	})
	if m := logValue(line, "mechanism"); m != "" && m != mech {
		t.Errorf("server says %s authenticated with %s, want %s", alice, m, mech)
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

// event is one JSON line printed by testdata/slixmpp_client.py.
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

// clientProc is a running slixmpp script whose stdout is a stream of
// events.
type clientProc struct {
	name   string
	cmd    *exec.Cmd
	events chan event    // closed at EOF of stdout
	pumped chan struct{} // closed at EOF of stdout
	stderr bytes.Buffer  // read only after done
	done   chan struct{} // closed when the process has been waited for
	err    error         // Wait's result; read after done
}

func startSlixmpp(t *testing.T, name string, srv *server, jid, password, transport, mech string, extra ...string) *clientProc {
	t.Helper()
	args := []string{filepath.Join("testdata", "slixmpp_client.py"),
		"--jid", jid, "--password", password,
		"--host", "127.0.0.1", "--port", strconv.Itoa(srv.port(transport)),
		"--ca-file", srv.cert,
		"--timeout", strconv.Itoa(int(scriptTimeout / time.Second)),
		"--debug",
	}
	if transport == "directtls" {
		args = append(args, "--direct-tls")
	}
	if mech != "" {
		args = append(args, "--mech", mech)
	}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	p := &clientProc{
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
		t.Fatalf("start slixmpp %s: %v", name, err)
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
		t.Logf("%s (slixmpp %s) stderr:\n%s", p.name, slixmpp.version, p.stderr.Bytes())
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
				t.Fatalf("slixmpp %s exited (%v) before reporting %q", p.name, p.err, kind)
			case e.Event == kind:
				return e
			case e.Event == "error" || e.Event == "garbage":
				t.Fatalf("slixmpp %s, waiting for %q: %s: %s", p.name, kind, e.Event, e.Error)
			default:
				t.Logf("slixmpp %s, waiting for %q: ignoring %+v", p.name, kind, e)
			}
		case <-timer.C:
			t.Fatalf("slixmpp %s did not report %q within %v", p.name, kind, clientTimeout)
		}
	}
}

// wait checks that the client exits with status 0 and reports nothing
// more.
func (p *clientProc) wait(t *testing.T) {
	t.Helper()
	for e := range p.events {
		if e.Event == "error" || e.Event == "garbage" {
			t.Errorf("slixmpp %s: %s: %s", p.name, e.Event, e.Error)
		}
	}
	<-p.done
	if p.err != nil {
		t.Errorf("slixmpp %s: %v", p.name, p.err)
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

// runGoSendxmpp sends body to `to` as user/resource and checks that
// go-sendxmpp exits 0. It verifies the server certificate: Go's crypto/x509
// takes its roots from SSL_CERT_FILE, here the server's own certificate.
func runGoSendxmpp(t *testing.T, srv *server, transport, user, password, resource, to, body string) {
	t.Helper()
	args := []string{
		"--username", user, "--password", password,
		"--jserver", "127.0.0.1:" + strconv.Itoa(srv.port(transport)),
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
	cmd := exec.CommandContext(ctx, goSendxmppPath, args...)
	cmd.WaitDelay = 5 * time.Second
	home := t.TempDir() // no ~/.config/go-sendxmpp of the machine's user
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "SSL_CERT_FILE="+srv.cert, "SSL_CERT_DIR="+home)
	cmd.Stdin = strings.NewReader(body + "\n")
	t.Logf("sender: go-sendxmpp %s", strings.Join(redact(args, password), " "))
	out, err := cmd.CombinedOutput()
	t.Logf("go-sendxmpp %s output:\n%s", goSendxmppVersion, out)
	if err != nil {
		t.Fatalf("go-sendxmpp: %v", err)
	}
}

// --- helpers ---

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
