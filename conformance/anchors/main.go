// Command anchors runs the real-client suite (conformance/realclients)
// against Starling and against the two "anchors", Prosody and ejabberd from
// Debian packages, and prints a table check × server (issue 3 part 3).
// `make conformance-anchors` runs it from the repository root:
//
//	go run ./conformance/anchors [-doc docs/conformance-anchors.md]
//
// Steps:
//  1. apt-get installs prosody and ejabberd if missing; no service is
//     started by the install (a temporary policy-rc.d says no if the machine
//     has none), and none is left running.
//  2. In a temporary directory: a self-signed certificate for localhost per
//     server (the clients trust it as their CA file), a config, and
//     accounts alice and bob with random passwords, the same on both.
//     Prosody listens on 127.0.0.2, ejabberd on 127.0.0.3, each on 5222
//     (STARTTLS, required) and 5223 (direct TLS). Both are started as root
//     in the foreground as children of this program, with a raised
//     open-file limit; ejabberdctl runs ejabberd as its own user.
//  3. go test -json ./conformance/realclients/ three times: as usual
//     (Starling on SQLite and PostgreSQL), then with STARLING_ANCHOR=prosody
//     and STARLING_ANCHOR=ejabberd and the STARLING_ANCHOR_* variables that
//     point the same checks at that server.
//  4. Prints the table and writes it, with the date, the command, the
//     versions and the mechanisms each server offers, between the markers
//     of the -doc file (text outside the markers, such as hand-written
//     notes, is kept).
//  5. Stops both servers (also on error or interrupt) and removes the
//     temporary directory. The raw go test output is kept in -logs.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const (
	domain         = "localhost"
	prosodyAddr    = "127.0.0.2"
	ejabberdAddr   = "127.0.0.3"
	ejabberdNode   = "ejabberd-anchor@localhost"
	startTimeout   = time.Minute
	stopTimeout    = 30 * time.Second
	openFilesLimit = 65536
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("anchors: ")
	doc := flag.String("doc", "docs/conformance-anchors.md", "Markdown file to write the table into (empty: none)")
	logs := flag.String("logs", filepath.Join(os.TempDir(), "starling-conformance-anchors"), "directory for the go test -json output of each run (kept)")
	servers := flag.String("servers", "starling,prosody,ejabberd", "comma-separated servers to run the suite against")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *doc, *logs, strings.Split(*servers, ",")); err != nil {
		log.Fatal(err)
	}
}

// cleanups run in reverse order when run returns, whatever happened.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }
func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func run(ctx context.Context, docPath, logDir string, servers []string) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root (go.mod not found)")
	}
	if os.Getuid() != 0 {
		return errors.New("must run as root: it installs packages and starts Prosody and ejabberd")
	}
	if err := raiseOpenFiles(); err != nil {
		return err
	}
	if err := installPackages(ctx); err != nil {
		return err
	}
	var cl cleanups
	defer func() { cl.run() }()
	dir, err := os.MkdirTemp("", "starling-anchors-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755) // ejabberd runs as its own user
	cl.add(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	passwords := map[string]string{"alice": randomHex(12), "bob": randomHex(12)}
	accounts := "alice:" + passwords["alice"] + ",bob:" + passwords["bob"]
	var anchors []*anchor
	for _, a := range []*anchor{
		{name: "prosody", addr: prosodyAddr, dir: filepath.Join(dir, "prosody")},
		{name: "ejabberd", addr: ejabberdAddr, dir: filepath.Join(dir, "ejabberd")},
	} {
		if slices.Contains(servers, a.name) {
			anchors = append(anchors, a)
		}
	}
	for _, a := range anchors {
		for _, port := range []string{"5222", "5223"} {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(a.addr, port), time.Second); err == nil {
				c.Close()
				return fmt.Errorf("something already listens on %s:%s, where %s is to run", a.addr, port, a.name)
			}
		}
		if err := os.MkdirAll(a.dir, 0o755); err != nil {
			return err
		}
		if err := writeCert(a.dir); err != nil {
			return err
		}
		var err error
		switch a.name {
		case "prosody":
			err = startProsody(ctx, a, passwords, &cl)
		case "ejabberd":
			err = startEjabberd(ctx, a, passwords, &cl)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		log.Printf("%s %s is up on %s:5222 (STARTTLS) and %s:5223 (direct TLS)", a.name, a.version, a.addr, a.addr)
	}

	// The runs. Starling's is the one `make check` does.
	var runs []*testRun
	if slices.Contains(servers, "starling") {
		runs = append(runs, &testRun{name: "starling", columns: []string{"sqlite", "postgres"}})
	}
	for _, a := range anchors {
		runs = append(runs, &testRun{name: a.name, columns: []string{a.name}, env: []string{
			"STARLING_ANCHOR=" + a.name,
			"STARLING_ANCHOR_HOST=" + a.addr,
			"STARLING_ANCHOR_DOMAIN=" + domain,
			"STARLING_ANCHOR_STARTTLS_PORT=5222",
			"STARLING_ANCHOR_DIRECTTLS_PORT=5223",
			"STARLING_ANCHOR_CA=" + filepath.Join(a.dir, domain+".crt"),
			"STARLING_ANCHOR_ACCOUNTS=" + accounts,
		}})
	}
	for _, r := range runs {
		if err := r.run(ctx, logDir); err != nil {
			return err
		}
	}
	res := collect(runs)
	table := res.markdown()
	fmt.Println()
	fmt.Println(table)
	if docPath != "" {
		if err := writeDoc(docPath, res, anchors, table); err != nil {
			return err
		}
		log.Printf("wrote %s", docPath)
	}
	log.Printf("go test output kept in %s", logDir)
	if n := res.failures(); n > 0 {
		return fmt.Errorf("%d check×server cells failed (see the table and %s)", n, logDir)
	}
	return nil
}

// raiseOpenFiles lifts this process's soft open-file limit to the hard one
// (at most openFilesLimit), which the servers inherit (started the
// Debian way through su, they would get 1024).
func raiseOpenFiles() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= openFilesLimit {
		return nil
	}
	l.Cur = min(openFilesLimit, l.Max) // the hard limit may be fixed (a sandbox, a container)
	log.Printf("open-file limit for the servers: %d", l.Cur)
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// installPackages installs prosody and ejabberd if missing, without letting
// the packages start their system services.
func installPackages(ctx context.Context) error {
	var missing []string
	for _, p := range []string{"prosody", "ejabberd"} {
		if exec.Command("dpkg-query", "-W", "-f=${Status}", p).Run() != nil ||
			!strings.Contains(output("dpkg-query", "-W", "-f=${Status}", p), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		// Exit status 101: "action forbidden", so invoke-rc.d starts nothing.
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return err
		}
		defer os.Remove(policy)
	}
	log.Printf("installing %s", strings.Join(missing, " "))
	if err := runCmd(ctx, nil, "apt-get", "update", "-q"); err != nil {
		return err
	}
	args := append([]string{"install", "-y", "-q"}, missing...)
	return runCmd(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", args...)
}

// anchor is one third-party server under test.
type anchor struct {
	name, addr, dir string
	version         string
	cmd             *exec.Cmd
	exited          chan struct{} // closed when cmd has been waited for
	logFile         string
}

// start runs a foreground server in its own process group, its output
// going to a.logFile.
func (a *anchor) start(name string, args ...string) error {
	out, err := os.Create(a.logFile)
	if err != nil {
		return err
	}
	a.cmd = exec.Command(name, args...)
	a.cmd.Stdout, a.cmd.Stderr = out, out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		out.Close()
		return err
	}
	a.exited = make(chan struct{})
	go func() {
		a.cmd.Wait()
		out.Close()
		close(a.exited)
	}()
	return nil
}

// waitListening waits until both ports accept connections.
func (a *anchor) waitListening() error {
	deadline := time.Now().Add(startTimeout)
	for _, port := range []string{"5222", "5223"} {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a.addr, port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-a.exited:
				return fmt.Errorf("exited before listening on %s:%s; its log %s:\n%s", a.addr, port, a.logFile, tail(a.logFile))
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not listening on %s:%s within %v; its log %s:\n%s", a.addr, port, startTimeout, a.logFile, tail(a.logFile))
			}
		}
	}
	return nil
}

// stop asks the server to stop (graceful, by the given command or
// SIGTERM), then kills its process group if it is still there.
func (a *anchor) stop(graceful func()) {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	select {
	case <-a.exited:
		log.Printf("%s had already exited: %v", a.name, a.cmd.ProcessState)
		return
	default:
	}
	if graceful != nil {
		graceful()
	} else {
		a.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-a.exited:
		log.Printf("%s stopped", a.name)
	case <-time.After(stopTimeout):
		log.Printf("%s did not stop within %v: killing its process group %d", a.name, stopTimeout, a.cmd.Process.Pid)
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}

// --- Prosody ---

func startProsody(ctx context.Context, a *anchor, passwords map[string]string, cl *cleanups) error {
	a.version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "prosody"))
	a.logFile = filepath.Join(a.dir, "prosody.out")
	cfg := filepath.Join(a.dir, "prosody.cfg.lua")
	data := filepath.Join(a.dir, "data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		return err
	}
	// Close to Debian's prosody.cfg.lua, minus what would reach outside the
	// temporary directory (pidfile, syslog, posix daemonizing) and the
	// c2s bandwidth limit, plus direct TLS. Passwords are stored hashed
	// (internal_hashed, the default), so it offers SCRAM-SHA-1 only, beside
	// PLAIN; with internal_plain it would offer SCRAM-SHA-256 too.
	conf := fmt.Sprintf(`-- written by conformance/anchors
run_as_root = true -- started as root by the test harness, in a throwaway directory
daemonize = false
data_path = %[1]q
interfaces = { %[2]q }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { 5223 }
s2s_ports = { }
c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
certificates = %[3]q
ssl = { certificate = %[4]q; key = %[5]q }
log = { { levels = { min = "info" }, to = "file", filename = %[6]q } }
modules_enabled = {
	"disco"; "roster"; "saslauth"; "tls"; "blocklist"; "carbons"; "pep"; "private";
	"smacks"; "vcard4"; "vcard_legacy"; "csi_simple"; "ping"; "time"; "uptime"; "version";
}
VirtualHost %[7]q
`, data, a.addr, a.dir, filepath.Join(a.dir, domain+".crt"), filepath.Join(a.dir, domain+".key"),
		filepath.Join(a.dir, "prosody.log"), domain)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	for _, user := range []string{"alice", "bob"} {
		if err := runCmd(ctx, nil, "prosodyctl", "--config", cfg, "register", user, domain, passwords[user]); err != nil {
			return err
		}
	}
	if err := a.start("prosody", "--config", cfg, "-F"); err != nil {
		return err
	}
	cl.add(func() { a.stop(nil) })
	return a.waitListening()
}

// --- ejabberd ---

func startEjabberd(ctx context.Context, a *anchor, passwords map[string]string, cl *cleanups) error {
	a.version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "ejabberd"))
	a.logFile = filepath.Join(a.dir, "ejabberd.out")
	for _, d := range []string{"logs", "spool"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o750); err != nil {
			return err
		}
	}
	// Close to Debian's ejabberd.yml (its TLS options, PLAIN allowed over
	// TLS, DIGEST-MD5 and X-OAUTH2 disabled, stored SCRAM keys), with only
	// the two c2s listeners, SCRAM-SHA-256 keys instead of SHA-1, and the
	// modules a client expects at login.
	conf := fmt.Sprintf(`# written by conformance/anchors
hosts:
  - %[1]s
loglevel: info
log_rotate_count: 0
certfiles:
  - %[2]q
define_macro:
  'TLS_OPTIONS':
    - "no_sslv3"
    - "no_tlsv1"
    - "no_tlsv1_1"
    - "cipher_server_preference"
    - "no_compression"
c2s_protocol_options: 'TLS_OPTIONS'
listen:
  -
    port: 5222
    ip: %[3]q
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls_required: true
  -
    port: 5223
    ip: %[3]q
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    tls: true
disable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  c2s:
    allow: all
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_caps: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_private: {}
  mod_roster:
    versioning: true
  mod_stream_mgmt: {}
  mod_vcard: {}
  mod_version: {}
  mod_blocking: {}
  mod_privacy: {}
  mod_pubsub:
    plugins:
      - flat
      - pep
`, domain, filepath.Join(a.dir, domain+".pem"), a.addr)
	if err := os.WriteFile(filepath.Join(a.dir, "ejabberd.yml"), []byte(conf), 0o644); err != nil {
		return err
	}
	// ejabberdctl reads ejabberdctl.cfg and Erlang's inetrc from the
	// config directory: Debian's, with the pid file out of /run.
	ctlConf := fmt.Sprintf("ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\nEJABBERD_PID_PATH=%s\n", filepath.Join(a.dir, "ejabberd.pid"))
	inetrc := "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\",\"hostalias\"]}.\n{file, resolv, \"/etc/resolv.conf\"}.\n"
	for name, data := range map[string]string{"ejabberdctl.cfg": ctlConf, "inetrc": inetrc} {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := runCmd(ctx, nil, "chown", "-R", "ejabberd:ejabberd", a.dir); err != nil {
		return err
	}
	ctl := func(args ...string) []string {
		return append([]string{"--config-dir", a.dir, "--config", filepath.Join(a.dir, "ejabberd.yml"),
			"--logs", filepath.Join(a.dir, "logs"), "--spool", filepath.Join(a.dir, "spool"),
			"--node", ejabberdNode}, args...)
	}
	// epmd (Erlang's port mapper) is started by the first Erlang node and
	// outlives it: stop it afterwards unless it was already running.
	epmdWasRunning := exec.Command("epmd", "-names").Run() == nil
	if err := a.start("ejabberdctl", ctl("foreground")...); err != nil {
		return err
	}
	cl.add(func() {
		a.stop(func() {
			if err := runCmd(context.Background(), nil, "ejabberdctl", ctl("stop")...); err != nil {
				log.Printf("ejabberdctl stop: %v", err)
			}
		})
		if !epmdWasRunning {
			runCmd(context.Background(), nil, "epmd", "-kill")
		}
	})
	if err := a.waitListening(); err != nil {
		return err
	}
	for _, user := range []string{"alice", "bob"} {
		if err := runCmd(ctx, nil, "ejabberdctl", ctl("register", user, domain, passwords[user])...); err != nil {
			return err
		}
	}
	return nil
}

// --- certificates ---

// writeCert writes a self-signed certificate for localhost into dir:
// localhost.crt and localhost.key, and both in localhost.pem (ejabberd's
// certfiles). The clients use the certificate itself as their CA file.
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"Starling conformance anchor"}},
		DNSNames:              []string{domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	for name, data := range map[string][]byte{
		domain + ".crt": certPEM,
		domain + ".key": keyPEM,
		domain + ".pem": append(append([]byte{}, certPEM...), keyPEM...),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			return err
		}
	}
	return nil
}

// --- helpers ---

func runCmd(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
