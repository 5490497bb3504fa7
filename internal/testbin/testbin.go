// Package testbin runs the built starling binary from tests: it builds the
// binary once per test process, starts `starling serve` on a config file,
// waits for its listeners, adds accounts with `starling user add`, and on
// cleanup stops the server with SIGTERM and checks that it exits cleanly.
//
// It also holds Require, the one rule for missing prerequisites: skip with
// a reason, or fail under STARLING_REQUIRE_ALL=1 (set by `make check`).
package testbin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// EnvRequireAll names the variable that turns skips for missing
// prerequisites into failures.
const EnvRequireAll = "STARLING_REQUIRE_ALL"

// Package is the import path of the server command.
const Package = "github.com/starling-xmpp/starling/cmd/starling"

// Timeouts. StopTimeout is part of the contract: SIGTERM must end the
// server with exit code 0 within it.
const (
	BuildTimeout = 5 * time.Minute
	StartTimeout = 30 * time.Second
	StopTimeout  = 10 * time.Second
	CLITimeout   = time.Minute
)

// RequireAll reports whether STARLING_REQUIRE_ALL=1.
func RequireAll() bool { return os.Getenv(EnvRequireAll) == "1" }

// Require skips the test when ok is false, saying what is missing, or fails
// it under STARLING_REQUIRE_ALL=1, where nothing may be skipped.
func Require(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if RequireAll() {
		t.Fatalf("missing prerequisite: %s (%s=1 forbids skipping)", what, EnvRequireAll)
	}
	t.Skipf("missing prerequisite: %s", what)
}

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build compiles the starling binary once per test process and returns its
// path. When the test binary itself runs under the race detector, so does
// the server. Call Main from TestMain to remove the build directory.
func Build(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "starling-testbin-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		path := filepath.Join(dir, "starling")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, Package)
		ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool(), args...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		build.path = path
	})
	if build.err != nil {
		t.Fatalf("build starling: %v", build.err)
	}
	return build.path
}

// Main runs the tests and removes the binary Build made. Use it as
//
//	func TestMain(m *testing.M) { testbin.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// goTool is the go command that runs this test, so the binary is built by
// the same toolchain.
func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// FreePort returns a loopback TCP port that was free a moment ago, and
// that no earlier call of this test process returned: the kernel may hand
// a port just closed out again, and two listeners of one configuration on
// the same port make it invalid ("listed twice").
func FreePort(t testing.TB) int {
	t.Helper()
	given.mu.Lock()
	defer given.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given.ports[port] {
			if given.ports == nil {
				given.ports = make(map[int]bool)
			}
			given.ports[port] = true
			return port
		}
	}
}

// given holds the ports FreePort has returned; mu guards ports.
var given struct {
	mu    sync.Mutex
	ports map[int]bool
}

// FreeAddr is FreePort as "127.0.0.1:PORT".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// AddUser creates an account with `starling user add`, the password given
// on standard input as the CLI expects when stdin is not a terminal.
func AddUser(t testing.TB, binary, configPath, jid, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "user", "add", "--config", configPath, jid)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("starling user add %s: %v\n%s", jid, err, out)
	}
	t.Logf("starling user add %s: %s", jid, bytes.TrimSpace(out))
}

// Proc is a running `starling serve`.
type Proc struct {
	Cmd *exec.Cmd
	// Addrs are the listener addresses read from the config file.
	Addrs []string

	t      testing.TB
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result; read after exited is closed
	logged chan struct{} // closed when stderr reached EOF

	stopOnce sync.Once

	mu      sync.Mutex
	lines   []string      // every stderr line so far
	changed chan struct{} // closed and replaced whenever a line arrives
}

// Start runs `binary serve --config configPath`, copies its stderr (the
// server's log) to t.Log line by line, and returns once every listener
// address in the config ([c2s] listen and direct_tls_listen, and any other
// "listen" or "*_listen" list) accepts TCP connections. When the test ends
// it sends SIGTERM and fails the test unless the server exits with code 0
// within StopTimeout, or if its log shows a data race or a panic.
func Start(t testing.TB, binary, configPath string) *Proc {
	t.Helper()
	addrs, err := listenAddrs(configPath)
	if err != nil {
		t.Fatalf("read listeners from %s: %v", configPath, err)
	}
	if len(addrs) == 0 {
		t.Fatalf("%s lists no listener addresses", configPath)
	}
	p := &Proc{
		Addrs:   addrs,
		t:       t,
		exited:  make(chan struct{}),
		logged:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	p.Cmd = exec.Command(binary, "serve", "--config", configPath)
	p.Cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout = logWriter{p, "stdout: "}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go p.copyLog(stderr)
	go func() {
		<-p.logged // Wait closes the pipe: read it all first
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stopOnce.Do(p.stop) })

	deadline := time.Now().Add(StartTimeout)
	for _, a := range addrs {
		if err := p.waitAccept(a, deadline); err != nil {
			t.Fatalf("starling serve: %v", err)
		}
	}
	return p
}

// waitAccept polls addr until a TCP connection succeeds, the process exits
// or the deadline passes.
func (p *Proc) waitAccept(addr string, deadline time.Time) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v: %v", addr, StartTimeout, err)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before %s accepted connections: %v", addr, p.err)
		case <-tick.C:
		}
	}
}

func (p *Proc) copyLog(r io.Reader) {
	defer close(p.logged)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		p.addLine(sc.Text())
	}
}

func (p *Proc) addLine(line string) {
	p.t.Log("starling: " + line)
	p.mu.Lock()
	p.lines = append(p.lines, line)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

type logWriter struct {
	p      *Proc
	prefix string
}

func (w logWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.p.t.Log("starling " + w.prefix + l)
	}
	return len(b), nil
}

// Log returns the server's stderr lines so far.
func (p *Proc) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitLog waits until a line of the server's log, from line index `from`
// on, satisfies match, and returns that line and its index. It fails the
// test after timeout or if the server exits first. Use len(p.Log()) taken
// before an action as `from` to look only at what the action caused.
func (p *Proc) WaitLog(t testing.TB, from int, timeout time.Duration, what string, match func(string) bool) (string, int) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return line, i
			}
		}
		from = len(p.lines)
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.logged:
			// No more lines can come; one last look above, then fail.
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if from == n {
				t.Fatalf("starling exited before logging %s", what)
			}
		case <-timer.C:
			t.Fatalf("starling did not log %s within %v", what, timeout)
		}
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and checks for a clean exit (exit code 0 within
// StopTimeout, no race or panic in the log); the test's end does the same
// if Stop was not called.
func (p *Proc) Stop() { p.stopOnce.Do(p.stop) }

func (p *Proc) stop() {
	t := p.t
	if !p.Exited() {
		if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("SIGTERM: %v", err)
		}
	} else {
		t.Errorf("starling exited before the test ended: %v", p.err)
	}
	select {
	case <-p.exited:
	case <-time.After(StopTimeout):
		p.Cmd.Process.Kill()
		<-p.exited
		t.Errorf("starling did not exit within %v of SIGTERM; killed", StopTimeout)
		return
	}
	if p.err != nil {
		t.Errorf("starling did not exit cleanly after SIGTERM: %v", p.err)
	}
	for _, l := range p.Log() {
		if strings.Contains(l, "WARNING: DATA RACE") || strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			t.Errorf("starling's log shows: %s", l)
		}
	}
}

// listenAddrs reads every listener address out of a config file: each
// string array under a key named "listen" or ending in "_listen", at any
// depth. It needs no knowledge of the config package beyond that naming.
func listenAddrs(path string) ([]string, error) {
	var doc map[string]any
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		return nil, err
	}
	var addrs []string
	var walk func(map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case map[string]any:
				walk(v)
			case []any:
				if k != "listen" && !strings.HasSuffix(k, "_listen") {
					continue
				}
				for _, a := range v {
					if s, ok := a.(string); ok {
						addrs = append(addrs, s)
					}
				}
			}
		}
	}
	walk(doc)
	return addrs, nil
}

// Setup is a server configuration for one test: host localhost, a data
// directory in t.TempDir(), STARTTLS and direct TLS listeners on free
// loopback ports.
type Setup struct {
	Config, DataDir     string // the config file and the data directory
	StartTLS, DirectTLS string // listener addresses
}

// NewSetup writes a config file; extra TOML is appended to it (e.g. a
// [log] table).
func NewSetup(t testing.TB, extra string) Setup {
	t.Helper()
	dir := t.TempDir()
	s := Setup{Config: filepath.Join(dir, "starling.toml"), DataDir: dir, StartTLS: FreeAddr(t), DirectTLS: FreeAddr(t)}
	s.Write(t, extra)
	return s
}

// Write rewrites the config file with other extra TOML (for reloads).
func (s Setup) Write(t testing.TB, extra string) {
	t.Helper()
	toml := fmt.Sprintf("[server]\nhosts = [\"localhost\"]\ndata_dir = %q\n[c2s]\nlisten = [%q]\ndirect_tls_listen = [%q]\n%s", s.DataDir, s.StartTLS, s.DirectTLS, extra)
	if !strings.Contains(extra, "[s2s]") {
		// No federation unless asked: it would listen on 5269 and ask
		// the machine's DNS about other domains.
		toml += "\n[s2s]\nenabled = false\n"
	}
	if err := os.WriteFile(s.Config, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
}
