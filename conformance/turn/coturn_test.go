// Package turn checks external service discovery (XEP-0215, xep/extdisco)
// against a real TURN server: Debian's coturn, started on loopback with
// use-auth-secret and a static-auth-secret, the same secret in
// [modules.extdisco]. A client logged in to an in-process Starling asks
// for the services over XMPP and allocates a relay on coturn with the
// credentials it got, by turnutils_uclient (coturn's test client: two
// allocations that send to each other through their relays). A wrong
// password and expired credentials must be refused. Without coturn the
// test is skipped, or fails under STARLING_REQUIRE_ALL=1 (`make check`
// installs it).
package turn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/xep/extdisco"
)

// clientTimeout bounds one turnutils_uclient run (a good one takes about
// five seconds: its own pacing).
const clientTimeout = time.Minute

func TestCoturn(t *testing.T) {
	turnserver, err1 := exec.LookPath("turnserver")
	uclient, err2 := exec.LookPath("turnutils_uclient")
	testbin.Require(t, "coturn (Debian package coturn: turnserver, turnutils_uclient)", err1 == nil && err2 == nil)

	secret := rand.Text()
	port := freePort(t)
	startCoturn(t, turnserver, port, secret)

	parsed, err := config.Parse([]byte(fmt.Sprintf(`[modules.extdisco]
services = [{type = "stun", host = "127.0.0.1", port = %d}, {type = "turn", host = "127.0.0.1", port = %d, secret = %q, ttl = "1h"}]
`, port, port, secret)))
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, func(c *config.Config) { c.Modules = parsed.Modules })
	srv.AddUser(t, "alice", "alice-secret")
	c := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")

	// The credentials, over XMPP (XEP-0215 §3.2).
	c.Send("<iq type='get' id='s1' to='" + srv.Domain + "'><services xmlns='urn:xmpp:extdisco:2' type='turn'/></iq>")
	answer := c.MustNext()
	var res struct {
		Type     string `xml:"type,attr"`
		Services struct {
			Service []struct {
				Type      string `xml:"type,attr"`
				Host      string `xml:"host,attr"`
				Port      int    `xml:"port,attr"`
				Transport string `xml:"transport,attr"`
				Username  string `xml:"username,attr"`
				Password  string `xml:"password,attr"`
				Expires   string `xml:"expires,attr"`
			} `xml:"service"`
		} `xml:"urn:xmpp:extdisco:2 services"`
	}
	if err := xml.Unmarshal(answer.Raw, &res); err != nil || res.Type != "result" || len(res.Services.Service) != 1 {
		t.Fatalf("services: %s (%v)", answer.Raw, err)
	}
	s := res.Services.Service[0]
	if s.Type != "turn" || s.Host != "127.0.0.1" || s.Port != port || s.Transport != "udp" {
		t.Fatalf("service: %s", answer.Raw)
	}
	expiry, user, _ := strings.Cut(s.Username, ":")
	unix, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || user != "alice@"+srv.Domain {
		t.Fatalf("username %q", s.Username)
	}
	if d := time.Until(time.Unix(unix, 0)); d < 59*time.Minute || d > time.Hour {
		t.Errorf("credentials valid for %v, want an hour", d)
	}
	if exp, err := time.Parse(time.RFC3339, s.Expires); err != nil || exp.Unix() != unix {
		t.Errorf("expires %q, username %q", s.Expires, s.Username)
	}

	t.Run("allocates", func(t *testing.T) {
		out, err := allocate(t, uclient, port, s.Username, s.Password)
		if err != nil {
			t.Fatalf("turnutils_uclient with Starling's credentials: %v\n%s", err, out)
		}
		// "tot_send_msgs=4, tot_recv_msgs=4": what went through the
		// relays came back.
		m := regexp.MustCompile(`tot_recv_msgs=(\d+)`).FindAllSubmatch(out, -1)
		if len(m) == 0 || string(m[len(m)-1][1]) == "0" {
			t.Fatalf("nothing relayed:\n%s", out)
		}
	})
	t.Run("wrong password refused", func(t *testing.T) {
		wrong := []byte(s.Password)
		wrong[0] ^= 1
		out, err := allocate(t, uclient, port, s.Username, string(wrong))
		refused(t, out, err)
	})
	t.Run("another user's password refused", func(t *testing.T) {
		// The password is bound to the username: alice's does not
		// work for bob.
		out, err := allocate(t, uclient, port, expiry+":bob@"+srv.Domain, s.Password)
		refused(t, out, err)
	})
	t.Run("expired credentials refused", func(t *testing.T) {
		u, p := extdisco.Credentials(secret, "alice@"+srv.Domain, time.Now().Add(-time.Minute))
		out, err := allocate(t, uclient, port, u, p)
		refused(t, out, err)
	})
}

// refused checks that turnutils_uclient could not allocate.
func refused(t *testing.T, out []byte, err error) {
	t.Helper()
	if err == nil || !bytes.Contains(out, []byte("Cannot complete Allocation")) {
		t.Fatalf("allocation not refused (%v):\n%s", err, out)
	}
}

// allocate runs turnutils_uclient against the coturn at port on
// 127.0.0.1: two allocations over UDP that send one 50-byte message
// through their relays (-y), with these credentials.
func allocate(t *testing.T, uclient string, port int, username, password string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, uclient, "-u", username, "-w", password, "-p", strconv.Itoa(port),
		"-y", "-n", "1", "-m", "1", "-l", "50", "127.0.0.1")
	return cmd.CombinedOutput()
}

// startCoturn runs turnserver on 127.0.0.1:port (UDP and TCP, no TLS),
// its relays on 127.0.0.1, checking credentials by the TURN REST API
// scheme with secret, and waits until it answers a STUN binding request.
func startCoturn(t *testing.T, turnserver string, port int, secret string) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "turnserver.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(turnserver, "-n",
		"--listening-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port), "--relay-ip=127.0.0.1",
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=localhost",
		"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
		"--log-file=stdout", "--simple-log",
		"--pidfile="+filepath.Join(dir, "turnserver.pid"), "--userdb="+filepath.Join(dir, "turndb"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil {
				t.Logf("turnserver's log:\n%s", log)
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("turnserver exited: %v\n%s", err, log)
		default:
		}
		if stunBinding(port) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("turnserver did not answer STUN on port %d within 30s\n%s", port, log)
		}
	}
}

// stunBinding reports whether a STUN binding request (RFC 5389 §6) to
// 127.0.0.1:port over UDP gets a success response within 200ms.
func stunBinding(port int) bool {
	conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	defer conn.Close()
	req := make([]byte, 20)
	binary.BigEndian.PutUint16(req[0:], 0x0001) // Binding request
	binary.BigEndian.PutUint32(req[4:], 0x2112A442)
	rand.Read(req[8:])
	if _, err := conn.Write(req); err != nil {
		return false
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	resp := make([]byte, 1500)
	n, err := conn.Read(resp)
	return err == nil && n >= 20 && binary.BigEndian.Uint16(resp) == 0x0101 && bytes.Equal(resp[8:20], req[8:20])
}

// freePort returns a port free on 127.0.0.1 for both UDP and TCP.
func freePort(t *testing.T) int {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}
