// Package anchor runs the two "anchors" Starling is compared with, Prosody
// and ejabberd from Debian packages, on loopback addresses in a throwaway
// directory: conformance/anchors runs the real-client suite against them
// and bench/compare runs cmd/starling-bench against them.
//
// Each server gets a self-signed certificate for Domain, a configuration
// close to its Debian default (the modules a client expects at login, no
// rate limits, no archive), the given accounts, and listens on
// Addr:5222 (STARTTLS, required) and Addr:5223 (direct TLS), and for web
// clients on Addr:5280 (HTTP) and Addr:5281 (HTTPS), each with XMPP over
// WebSocket (RFC 7395) at /xmpp-websocket and BOSH (XEP-0206) at
// /http-bind: WebSocketURL and BOSHURL. Both are
// started in the foreground as children of the caller, with the caller's
// open-file limit (RaiseOpenFiles): Prosody as root, ejabberd as its own
// user. Everything here needs root.
package anchor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Domain is the one virtual host of every anchor.
const Domain = "localhost"

// The ports every anchor listens on, at its own address.
const (
	StartTLSPort  = "5222"
	DirectTLSPort = "5223"
	HTTPPort      = "5280" // plain HTTP: WebSocket and BOSH, treated as secure (loopback only)
	HTTPSPort     = "5281" // HTTPS with the same certificate as the XMPP ports
)

// The paths of the web transports on both HTTP ports: Prosody's defaults,
// and ejabberd is configured to match.
const (
	WebSocketPath = "/xmpp-websocket"
	BOSHPath      = "/http-bind"
)

// ports are every port an anchor listens on.
var ports = []string{StartTLSPort, DirectTLSPort, HTTPPort, HTTPSPort}

const (
	ejabberdNode   = "ejabberd-anchor@localhost"
	startTimeout   = time.Minute
	stopTimeout    = 30 * time.Second
	openFilesLimit = 65536
)

// RaiseOpenFiles lifts this process's soft open-file limit to the hard one
// (at most openFilesLimit), which the servers inherit (started the
// Debian way through su, they would get 1024).
func RaiseOpenFiles() error {
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

// Install installs prosody and ejabberd if missing, without letting
// the packages start their system services.
func Install(ctx context.Context) error {
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

// Options says where and how to run one anchor.
type Options struct {
	Name     string            // "prosody" or "ejabberd"
	Addr     string            // loopback IP address to listen on (5222 STARTTLS, 5223 direct TLS)
	Dir      string            // working directory, created; the caller removes it
	Accounts map[string]string // username → password, created on Domain
}

// Server is one running anchor.
type Server struct {
	Name    string
	Addr    string
	Dir     string
	Version string // the Debian package's version
	CAFile  string // its self-signed certificate for Domain, which clients trust as their CA

	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	logFile  string
	graceful func() // asks the server to stop; nil: SIGTERM
	after    func() // runs once it has stopped
}

// Start writes the anchor's certificate and configuration into o.Dir,
// creates the accounts and starts the server in the foreground, as a child
// of this process in its own process group. It returns once both ports
// accept connections. On error nothing is left running.
func Start(ctx context.Context, o Options) (*Server, error) {
	for _, port := range ports {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(o.Addr, port), time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("something already listens on %s:%s, where %s is to run", o.Addr, port, o.Name)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeCert(o.Dir); err != nil {
		return nil, err
	}
	s := &Server{Name: o.Name, Addr: o.Addr, Dir: o.Dir, CAFile: filepath.Join(o.Dir, Domain+".crt")}
	var err error
	switch o.Name {
	case "prosody":
		err = s.startProsody(ctx, o.Accounts)
	case "ejabberd":
		err = s.startEjabberd(ctx, o.Accounts)
	default:
		err = errors.New("unknown server")
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	return s, nil
}

// PID is the process that does the server's work, for CPU and memory
// readings: Prosody's Lua process, or ejabberd's Erlang VM (beam.smp),
// which ejabberdctl starts as a descendant in the same process group.
func (s *Server) PID() (int, error) {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0, errors.New("not started")
	}
	if s.Name != "ejabberd" {
		return s.cmd.Process.Pid, nil
	}
	pgid := s.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(comm)) != "beam.smp" {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no beam.smp in ejabberd's process group %d", pgid)
}

// start runs cmd, a foreground server, in its own process group, its
// output going to s.logFile.
func (s *Server) start(cmd *exec.Cmd) error {
	out, err := os.Create(s.logFile)
	if err != nil {
		return err
	}
	s.cmd = cmd
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if s.cmd.SysProcAttr == nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	s.cmd.SysProcAttr.Setpgid = true
	if err := s.cmd.Start(); err != nil {
		out.Close()
		s.cmd = nil
		return err
	}
	s.exited = make(chan struct{})
	go func() {
		s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	return nil
}

// WebSocketURL is the anchor's XMPP over WebSocket endpoint: wss:// on
// HTTPSPort with tls, else ws:// on HTTPPort.
func (s *Server) WebSocketURL(tls bool) string {
	if tls {
		return "wss://" + net.JoinHostPort(s.Addr, HTTPSPort) + WebSocketPath
	}
	return "ws://" + net.JoinHostPort(s.Addr, HTTPPort) + WebSocketPath
}

// BOSHURL is the anchor's BOSH endpoint: https:// on HTTPSPort with tls,
// else http:// on HTTPPort.
func (s *Server) BOSHURL(tls bool) string {
	if tls {
		return "https://" + net.JoinHostPort(s.Addr, HTTPSPort) + BOSHPath
	}
	return "http://" + net.JoinHostPort(s.Addr, HTTPPort) + BOSHPath
}

// waitListening waits until every port accepts connections.
func (s *Server) waitListening() error {
	deadline := time.Now().Add(startTimeout)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Addr, port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				return fmt.Errorf("exited before listening on %s:%s; its log %s:\n%s", s.Addr, port, s.logFile, tail(s.logFile))
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not listening on %s:%s within %v; its log %s:\n%s", s.Addr, port, startTimeout, s.logFile, tail(s.logFile))
			}
		}
	}
	return nil
}

// Stop asks the server to stop (its own stop command, or SIGTERM), then
// kills its process group if it is still there after stopTimeout.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		log.Printf("%s had already exited: %v", s.Name, s.cmd.ProcessState)
	default:
		if s.graceful != nil {
			s.graceful()
		} else {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-s.exited:
			log.Printf("%s stopped", s.Name)
		case <-time.After(stopTimeout):
			log.Printf("%s did not stop within %v: killing its process group %d", s.Name, stopTimeout, s.cmd.Process.Pid)
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	s.cmd = nil
	if s.after != nil {
		s.after()
	}
}

// --- Prosody ---

func (a *Server) startProsody(ctx context.Context, passwords map[string]string) error {
	a.Version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "prosody"))
	a.logFile = filepath.Join(a.Dir, "prosody.out")
	cfg := filepath.Join(a.Dir, "prosody.cfg.lua")
	data := filepath.Join(a.Dir, "data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		return err
	}
	// Close to Debian's prosody.cfg.lua, minus what would reach outside the
	// temporary directory (pidfile, syslog, posix daemonizing) and the
	// c2s bandwidth limit, plus direct TLS, WebSocket and BOSH. Passwords
	// are stored hashed (internal_hashed, the default), so it offers
	// SCRAM-SHA-1 only, beside PLAIN; with internal_plain it would offer
	// SCRAM-SHA-256 too. The web transports answer on HTTPS with the
	// certificate of the XMPP ports, and on plain HTTP, which is on a
	// loopback address only and so counts as secure (c2s_require_encryption
	// holds for them); any Host header gets the one virtual host, and CORS
	// (Prosody's default) lets a page of any origin use BOSH.
	conf := fmt.Sprintf(`-- written by internal/anchor
run_as_root = true -- started as root by the test harness, in a throwaway directory
daemonize = false
data_path = %[1]q
interfaces = { %[2]q }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { 5223 }
s2s_ports = { }
c2s_require_encryption = true
http_ports = { %[8]s }
http_interfaces = { %[2]q }
https_ports = { %[9]s }
https_interfaces = { %[2]q }
https_ssl = { certificate = %[4]q; key = %[5]q }
http_default_host = %[7]q
consider_websocket_secure = true
consider_bosh_secure = true
allow_registration = false
authentication = "internal_hashed"
certificates = %[3]q
ssl = { certificate = %[4]q; key = %[5]q }
log = { { levels = { min = "info" }, to = "file", filename = %[6]q } }
modules_enabled = {
	"disco"; "roster"; "saslauth"; "tls"; "blocklist"; "carbons"; "pep"; "private";
	"smacks"; "vcard4"; "vcard_legacy"; "csi_simple"; "ping"; "time"; "uptime"; "version";
	"websocket"; "bosh";
}
VirtualHost %[7]q
`, data, a.Addr, a.Dir, filepath.Join(a.Dir, Domain+".crt"), filepath.Join(a.Dir, Domain+".key"),
		filepath.Join(a.Dir, "prosody.log"), Domain, HTTPPort, HTTPSPort)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	for _, user := range sortedKeys(passwords) {
		if err := runCmd(ctx, nil, "prosodyctl", "--config", cfg, "register", user, Domain, passwords[user]); err != nil {
			return err
		}
	}
	if err := a.start(exec.Command("prosody", "--config", cfg, "-F")); err != nil {
		return err
	}
	return a.waitListening()
}

// --- ejabberd ---

func (a *Server) startEjabberd(ctx context.Context, passwords map[string]string) error {
	a.Version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "ejabberd"))
	a.logFile = filepath.Join(a.Dir, "ejabberd.out")
	for _, d := range []string{"logs", "spool"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, d), 0o750); err != nil {
			return err
		}
	}
	// Close to Debian's ejabberd.yml (its TLS options, PLAIN allowed over
	// TLS, DIGEST-MD5 and X-OAUTH2 disabled, stored SCRAM keys), with only
	// the two c2s listeners (their accept backlog raised from ejabberd's
	// default of 5, which refuses bursts of connections) and the two HTTP
	// ones with WebSocket and BOSH at Prosody's paths, SCRAM-SHA-256 keys
	// instead of SHA-1, and the modules a client expects at login.
	conf := fmt.Sprintf(`# written by internal/anchor
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
    backlog: 1024
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls_required: true
  -
    port: 5223
    ip: %[3]q
    backlog: 1024
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    tls: true
  -
    port: %[4]s
    ip: %[3]q
    backlog: 1024
    module: ejabberd_http
    request_handlers:
      %[6]q: ejabberd_http_ws
      %[7]q: mod_bosh
  -
    port: %[5]s
    ip: %[3]q
    backlog: 1024
    module: ejabberd_http
    tls: true
    request_handlers:
      %[6]q: ejabberd_http_ws
      %[7]q: mod_bosh
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
  mod_bosh: {}
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
`, Domain, filepath.Join(a.Dir, Domain+".pem"), a.Addr, HTTPPort, HTTPSPort, WebSocketPath, BOSHPath)
	if err := os.WriteFile(filepath.Join(a.Dir, "ejabberd.yml"), []byte(conf), 0o644); err != nil {
		return err
	}
	// ejabberdctl reads ejabberdctl.cfg and Erlang's inetrc from the
	// config directory: Debian's, with the pid file out of /run.
	ctlConf := fmt.Sprintf("ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\nEJABBERD_PID_PATH=%s\n", filepath.Join(a.Dir, "ejabberd.pid"))
	inetrc := "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\",\"hostalias\"]}.\n{file, resolv, \"/etc/resolv.conf\"}.\n"
	for name, data := range map[string]string{"ejabberdctl.cfg": ctlConf, "inetrc": inetrc} {
		if err := os.WriteFile(filepath.Join(a.Dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := runCmd(ctx, nil, "chown", "-R", "ejabberd:ejabberd", a.Dir); err != nil {
		return err
	}
	ctl := func(args ...string) []string {
		return append([]string{"--config-dir", a.Dir, "--config", filepath.Join(a.Dir, "ejabberd.yml"),
			"--logs", filepath.Join(a.Dir, "logs"), "--spool", filepath.Join(a.Dir, "spool"),
			"--node", ejabberdNode}, args...)
	}
	// epmd (Erlang's port mapper) is started by the first Erlang node and
	// outlives it: stop it afterwards unless it was already running.
	epmdWasRunning := exec.Command("epmd", "-names").Run() == nil
	// Started as root, ejabberdctl would run the node through su, whose
	// PAM session resets the open-file limit to 1024 (a few thousand
	// sessions then fail). So it runs as the ejabberd user directly, in
	// the environment su would give it: HOME holds the Erlang cookie that
	// `ejabberdctl stop`, run as root through su, uses too.
	u, err := user.Lookup("ejabberd")
	if err != nil {
		return err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return err
	}
	node := exec.Command("ejabberdctl", ctl("foreground")...)
	node.Dir = filepath.Join(a.Dir, "spool")
	node.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	node.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := a.start(node); err != nil {
		return err
	}
	a.graceful = func() {
		if err := runCmd(context.Background(), nil, "ejabberdctl", ctl("stop")...); err != nil {
			log.Printf("ejabberdctl stop: %v", err)
		}
	}
	if !epmdWasRunning {
		a.after = func() { runCmd(context.Background(), nil, "epmd", "-kill") }
	}
	if err := a.waitListening(); err != nil {
		return err
	}
	return a.registerEjabberd(ctx, node.Env, node.SysProcAttr.Credential, passwords)
}

// registerEjabberd creates the accounts on the running node from one
// hidden Erlang node (ejabberd_auth:try_register over rpc), which takes
// a second where `ejabberdctl register`, an Erlang VM per account, takes
// a second each. The list goes through a file, not the command line; the
// node runs as the ejabberd user, whose HOME holds the cookie.
func (a *Server) registerEjabberd(ctx context.Context, env []string, cred *syscall.Credential, passwords map[string]string) error {
	if len(passwords) == 0 {
		return nil
	}
	// Each name and password as a binary of byte values: nothing to quote.
	bin := func(s string) string {
		b := make([]string, len(s))
		for i := range len(s) {
			b[i] = strconv.Itoa(int(s[i]))
		}
		return "<<" + strings.Join(b, ",") + ">>"
	}
	var terms strings.Builder
	for _, user := range sortedKeys(passwords) {
		fmt.Fprintf(&terms, "{%s,%s}.\n", bin(user), bin(passwords[user]))
	}
	list := filepath.Join(a.Dir, "accounts.eterm")
	if err := os.WriteFile(list, []byte(terms.String()), 0o600); err != nil {
		return err
	}
	defer os.Remove(list)
	if err := os.Chown(list, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	// The listeners are up before the application has finished starting
	// (and created its tables): wait for it first, as ejabberdctl does.
	eval := fmt.Sprintf(`N = '%s',
Started = fun() -> case rpc:call(N, application, which_applications, []) of
	Apps when is_list(Apps) -> lists:keymember(ejabberd, 1, Apps); _ -> false end end,
Wait = fun W(0) -> io:format("ejabberd has not started~n"), halt(1);
	W(I) -> case Started() of true -> ok; false -> timer:sleep(100), W(I - 1) end end,
Wait(%d),
{ok, L} = file:consult(%q),
Bad = [{U, R} || {U, P} <- L, (R = rpc:call(N, ejabberd_auth, try_register, [U, %s, P])) =/= ok],
io:format("~p~n", [Bad]),
halt(case Bad of [] -> 0; _ -> 1 end).`, ejabberdNode, startTimeout/(100*time.Millisecond), list, bin(Domain))
	cmd := exec.CommandContext(ctx, "erl", "-sname", fmt.Sprintf("anchor-register-%d@localhost", os.Getpid()),
		"-hidden", "-noinput", "-eval", eval)
	cmd.Dir = filepath.Join(a.Dir, "spool")
	cmd.Env = append(env, "ERL_INETRC="+filepath.Join(a.Dir, "inetrc"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("registering %d accounts: %v: %s", len(passwords), err, out)
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
		Subject:               pkix.Name{CommonName: Domain, Organization: []string{"Starling anchor"}},
		DNSNames:              []string{Domain},
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
		Domain + ".crt": certPEM,
		Domain + ".key": keyPEM,
		Domain + ".pem": append(append([]byte{}, certPEM...), keyPEM...),
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

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
