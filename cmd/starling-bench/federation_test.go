package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	sconfig "github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
)

// federated starts two Starling servers on loopback serving a.test and
// b.test, federating through a DNS server of the test's own
// (internal/dnstest) with certificates from a test CA both trust (SASL
// EXTERNAL), as s2s's tests do; each has the accounts u1…u3 with the
// password "secret". A third server, c.test, has federation off and no
// DNS records: nothing can reach it.
func federated(t *testing.T) (a, b, c *testserver.Server) {
	t.Helper()
	fed := testserver.NewFederation(t)
	start := func(domain string, s2s bool) *testserver.Server {
		srv := testserver.Start(t, func(c *sconfig.Config) {
			if s2s {
				fed.Configure(t, c, domain, true)
				return
			}
			c.Server.Hosts = []string{domain}
			c.S2S.Resolver = fed.DNS.Addr()
		})
		for i := 1; i <= 3; i++ {
			srv.AddUser(t, "u"+strconv.Itoa(i), "secret")
		}
		return srv
	}
	return start("a.test", true), start("b.test", true), start("c.test", false)
}

// TestFederation runs the federation scenario between two in-process
// Starling servers: every message from a.test's senders reaches b.test's
// receivers exactly once, and both servers' CPU is measured (here both
// are this process).
func TestFederation(t *testing.T) {
	a, b, c := federated(t)
	pid := strconv.Itoa(os.Getpid())
	args := func(peer *testserver.Server, more ...string) []string {
		return append([]string{"--scenario", "federation", "--addr", a.Addr, "--domain", a.Domain,
			"--peer-addr", peer.Addr, "--peer-domain", peer.Domain, "--peer-pid", pid,
			"--users", "u", "--password", "secret"}, more...)
	}
	t.Run("count", func(t *testing.T) {
		r := bench(t, 0, args(b, "--n", "3", "--count", "200", "--window", "8", "--peer-mech", "SCRAM-SHA-256")...)
		if r.Scenario != "federation" || r.Delivery == nil || !r.ExactlyOnce || r.Sent != 600 || r.Delivered != 600 ||
			r.Ops != 600 || r.Lost != 0 || r.Duplicates != 0 || r.Misrouted != 0 || r.Bounced != 0 || r.LatP999Ms <= 0 ||
			r.ServerCPUUsPerOp <= 0 || r.PeerCPUUsPerOp <= 0 || r.WarmupS <= 0 || r.PeerDomain != "b.test" ||
			r.PeerAddr != b.Addr || r.PeerMech != "SCRAM-SHA-256" || r.Mech != "SCRAM-SHA-1" || r.PeerPID != os.Getpid() {
			t.Fatalf("federation result: %+v, %+v", r, r.Delivery)
		}
	})
	t.Run("duration-batched", func(t *testing.T) {
		r := bench(t, 0, args(b, "--n", "2", "--duration", "100ms", "--batch", "4")...)
		if r.Delivery == nil || !r.ExactlyOnce || r.Sent < 1 || r.Delivered != r.Sent || r.Batch != 4 {
			t.Fatalf("federation result: %+v, %+v", r, r.Delivery)
		}
	})
	t.Run("table", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(args(b, "--n", "1", "--count", "10"), "--insecure", "--pid", pid), &out, &errb)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
		}
		for _, want := range []string{"receivers on b.test", "peer CPU", "warm-up", "exactly once"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table without %q:\n%s", want, out.String())
			}
		}
		if !regexp.MustCompile(`(?m)^exactly once +yes$`).MatchString(out.String()) {
			t.Errorf("table says not exactly once:\n%s", out.String())
		}
	})
	// c.test does not federate: a.test bounces the warm-up messages
	// (remote-server-not-found), and the run fails at the bounce, not
	// after --timeout, saying why.
	t.Run("unreachable", func(t *testing.T) {
		r := bench(t, 1, args(c, "--n", "1", "--count", "10")...)
		if !strings.Contains(r.FirstError, "warm-up: a message was bounced") || !strings.Contains(r.FirstError, "remote-server-not-found") {
			t.Fatalf("federation result: %+v", r)
		}
	})
}

func TestFederationFlags(t *testing.T) {
	fed := []string{"--scenario", "federation", "--addr", "127.0.0.1:5222", "--domain", "a.test",
		"--peer-addr", "127.0.0.2:5222", "--peer-domain", "b.test"}
	for _, args := range [][]string{
		{"--scenario", "federation"},
		{"--scenario", "federation", "--peer-addr", "127.0.0.2:5222"},
		{"--scenario", "federation", "--peer-domain", "b.test"},
		{"--scenario", "federation", "--peer-addr", "127.0.0.2", "--peer-domain", "b.test"},
		{"--scenario", "federation", "--peer-addr", "127.0.0.2:5222", "--peer-domain", "LocalHost"},
		append(fed, "--url", "wss://127.0.0.1:5281/xmpp-websocket"),
		append(fed, "--peer-mech", "DIGEST-MD5"),
		append(fed, "--n", "3", "--accounts", "2"),
		append(fed, "--peer-pid", "-1"),
		append(fed, "--peer-pid", "2147483647"), // no such process
		{"--scenario", "messages", "--peer-addr", "127.0.0.2:5222"},
		{"--scenario", "login", "--peer-pid", strconv.Itoa(os.Getpid())},
		{"--scenario", "websocket", "--url", "wss://localhost/xmpp-websocket", "--peer-domain", "b.test"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, code, errb.String())
		}
	}

	pid := os.Getpid()
	var errb bytes.Buffer
	cfg, err := parseFlags(append(fed, "--mech", "SCRAM-SHA-256", "--n", "4", "--pid", strconv.Itoa(pid), "--peer-pid", strconv.Itoa(pid)), &errb)
	if err != nil {
		t.Fatal(err, errb.String())
	}
	if cfg.accounts != 4 || cfg.peerMech != "SCRAM-SHA-256" || cfg.peerPID != pid {
		t.Fatalf("accounts %d (want --n), peer mech %q (want --mech's), peer pid %d", cfg.accounts, cfg.peerMech, cfg.peerPID)
	}
	p := cfg.peer()
	if p.addr != "127.0.0.2:5222" || p.domain != "b.test" || p.mech != "SCRAM-SHA-256" || p.pid != pid ||
		cfg.addr != "127.0.0.1:5222" || cfg.domain != "a.test" || p.tlsConfig().ServerName != "b.test" {
		t.Fatalf("peer config %+v of %+v", p, cfg)
	}
	r := newResult(cfg)
	if r.PeerAddr != "127.0.0.2:5222" || r.PeerDomain != "b.test" || r.PeerMech != "SCRAM-SHA-256" || r.PeerPID != pid || r.ServerPID != pid {
		t.Fatalf("result %+v", r)
	}
	if cfg, err = parseFlags(append(fed, "--peer-mech", "PLAIN", "--count", "7"), &errb); err != nil || cfg.peerMech != "PLAIN" || cfg.mech != "SCRAM-SHA-1" || cfg.n != 10 || cfg.accounts != 10 {
		t.Fatalf("--peer-mech PLAIN: %v, %+v", err, cfg)
	}
}

// The receive handler of a federation run, fed elements by hand: the
// warm-up message is counted once per receiver and is no numbered
// message; numbered ones are checked off once each, from the partner
// only; a bounce at a sender is counted and noted.
func TestTrafficReceive(t *testing.T) {
	cfg := &config{count: 10, window: 4, timeout: time.Second}
	x := newTraffic(cfg, 2, func(i int) bool { return i == 1 })
	sender, receiver := x.peers[0], x.peers[1]
	sender.partner, receiver.partner = receiver, sender
	x.wantWarm, x.warmed = 1, make(chan struct{})
	if receiver.in.seen == nil || sender.in.seen != nil {
		t.Fatal("inboxes sized for the wrong peers")
	}
	recv, send := x.receive(receiver), x.receive(sender)
	msg := func(body string) []byte {
		return []byte("<message from='u1@a.test/bench' to='u1@b.test/bench' type='chat' id='m'><body>" + body + "</body></message>")
	}
	now := strconv.FormatInt(int64(time.Since(epoch)), 10)
	for _, el := range [][]byte{msg(warmBody), msg(warmBody), msg("0:0:" + now), msg("0:0:" + now), msg("1:1:" + now), msg("0:2:" + now), msg("hello")} {
		if !recv(el) {
			t.Fatalf("%s not handled", el)
		}
	}
	if recv([]byte("<presence from='u1@a.test/bench'/>")) || recv([]byte("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")) {
		t.Fatal("a presence or an iq was taken for a message")
	}
	select {
	case <-x.warmed:
	default:
		t.Fatal("warm-up not noted")
	}
	select {
	case <-sender.wake:
	default:
		t.Fatal("the sender was not woken")
	}
	if x.warm.Load() != 1 || x.delivered.Load() != 2 || receiver.uniq.Load() != 2 || receiver.in.dups != 1 || receiver.misrouted != 1 || len(receiver.lat) != 2 {
		t.Fatalf("warm %d, delivered %d, uniq %d, dups %d, misrouted %d, latencies %d",
			x.warm.Load(), x.delivered.Load(), receiver.uniq.Load(), receiver.in.dups, receiver.misrouted, len(receiver.lat))
	}
	bounce := "<message from='u1@b.test/bench' type='error' id='m'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
	send([]byte(bounce))
	send([]byte(bounce))
	select {
	case <-x.bounced:
	default:
		t.Fatal("bounce not noted")
	}
	// All in: three sent, two arrived, one bounced.
	x.target.Store(3)
	x.checkDone()
	select {
	case <-x.allIn:
		t.Fatal("all in with one missing")
	default:
	}
	r := newResult(cfg)
	r.Delivery = &Delivery{}
	r.latencies(x.tally(r, 3))
	r.verdict(nil, 0, "")
	if r.Delivered != 2 || r.Lost != 1 || r.Bounced != 2 || r.Duplicates != 1 || r.Misrouted != 1 || r.ExactlyOnce ||
		!strings.Contains(r.FirstError, "remote-server-not-found") || r.LatP50Ms <= 0 {
		t.Fatalf("tally: %+v, %+v", r, r.Delivery)
	}
}

// peerMeasured divides server B's CPU between two samples by the
// messages, and leaves it zero without a PID.
func TestPeerMeasured(t *testing.T) {
	var r result
	r.peerMeasured(probe{pid: 7, srvCPU: time.Second}, probe{pid: 7, srvCPU: 3 * time.Second}, 1000)
	if r.PeerCPUS != 2 || r.PeerCPUUsPerOp != 2000 {
		t.Fatalf("peer CPU %v s, %v µs per op", r.PeerCPUS, r.PeerCPUUsPerOp)
	}
	r = result{}
	r.peerMeasured(probe{}, probe{}, 1000)
	if r.PeerCPUS != 0 || r.PeerCPUUsPerOp != 0 {
		t.Fatalf("peer CPU without a PID: %+v", r)
	}
}
