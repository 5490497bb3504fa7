package main_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/internal/testbin"
	"github.com/starling-xmpp/starling/internal/xmpptest"
)

// The cost of a login and of an idle session, measured on the real binary
// from outside, as docs/performance.md describes: server CPU from
// /proc/PID/stat, memory from the server's own runtime statistics after a
// garbage collection and from its VmRSS. The clients run in the test
// process, so nothing of theirs is counted.
//
//	go test ./cmd/starling -run XXX -bench 'Login|IdleSession' -benchtime 2000x

// costServer starts the binary with the metrics listener and its
// profiles on, and accounts user1…userN (password "pw").
func costServer(b *testing.B, accounts int, extra string) (*testbin.Proc, testbin.Setup, string) {
	b.Helper()
	metrics := testbin.FreeAddr(b)
	setup := testbin.NewSetup(b, fmt.Sprintf("[metrics]\nlisten = %q\npprof = true\n%s", metrics, extra))
	bin := testbin.Build(b)
	for i := 1; i <= accounts; i++ {
		testbin.AddUser(b, bin, setup.Config, "user"+strconv.Itoa(i)+"@localhost", "pw")
	}
	return testbin.Start(b, bin, setup.Config), setup, metrics
}

// rsaChain writes a 2048-bit RSA certificate for localhost, signed by a
// CA of its own, as the chain and key files of a [tls] table.
func rsaChain(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	caKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cost CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, chain, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", certFile, keyFile)
}

// procCPU is the process's user and system CPU time so far.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// procRSS is the process's VmRSS in bytes.
func procRSS(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// liveBytes collects the server's garbage (the heap profile with gc=1)
// and returns its live heap and goroutine stacks from its metrics.
func liveBytes(b *testing.B, metrics string) int64 {
	b.Helper()
	get := func(path string) string {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	get("/debug/pprof/heap?gc=1")
	var total int64
	for _, line := range strings.Split(get("/metrics"), "\n") {
		for _, series := range []string{"go_memstats_heap_alloc_bytes ", "go_memstats_stack_inuse_bytes "} {
			if v, ok := strings.CutPrefix(line, series); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += int64(f)
			}
		}
	}
	return total
}

// login is a client's visit, session i on account user<account>: TCP,
// STARTTLS, SASL SCRAM-SHA-1, bind, initial presence and roster get.
func login(b *testing.B, addr string, account, i int) *xmpptest.Client {
	c := xmpptest.Login(b, addr, "localhost", "user"+strconv.Itoa(account), "pw", "SCRAM-SHA-1", "r"+strconv.Itoa(i))
	c.Send("<presence/><iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	for {
		el := c.MustNext()
		switch {
		case el.Name.Local == "iq" && el.AttrValue("id") == "roster":
			return c
		case el.Name.Local == "error":
			b.Fatalf("login %d: %s", i, el.Raw)
		}
	}
}

// BenchmarkLogin is the server's CPU per login (server-µs/login), with
// the 2048-bit RSA chain and with the generated ECDSA P-256
// certificate; ns/op is the client's wall time, its SCRAM and TLS
// included.
func BenchmarkLogin(b *testing.B) {
	for _, cert := range []string{"rsa", "ecdsa"} {
		b.Run(cert, func(b *testing.B) {
			extra := ""
			if cert == "rsa" {
				extra = rsaChain(b)
			}
			const accounts = 20
			p, setup, _ := costServer(b, accounts, extra)
			pid := p.Cmd.Process.Pid
			for i := range 20 { // warm up: code paths, caches, connections
				c := login(b, setup.StartTLS, i%accounts+1, i)
				c.Send("</stream:stream>")
				c.Close()
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := procCPU(b, pid)
			for i := range b.N {
				c := login(b, setup.StartTLS, i%accounts+1, i)
				c.Send("</stream:stream>")
				for { // up to the server's closing tag
					if _, err := c.Next(); err != nil {
						break
					}
				}
				c.Close()
			}
			b.StopTimer()
			cpu := procCPU(b, pid) - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "server-µs/login")
		})
	}
}

// BenchmarkIdleSession holds b.N idle sessions (ten per account, each
// available with a roster fetched) and reports what each costs the
// server: its live heap and stacks after a garbage collection
// (live-B/session), and its VmRSS growth (rss-B/session). Run it with
// -benchtime 2000x or more: b.N is the number of sessions.
func BenchmarkIdleSession(b *testing.B) {
	n := b.N
	accounts := max(1, n/10)
	p, setup, metrics := costServer(b, accounts, "")
	pid := p.Cmd.Process.Pid
	live0, rss0 := liveBytes(b, metrics), procRSS(b, pid)
	b.ResetTimer()
	clients := make([]*xmpptest.Client, 0, n)
	for i := range n {
		clients = append(clients, login(b, setup.StartTLS, i%accounts+1, i))
	}
	b.StopTimer()
	// Read what each was sent meanwhile (its siblings' presence), up to
	// the answer to a ping: nothing waits in the server's queues.
	for _, c := range clients {
		c.Send("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
		for el := c.MustNext(); el.Name.Local != "iq" || el.AttrValue("id") != "ping"; el = c.MustNext() {
		}
	}
	live, rss := liveBytes(b, metrics), procRSS(b, pid)
	b.ReportMetric(float64(live-live0)/float64(n), "live-B/session")
	b.ReportMetric(float64(rss-rss0)/float64(n), "rss-B/session")
	for _, c := range clients {
		c.Close()
	}
}
