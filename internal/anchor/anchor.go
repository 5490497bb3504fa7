// Package anchor runs the two "anchors" Starling is compared with, Prosody
// and ejabberd from Debian packages, on loopback addresses in a throwaway
// directory: conformance/anchors runs the real-client suite against them
// and bench/compare runs cmd/starling-bench against them.
//
// Each server gets a self-signed ECDSA P-256 certificate for Domain (or the
// chain of Options.Chain: NewChain makes one with an RSA or ECDSA key), a configuration
// close to its Debian default (the modules a client expects at login, no
// rate limits, no archive unless Options.Archive), the given accounts,
// and listens on Addr:5222 (STARTTLS, required) and Addr:5223 (direct
// TLS), and for web clients on Addr:5280 (HTTP) and Addr:5281 (HTTPS), each with XMPP over
// WebSocket (RFC 7395) at /xmpp-websocket and BOSH (XEP-0206) at
// /http-bind: WebSocketURL and BOSHURL; with Options.Upload, HTTP file
// upload (XEP-0363) at UploadService(Domain), PUT and GET on the HTTPS
// port. Both are
// started in the foreground as children of the caller, with the caller's
// open-file limit (RaiseOpenFiles): Prosody as root, ejabberd as its own
// user. Everything here needs root.
//
// An anchor can also be a federation peer (Options.S2S): it then serves
// its own domain (Options.Domain) with a certificate from a test CA
// (Options.CA), listens for servers on Addr:5269 (STARTTLS) and
// Addr:5270 (direct TLS, XEP-0368), and authenticates them with SASL
// EXTERNAL only (XEP-0178; it trusts the CA), with dialback only
// (XEP-0220; it does not), or with either (Auth), TLS required both
// ways. Its logs (Log, Tail) show how each stream authenticated. It
// finds other servers through names the test arranges for it alone: it
// runs in a private mount namespace where a hosts file and a resolv.conf
// of its own are bind-mounted on /etc/hosts and /etc/resolv.conf, so
// the machine's files are never touched.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-xmpp/starling/internal/testca"
)

// Domain is the one virtual host of an anchor whose Options name none.
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

// The ports a federation peer listens on for other servers, at its own
// address.
const (
	S2SPort          = "5269" // STARTTLS
	S2SDirectTLSPort = "5270" // direct TLS (XEP-0368), ALPN xmpp-server
)

// ports are every port an anchor listens on.
var ports = []string{StartTLSPort, DirectTLSPort, HTTPPort, HTTPSPort}

const (
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
	// Domain is the server's one virtual host; "" is Domain
	// ("localhost").
	Domain string
	// CA, if not nil, issues the server's certificate for Domain, and
	// Server.CAFile is the CA's certificate; nil: a self-signed one.
	CA *testca.CA
	// ClientAuth gives the certificate from CA the extended key usage
	// clientAuth besides serverAuth, as public CAs issued before 2026:
	// ejabberd 23.01 takes SASL EXTERNAL only from a peer whose
	// certificate has it (testca.ServerAndClientAuth).
	ClientAuth bool
	// S2S, if not nil, makes the server a federation peer; it needs CA.
	S2S *S2S
	// Archive turns the message archive on (XEP-0313): Prosody's mod_mam
	// in its default storage (files), ejabberd's mod_mam in Mnesia, both
	// archiving every chat message by default and keeping it forever.
	Archive bool
	// Prosody is appended to Prosody's configuration, after the
	// VirtualHost (components: a pubsub service as the app server of
	// push notifications). Prosody only.
	Prosody string
	// Names are more names of the certificate from CA (components'
	// domains), beside Domain.
	Names []string
	// Chain, if not nil and CA is nil, is the server's certificate chain
	// instead of a self-signed certificate (NewChain): the same one for
	// every server of a comparison, so that each signs its handshakes
	// with the same key type and sends the same certificates.
	// Server.CAFile is then the chain's CA.
	Chain *Chain
	// Upload turns HTTP file upload on (XEP-0363) at UploadService(Domain),
	// listed in Domain's disco#items, its URLs on HTTPSPort: Prosody's
	// mod_http_file_share (a component), ejabberd's mod_http_upload
	// (request handler UploadPath), both with files up to UploadMaxSize,
	// quotas out of reach (UploadQuota a day) and the files in Dir.
	Upload bool
}

// HTTP file upload (Options.Upload).
const (
	UploadMaxSize = 100 << 20 // bytes, per file
	UploadQuota   = 1 << 40   // bytes a day per user (Prosody's daily quota)
	UploadPath    = "/upload" // ejabberd's; Prosody's is /file_share
)

// UploadService is the upload service's JID on domain.
func UploadService(domain string) string { return "upload." + domain }

// Auth is how a federation peer authenticates other servers, and lets
// them authenticate it.
type Auth int

const (
	// External: the peer trusts the test CA (Options.CA) for other
	// servers' certificates and uses SASL EXTERNAL (XEP-0178) both ways;
	// dialback is not loaded, so nothing else can succeed.
	External Auth = iota + 1
	// DialbackOnly: the peer trusts only the system's CAs, so no test
	// certificate validates, and uses dialback (XEP-0220) over TLS.
	DialbackOnly
	// ExternalOrDialback: the peer trusts the test CA and loads dialback
	// too, as a server usually runs: SASL EXTERNAL where the other side
	// accepts the certificate, dialback where it does not (XEP-0178 §4's
	// fallback), such as towards ejabberd 23.01 with a serverAuth-only
	// certificate.
	ExternalOrDialback
)

func (a Auth) String() string {
	switch a {
	case External:
		return "external"
	case DialbackOnly:
		return "dialback"
	case ExternalOrDialback:
		return "external-or-dialback"
	}
	return fmt.Sprintf("Auth(%d)", int(a))
}

// S2S makes an anchor a federation peer.
type S2S struct {
	Auth Auth
	// Hosts maps the domains the peer may have to reach (other peers,
	// Starling) to their loopback IP addresses: its private /etc/hosts,
	// besides localhost.
	Hosts map[string]string
	// Nameserver is the IP address of a DNS server on port 53, such as
	// internal/dnstest's, in the peer's private /etc/resolv.conf: for
	// SRV records (_xmpp-server, _xmpps-server). "" names the peer's own
	// address, where nothing answers DNS, so that SRV lookups fail at
	// once, never leave loopback, and the peer falls back to the address
	// of the domain on port 5269.
	Nameserver string
	// MaxRetryDelay bounds how long ejabberd refuses to retry a domain
	// it failed to reach (its s2s_max_retry_delay, 300 s by default);
	// 0 is one second, so that a test's later attempt is not bounced.
	MaxRetryDelay time.Duration
}

// Server is one running anchor.
type Server struct {
	Name    string
	Addr    string
	Dir     string
	Domain  string // its virtual host
	Version string // the Debian package's version
	// CAFile is what clients trust as the CA of its certificate: the test
	// CA's certificate (Options.CA), or the self-signed certificate itself.
	CAFile string
	// CertFile and KeyFile are its certificate (PEM, the chain from the
	// leaf on) and key, for Domain.
	CertFile, KeyFile string
	S2S               *S2S // its federation settings; nil when it is none

	cmd      *exec.Cmd
	exited   chan struct{}                 // closed when cmd has been waited for
	logFile  string                        // its standard output and error
	logs     []string                      // its log files, logFile included
	ports    []string                      // every port it listens on
	node     string                        // ejabberd's Erlang node name
	graceful func()                        // asks the server to stop; nil: SIGTERM
	archive  bool                          // Options.Archive
	upload   bool                          // Options.Upload
	after    func()                        // runs once it has stopped
	ctl      func(args ...string) []string // ejabberdctl's arguments for this node
}

// Start writes the anchor's certificate and configuration into o.Dir,
// creates the accounts and starts the server in the foreground, as a child
// of this process in its own process group. It returns once every port
// accepts connections. On error nothing is left running.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Domain == "" {
		o.Domain = Domain
	}
	s := &Server{Name: o.Name, Addr: o.Addr, Dir: o.Dir, Domain: o.Domain, S2S: o.S2S, ports: ports, archive: o.Archive, upload: o.Upload}
	if o.S2S != nil {
		if o.CA == nil {
			return nil, fmt.Errorf("%s: a federation peer needs a CA for its certificate", o.Name)
		}
		if o.S2S.Auth < External || o.S2S.Auth > ExternalOrDialback {
			return nil, fmt.Errorf("%s: no S2S.Auth", o.Name)
		}
		s.ports = append(slices.Clip(ports), S2SPort, S2SDirectTLSPort)
	}
	for _, port := range s.ports {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(o.Addr, port), time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("something already listens on %s:%s, where %s is to run", o.Addr, port, o.Name)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.writeCert(o.CA, o.ClientAuth, o.Names, o.Chain); err != nil {
		return nil, err
	}
	if o.S2S != nil {
		if err := s.writeNames(); err != nil {
			return nil, err
		}
	}
	var err error
	switch o.Name {
	case "prosody":
		err = s.startProsody(ctx, o.Accounts, o.Prosody)
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
	for _, port := range s.ports {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Addr, port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				return fmt.Errorf("exited before listening on %s:%s; its logs:\n%s", s.Addr, port, s.Tail())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not listening on %s:%s within %v; its logs:\n%s", s.Addr, port, startTimeout, s.Tail())
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

// Ejabberdctl runs `ejabberdctl COMMAND ARGS...` on the running ejabberd
// (its configuration directory, spool and node, as Stop does: as root,
// which ejabberdctl turns into the ejabberd user, so that files it names
// are read and written as that user) and returns its output.
func (s *Server) Ejabberdctl(ctx context.Context, args ...string) (string, error) {
	if s.Name != "ejabberd" || s.ctl == nil {
		return "", errors.New("not a running ejabberd")
	}
	out, err := exec.CommandContext(ctx, "ejabberdctl", s.ctl(args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ejabberdctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ProsodyConfig and ProsodyData are the configuration file and the data
// directory (data_path, internal storage) of a Prosody anchor.
func (s *Server) ProsodyConfig() string { return filepath.Join(s.Dir, "prosody.cfg.lua") }
func (s *Server) ProsodyData() string   { return filepath.Join(s.Dir, "data") }

// --- Prosody ---

func (a *Server) startProsody(ctx context.Context, passwords map[string]string, extra string) error {
	a.Version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "prosody"))
	a.logFile = filepath.Join(a.Dir, "prosody.out")
	a.logs = []string{filepath.Join(a.Dir, "prosody.log"), a.logFile}
	cfg := a.ProsodyConfig()
	data := a.ProsodyData()
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
-- mod_mam, when loaded (Options.Archive): every chat archived, kept forever
default_archive_policy = true
archive_expires_after = "never"
authentication = "internal_hashed"
certificates = %[3]q
log = { { levels = { min = %[10]q }, to = "file", filename = %[6]q } }
modules_enabled = {
	"disco"; "roster"; "saslauth"; "tls"; "blocklist"; "carbons"; "pep"; "private";
	"smacks"; "vcard4"; "vcard_legacy"; "csi_simple"; "ping"; "time"; "uptime"; "version";
	"websocket"; "bosh";%[11]s
}
%[12]s
VirtualHost %[7]q
%[14]s%[13]s
`, data, a.Addr, a.Dir, a.CertFile, a.KeyFile,
		filepath.Join(a.Dir, "prosody.log"), a.Domain, HTTPPort, HTTPSPort,
		map[bool]string{false: "info", true: "debug"}[a.S2S != nil],
		map[bool]string{false: "", true: ` "dialback";`}[a.S2S != nil && a.S2S.Auth != External]+map[bool]string{false: "", true: ` "mam";`}[a.archive],
		a.prosodyS2S(), extra, a.prosodyUpload())
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	for _, user := range sortedKeys(passwords) {
		if err := runCmd(ctx, nil, "prosodyctl", "--config", cfg, "register", user, a.Domain, passwords[user]); err != nil {
			return err
		}
	}
	if err := a.start(a.command(nil, "prosody", "--config", cfg, "-F")); err != nil {
		return err
	}
	return a.waitListening()
}

// prosodyUpload is Prosody's HTTP file upload (Options.Upload), a
// mod_http_file_share component: files up to UploadMaxSize (bodies
// above http_max_content_size, 10 MiB, are streamed to disk), kept a
// day (the anchor's directory goes anyway), a daily quota out of reach,
// no global one (its default); its URLs are
// https://UploadService(Domain):HTTPSPort/file_share/…, the HTTPS port
// being the only one Prosody's module:http_url() names when there is one.
func (a *Server) prosodyUpload() string {
	if !a.upload {
		return ""
	}
	return fmt.Sprintf(`Component %q "http_file_share"
	http_file_share_size_limit = %d
	http_file_share_daily_quota = %d
	http_file_share_expires_after = 86400
`, UploadService(a.Domain), UploadMaxSize, UploadQuota)
}

// prosodyS2S is the global part of Prosody's configuration about
// federation: none for an anchor that is no peer (no s2s port).
//
// A peer requires TLS both ways (s2s_require_encryption, Prosody's
// default) and offers direct TLS on S2SDirectTLSPort, which its
// outgoing streams use too when an _xmpps-server SRV record says so. In
// External mode it trusts the test CA besides the system's
// (ssl.cafile), requires a valid certificate of every peer
// (s2s_secure_auth) and has no mod_dialback, so SASL EXTERNAL is the
// only way in or out; in DialbackOnly mode it trusts the system's CAs
// only and loads mod_dialback (s2s_secure_auth = false, the default);
// ExternalOrDialback is both: the test CA and mod_dialback. Prosody
// does not check the purpose (extended key usage) of a peer's
// certificate (its default ssl verifyext has lsec_ignore_purpose).
// Prosody's libunbound resolver ignores /etc/hosts unless told
// (hoststxt, which Prosody turns off by default): here it reads the
// private one, and the private resolv.conf. libunbound also answers
// NXDOMAIN itself for every name under the special-use domain test.
// (RFC 6761, one of unbound's default local zones): made transparent,
// so that names there reach the test's DNS server.
func (a *Server) prosodyS2S() string {
	if a.S2S == nil {
		return "s2s_ports = { }\nssl = { certificate = " + strconv.Quote(a.CertFile) + "; key = " + strconv.Quote(a.KeyFile) + " }\n"
	}
	ssl := fmt.Sprintf("certificate = %q; key = %q", a.CertFile, a.KeyFile)
	if a.S2S.Auth != DialbackOnly {
		ssl += fmt.Sprintf("; cafile = %q", a.CAFile)
	}
	return fmt.Sprintf(`s2s_ports = { %s }
s2s_direct_tls_ports = { %s }
s2s_require_encryption = true
s2s_secure_auth = %t
ssl = { %s }
unbound = { hoststxt = true; resolvconf = true; options = { ["local-zone:"] = "test. transparent" } }
`, S2SPort, S2SDirectTLSPort, a.S2S.Auth == External, ssl)
}

// --- ejabberd ---

// ejabberdNodes numbers the Erlang nodes of this process, so that two
// ejabberd instances, and the hidden nodes that register their accounts,
// never share a name.
var ejabberdNodes atomic.Int64

func (a *Server) startEjabberd(ctx context.Context, passwords map[string]string) error {
	a.Version = strings.TrimSpace(output("dpkg-query", "-W", "-f=${Version}", "ejabberd"))
	a.logFile = filepath.Join(a.Dir, "ejabberd.out")
	a.logs = []string{filepath.Join(a.Dir, "logs", "ejabberd.log"), filepath.Join(a.Dir, "logs", "error.log"), a.logFile}
	// The node's name is unique on the machine: two nodes of one name
	// cannot run at once (epmd refuses the second).
	a.node = fmt.Sprintf("ejabberd-anchor-%d-%d@localhost", os.Getpid(), ejabberdNodes.Add(1))
	for _, d := range []string{"logs", "spool", "upload"} {
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
%[11]s%[8]sdisable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
acl:
  loopback:
    ip:
      - 127.0.0.0/8
  anchor_users:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  anchor_upload:
    allow: anchor_users
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
%[10]s  mod_vcard: {}
  mod_version: {}
  mod_blocking: {}
  mod_privacy: {}
  mod_pubsub:
    plugins:
      - flat
      - pep
%[9]s%[12]s`, a.Domain, a.ejabberdPEM(), a.Addr, HTTPPort, HTTPSPort, WebSocketPath, BOSHPath, a.ejabberdS2S(), a.ejabberdS2SModules(),
		map[bool]string{false: "", true: "  mod_mam:\n    db_type: mnesia\n    default: always\n"}[a.archive],
		map[bool]string{false: "", true: fmt.Sprintf("      %q: mod_http_upload\n", UploadPath)}[a.upload], a.ejabberdUpload())
	if err := os.WriteFile(filepath.Join(a.Dir, "ejabberd.yml"), []byte(conf), 0o644); err != nil {
		return err
	}
	// ejabberdctl reads ejabberdctl.cfg and Erlang's inetrc from the
	// config directory: Debian's, with the pid file out of /run. The
	// inetrc names /etc/resolv.conf, which for a federation peer is its
	// private one (inet_res reads it for SRV records; address lookups go
	// through "file", the private /etc/hosts, then the system's
	// resolver, which reads both).
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
			"--node", a.node}, args...)
	}
	a.ctl = ctl
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
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	node := a.command(cred, append([]string{"ejabberdctl"}, ctl("foreground")...)...)
	node.Dir = filepath.Join(a.Dir, "spool")
	node.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
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
	return a.registerEjabberd(ctx, node.Env, cred, passwords)
}

// ejabberdUpload is ejabberd's HTTP file upload (Options.Upload):
// mod_http_upload on UploadService(Domain) (its default, upload.@HOST@),
// for the host's users (the ACL anchor_users, as Debian's "local"),
// files up to UploadMaxSize in Dir/upload, PUT and GET at
// https://Domain:HTTPSPort/upload (the request handler UploadPath on the
// HTTPS listener), no thumbnails; no mod_http_upload_quota, so no quota.
func (a *Server) ejabberdUpload() string {
	if !a.upload {
		return ""
	}
	return fmt.Sprintf(`  mod_http_upload:
    host: %q
    access: anchor_upload
    put_url: %q
    docroot: %q
    max_size: %d
    thumbnail: false
`, UploadService(a.Domain), "https://@HOST@:"+HTTPSPort+UploadPath, filepath.Join(a.Dir, "upload"), UploadMaxSize)
}

// ejabberdPEM is the path of ejabberd's certfile, the certificate chain
// and its key in one file (writeCert writes it).
func (a *Server) ejabberdPEM() string {
	return filepath.Join(a.Dir, a.Domain+".pem")
}

// ejabberdS2S is the global part of ejabberd's configuration about
// federation: none for an anchor that is no peer (then ejabberd has no
// s2s listener, and dialback is not loaded).
//
// A peer listens with ejabberd_s2s_in on S2SPort (STARTTLS) and
// S2SDirectTLSPort (tls: true; its outgoing streams use direct TLS when
// an _xmpps-server SRV record says so) and requires TLS both ways
// (s2s_use_starttls: required). In External mode it trusts the test CA
// (ca_file: only that CA, instead of the system's bundle) and has no
// mod_s2s_dialback, so SASL EXTERNAL is the only way in or out; in
// DialbackOnly mode it keeps the system's bundle (no test certificate
// validates) and loads mod_s2s_dialback; ExternalOrDialback is both.
// ejabberd offers SASL EXTERNAL on every TLS stream and checks the
// certificate only when asked for it, so a peer in DialbackOnly mode
// still sees EXTERNAL offered, fail, and must fall back to dialback.
// ejabberd 23.01 checks that a peer's certificate is for clientAuth,
// and refuses EXTERNAL to one that has serverAuth only (Let's Encrypt's
// since 2026; Options.ClientAuth). A failed attempt to reach a
// domain makes ejabberd bounce everything for it for a random time up
// to s2s_max_retry_delay: kept short (S2S.MaxRetryDelay).
func (a *Server) ejabberdS2S() string {
	if a.S2S == nil {
		return ""
	}
	retry := int(a.S2S.MaxRetryDelay / time.Second)
	if retry < 1 {
		retry = 1
	}
	conf := fmt.Sprintf(`  -
    port: %[1]s
    ip: %[3]q
    module: ejabberd_s2s_in
    max_stanza_size: 524288
  -
    port: %[2]s
    ip: %[3]q
    module: ejabberd_s2s_in
    max_stanza_size: 524288
    tls: true
s2s_use_starttls: required
s2s_protocol_options: 'TLS_OPTIONS'
s2s_max_retry_delay: %[4]d
s2s_dns_timeout: 2
s2s_dns_retries: 1
`, S2SPort, S2SDirectTLSPort, a.Addr, retry)
	if a.S2S.Auth != DialbackOnly {
		conf += fmt.Sprintf("ca_file: %q\n", a.CAFile)
	}
	return conf
}

// ejabberdS2SModules are the modules a federation peer adds.
func (a *Server) ejabberdS2SModules() string {
	if a.S2S != nil && a.S2S.Auth != External {
		return "  mod_s2s_dialback: {}\n"
	}
	return ""
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
halt(case Bad of [] -> 0; _ -> 1 end).`, a.node, startTimeout/(100*time.Millisecond), list, bin(a.Domain))
	cmd := exec.CommandContext(ctx, "erl", "-sname", fmt.Sprintf("anchor-register-%d-%d@localhost", os.Getpid(), ejabberdNodes.Add(1)),
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

// writeCert writes the server's certificate for its domain into its
// directory, DOMAIN.crt (the chain from the leaf on) and DOMAIN.key, and
// both in DOMAIN.pem (ejabberd's certfiles): issued by ca (with
// clientAuth, also for that extended key usage), whose certificate is
// then ca.crt, the CA clients trust; or, with no ca, chain's (then CAFile
// is the chain's CA); or, with neither, a self-signed one, which is its
// own CA.
func (a *Server) writeCert(ca *testca.CA, clientAuth bool, names []string, chain *Chain) error {
	var certPEM, keyPEM []byte
	if ca != nil {
		usages := testca.ServerAuth
		if clientAuth {
			usages = testca.ServerAndClientAuth
		}
		certFile, keyFile, err := ca.WriteFilesUsages(a.Dir, a.Domain, usages, append([]string{a.Domain}, names...)...)
		if err != nil {
			return err
		}
		a.CAFile = filepath.Join(a.Dir, "ca.crt")
		if err := ca.WriteCA(a.CAFile); err != nil {
			return err
		}
		if certPEM, err = os.ReadFile(certFile); err != nil {
			return err
		}
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return err
		}
	} else if chain != nil {
		var err error
		if certPEM, keyPEM, err = chain.read(); err != nil {
			return err
		}
		a.CAFile = chain.CAFile
	} else {
		var err error
		if certPEM, keyPEM, err = selfSigned(a.Domain); err != nil {
			return err
		}
		a.CAFile = filepath.Join(a.Dir, a.Domain+".crt")
	}
	a.CertFile, a.KeyFile = filepath.Join(a.Dir, a.Domain+".crt"), filepath.Join(a.Dir, a.Domain+".key")
	for name, data := range map[string][]byte{
		a.CertFile:      certPEM,
		a.KeyFile:       keyPEM,
		a.ejabberdPEM(): append(append([]byte{}, certPEM...), keyPEM...),
	} {
		if err := os.WriteFile(name, data, 0o640); err != nil {
			return err
		}
	}
	return nil
}

// selfSigned makes a self-signed certificate for domain, which clients
// use as their CA file.
func selfSigned(domain string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"Starling anchor"}},
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
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// --- name resolution of a federation peer ---

// writeNames writes the peer's private hosts file and resolv.conf into
// its directory (hosts, resolv.conf), which command bind-mounts on
// /etc/hosts and /etc/resolv.conf in its mount namespace.
func (a *Server) writeNames() error {
	var hosts strings.Builder
	hosts.WriteString("# written by internal/anchor for " + a.Domain + "\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, name := range sortedKeys(a.S2S.Hosts) {
		ip := a.S2S.Hosts[name]
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("S2S.Hosts: %q for %s is no IP address", ip, name)
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	ns := a.S2S.Nameserver
	if ns == "" {
		ns = a.Addr
	}
	if net.ParseIP(ns) == nil {
		return fmt.Errorf("S2S.Nameserver: %q is no IP address", ns)
	}
	resolv := "# written by internal/anchor for " + a.Domain + "\nnameserver " + ns + "\noptions timeout:1 attempts:1\n"
	if err := os.WriteFile(filepath.Join(a.Dir, "hosts"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(a.Dir, "resolv.conf"), []byte(resolv), 0o644)
}

// command is the server process argv, as the user cred (nil: root).
// A federation peer runs in a private mount namespace (unshare) where
// its hosts and resolv.conf are bind-mounted on the machine's, which
// only it sees; it then becomes cred with setpriv, which unlike su and
// runuser opens no PAM session, so it keeps the open-file limit.
func (a *Server) command(cred *syscall.Credential, argv ...string) *exec.Cmd {
	if a.S2S == nil {
		cmd := exec.Command(argv[0], argv[1:]...)
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	const script = `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"`
	args := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
		filepath.Join(a.Dir, "hosts"), filepath.Join(a.Dir, "resolv.conf")}
	if cred != nil {
		args = append(args, "setpriv", "--reuid", strconv.Itoa(int(cred.Uid)), "--regid", strconv.Itoa(int(cred.Gid)), "--init-groups", "--")
	}
	return exec.Command("unshare", append(args, argv...)...)
}

// --- logs ---

// LogFiles are the server's log files: its own log and its standard
// output and error.
func (s *Server) LogFiles() []string { return slices.Clone(s.logs) }

// Log is the whole of its log files, each under a line naming it.
func (s *Server) Log() string {
	var b strings.Builder
	for _, f := range s.logs {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, data)
	}
	return b.String()
}

// Tail is the end of each log file, each under a line naming it: what a
// failing test shows.
func (s *Server) Tail() string {
	var b strings.Builder
	for _, f := range s.logs {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, tail(f))
	}
	return b.String()
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
