package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	sconfig "github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
)

// bench runs the command with args and returns the decoded JSON line.
func bench(t *testing.T, wantCode int, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--json", "--insecure", "--pid", strconv.Itoa(os.Getpid()), "--settle", "0", "--timeout", "10s")
	if code := run(context.Background(), args, &out, &errb); code != wantCode {
		t.Fatalf("starling-bench %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", out.String())
	}
	var r result
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("JSON line: %v\n%s", err, lines[0])
	}
	return r
}

func TestScenarios(t *testing.T) {
	srv := testserver.Start(t, nil)
	for i := 1; i <= 4; i++ {
		srv.AddUser(t, "u"+strconv.Itoa(i), "secret")
	}
	common := []string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "u", "--password", "secret"}

	t.Run("login", func(t *testing.T) {
		r := bench(t, 0, append(common, "--scenario", "login", "--n", "4", "--concurrency", "2", "--accounts", "2")...)
		if r.Ops != 4 || r.Errors != 0 || r.LatP50Ms <= 0 || r.RatePerS <= 0 || r.ServerPID == 0 {
			t.Fatalf("login result: %+v", r)
		}
	})
	t.Run("login-directtls-sha256", func(t *testing.T) {
		args := []string{"--addr", srv.DirectTLSAddr, "--directtls", "--domain", srv.Domain, "--users", "u", "--password", "secret",
			"--mech", "SCRAM-SHA-256", "--scenario", "login", "--n", "2", "--concurrency", "2", "--accounts", "2"}
		if r := bench(t, 0, args...); r.Ops != 2 || r.TLS != "direct" {
			t.Fatalf("login result: %+v", r)
		}
	})
	t.Run("durations", func(t *testing.T) {
		r := bench(t, 0, append(common, "--scenario", "login", "--duration", "100ms", "--concurrency", "2", "--accounts", "2")...)
		if r.Ops < 1 || r.Errors != 0 {
			t.Fatalf("login result: %+v", r)
		}
		r = bench(t, 0, append(common, "--scenario", "messages", "--n", "1", "--duration", "100ms")...)
		if r.Delivery == nil || !r.ExactlyOnce || r.Sent < 1 || r.Delivered != r.Sent {
			t.Fatalf("messages result: %+v", r)
		}
	})
	t.Run("login-mellium-pq", func(t *testing.T) {
		// The mellium.im/sasl client and Go's default TLS key exchange.
		args := append(common, "--scram-cache=false", "--tls-pq", "--scenario", "login", "--n", "2", "--accounts", "2")
		if r := bench(t, 0, args...); r.Ops != 2 || r.Errors != 0 {
			t.Fatalf("login result: %+v", r)
		}
	})
	for _, cache := range []string{"true", "false"} {
		t.Run("wrong-password-cache-"+cache, func(t *testing.T) {
			args := []string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "u", "--password", "wrong",
				"--scram-cache=" + cache, "--scenario", "login", "--n", "1", "--accounts", "1"}
			if r := bench(t, 1, args...); r.Errors != 1 || !strings.Contains(r.FirstError, "authentication failed") {
				t.Fatalf("login result: %+v", r)
			}
		})
	}
	t.Run("idle", func(t *testing.T) {
		r := bench(t, 0, append(common, "--scenario", "idle", "--n", "4", "--accounts", "2")...)
		if r.Ops != 4 || r.Errors != 0 || r.RSSAfter <= 0 || r.RSSBefore <= 0 {
			t.Fatalf("idle result: %+v", r)
		}
	})
	t.Run("messages", func(t *testing.T) {
		r := bench(t, 0, append(common, "--scenario", "messages", "--n", "2", "--count", "200", "--window", "8")...)
		if r.Delivery == nil || !r.ExactlyOnce || r.Sent != 800 || r.Delivered != 800 || r.Ops != 800 ||
			r.Lost != 0 || r.Duplicates != 0 || r.LatP999Ms <= 0 {
			t.Fatalf("messages result: %+v", r)
		}
	})
	t.Run("messages-batched-directtls", func(t *testing.T) {
		args := []string{"--addr", srv.DirectTLSAddr, "--directtls", "--domain", srv.Domain, "--users", "u", "--password", "secret",
			"--scenario", "messages", "--n", "1", "--count", "100", "--window", "8", "--batch", "4"}
		if r := bench(t, 0, args...); r.Delivery == nil || !r.ExactlyOnce || r.Delivered != 200 || r.Batch != 4 {
			t.Fatalf("messages result: %+v", r)
		}
	})
}

func TestCreate(t *testing.T) {
	srv := testserver.Start(t, func(c *sconfig.Config) { c.Registration.Enabled = true })
	srv.AddUser(t, "r1", "pw") // already there: fine
	args := []string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "r", "--password", "pw",
		"--create", "--scenario", "messages", "--n", "1", "--count", "20"}
	if r := bench(t, 0, args...); r.Delivery == nil || !r.ExactlyOnce || r.Delivered != 40 {
		t.Fatalf("messages result: %+v", r)
	}
}

func TestCreateRefused(t *testing.T) {
	srv := testserver.Start(t, nil) // registration off
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--addr", srv.Addr, "--domain", srv.Domain, "--insecure", "--create", "--n", "1", "--accounts", "1"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "registration of user1 refused") {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
}

// The scanner must find the same elements however the input is split.
func TestScanner(t *testing.T) {
	in := "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' from='a>b' version='1.0'>" +
		"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>" +
		" \n<!-- c --><message to=\"x'/>\" id='1'><body>a &gt; b <![CDATA[</body> <x/>]]></body><x/></message>" +
		"<presence/>\n</stream:stream>"
	want := []string{
		"<stream:stream xmlns='jabber:client' from='a>b' version='1.0'>",
		"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
		"<message to=\"x'/>\" id='1'><body>a &gt; b <![CDATA[</body> <x/>]]></body><x/></message>",
		"<presence/>",
	}
	for _, rd := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		s := newScanner(rd)
		s.buf = make([]byte, 16) // force growth and compaction
		for i, w := range want {
			el, _, err := s.next()
			if err != nil || string(el) != w {
				t.Fatalf("element %d: got %q, %v; want %q", i, el, err, w)
			}
		}
		if _, kind, err := s.next(); err != errClosed || kind != kindClose {
			t.Fatalf("end: kind %d, %v", kind, err)
		}
	}
	msg := []byte(want[2])
	if got := string(attr(msg, "id")); got != "1" {
		t.Errorf("attr id = %q", got)
	}
	if got := string(attr(msg, "to")); got != "x'/>" {
		t.Errorf("attr to = %q", got)
	}
	if b, ok := child([]byte("<message><bodyx/><body xml:lang='en'>1:2:3</body></message>"), "body"); !ok || string(b) != "1:2:3" {
		t.Errorf("child body = %q %v", b, ok)
	}
	if src, seq, ts, ok := parseBody([]byte("12:345:6789")); !ok || src != 12 || seq != 345 || ts != 6789 {
		t.Errorf("parseBody: %d %d %d %v", src, seq, ts, ok)
	}
}

// RFC 5802 §5 and RFC 7677 §3 test vectors, run twice (the second time
// from the key cache).
func TestScramVectors(t *testing.T) {
	for _, v := range []struct{ mech, cnonce, serverFirst, clientFinal, serverFinal string }{
		{"SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
		{"SCRAM-SHA-256", "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	} {
		for range 2 {
			s, ok := newScram(v.mech, "user", "pencil")
			if !ok {
				t.Fatal(v.mech)
			}
			s.nonce = v.cnonce
			s.first = "n=user,r=" + v.cnonce
			if got := string(s.start()); got != "n,,n=user,r="+v.cnonce {
				t.Fatalf("%s client-first %q", v.mech, got)
			}
			final, err := s.step([]byte(v.serverFirst))
			if err != nil || string(final) != v.clientFinal {
				t.Fatalf("%s client-final %q, %v", v.mech, final, err)
			}
			if err := s.verify([]byte(v.serverFinal)); err != nil {
				t.Fatalf("%s: %v", v.mech, err)
			}
			if err := s.verify([]byte("v=AAAA")); err == nil {
				t.Fatalf("%s: a wrong server signature passed", v.mech)
			}
		}
	}
}

func TestRecord(t *testing.T) {
	a, b := &peer{idx: 0, last: -1}, &peer{idx: 1, last: -1}
	a.partner, b.partner = b, a
	for _, c := range []struct {
		src      int
		seq      int64
		fresh    bool
		dups, mr int64
	}{
		{1, 0, true, 0, 0}, {1, 200, true, 0, 0}, {1, 5, true, 0, 0}, {1, 200, false, 1, 0},
		{0, 1, false, 1, 1}, {1, 0, false, 2, 1}, {1, 1, true, 2, 1},
	} {
		if got := a.record(c.src, c.seq, 7); got != c.fresh || a.dups != c.dups || a.misrouted != c.mr {
			t.Fatalf("record(%d, %d) = %v, dups %d, misrouted %d; want %v, %d, %d", c.src, c.seq, got, a.dups, a.misrouted, c.fresh, c.dups, c.mr)
		}
	}
	if a.outOfOrder != 2 || len(a.lat) != 4 { // 5 after 200, 1 after 5
		t.Fatalf("out of order %d, %d latencies", a.outOfOrder, len(a.lat))
	}
}
