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
	// Group chat without its flood limits, as bench/compare runs it.
	mucLimits, err := sconfig.Parse([]byte("[modules.muc]\noccupant_rate = 1000000\nroom_rate = 1000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, func(c *sconfig.Config) {
		if c.Modules == nil {
			c.Modules = map[string]sconfig.ModuleTable{}
		}
		c.Modules["muc"] = mucLimits.Modules["muc"]
	})
	for i := 1; i <= 5; i++ {
		srv.AddUser(t, "u"+strconv.Itoa(i), "secret")
		srv.AddUser(t, "p"+strconv.Itoa(i), "secret")
		srv.AddUser(t, "m"+strconv.Itoa(i), "secret")
		srv.AddUser(t, "e"+strconv.Itoa(i), "secret")
	}
	for i := 1; i <= 6; i++ {
		srv.AddUser(t, "g"+strconv.Itoa(i), "secret")
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
	// XMPP over WebSocket (RFC 7395) on the HTTPS listener: the messages
	// scenario, every message delivered exactly once; batched writes,
	// which go out one element per WebSocket message; logins and idle
	// sessions.
	ws := []string{"--url", "wss://" + srv.HTTPSAddr + "/xmpp-websocket", "--domain", srv.Domain, "--users", "u", "--password", "secret"}
	t.Run("websocket", func(t *testing.T) {
		r := bench(t, 0, append(ws, "--scenario", "websocket", "--n", "2", "--count", "200", "--window", "8")...)
		if r.Scenario != "websocket" || r.TLS != "wss" || r.Delivery == nil || !r.ExactlyOnce || r.Sent != 800 ||
			r.Delivered != 800 || r.Ops != 800 || r.Lost != 0 || r.Duplicates != 0 || r.Misrouted != 0 || r.Bounced != 0 ||
			r.LatP999Ms <= 0 || r.ServerCPUUsPerOp <= 0 {
			t.Fatalf("websocket result: %+v, %+v", r, r.Delivery)
		}
	})
	t.Run("websocket-batched-sha256", func(t *testing.T) {
		r := bench(t, 0, append(ws, "--mech", "SCRAM-SHA-256", "--scenario", "websocket", "--n", "1", "--count", "100", "--window", "8", "--batch", "4")...)
		if r.Delivery == nil || !r.ExactlyOnce || r.Delivered != 200 || r.Batch != 4 {
			t.Fatalf("websocket result: %+v, %+v", r, r.Delivery)
		}
	})
	t.Run("websocket-login-idle", func(t *testing.T) {
		r := bench(t, 0, append(ws, "--scenario", "login", "--n", "4", "--concurrency", "2", "--accounts", "2")...)
		if r.Ops != 4 || r.Errors != 0 || r.TLS != "wss" || r.LatP50Ms <= 0 {
			t.Fatalf("login result: %+v", r)
		}
		r = bench(t, 0, append(ws, "--scenario", "idle", "--n", "4", "--accounts", "2")...)
		if r.Ops != 4 || r.Errors != 0 {
			t.Fatalf("idle result: %+v", r)
		}
	})
	// Receivers that reset their connections and resume (XEP-0198): every
	// message once, every drop resumed.
	t.Run("churn", func(t *testing.T) {
		r := bench(t, 0, append(common, "--scenario", "churn", "--n", "2", "--count", "300", "--rate", "300", "--drop-every", "150ms")...)
		if r.Delivery == nil || r.Churn == nil || !r.ExactlyOnce || r.Sent != 600 || r.Delivered != 600 || r.Lost != 0 ||
			r.Duplicates != 0 || r.Resumptions < 4 || r.ResumeFailures != 0 || r.ResumeP50Ms <= 0 || r.Errors != 0 {
			t.Fatalf("churn result: %+v, %+v, %+v", r, r.Delivery, r.Churn)
		}
		t.Logf("churn: %d resumptions, p50 %.2f ms, %d messages across drops", r.Resumptions, r.ResumeP50Ms, r.AcrossDrops)
	})
	// A client that resumes with an 'h' one short of what it counted gets
	// a stanza again, which the count shows as a duplicate (or, for a
	// presence or an IQ, as nothing): what a server resending one stanza
	// too many would look like. The run fails.
	t.Run("churn-duplicates-caught", func(t *testing.T) {
		resumeHSkew = 1
		defer func() { resumeHSkew = 0 }()
		r := bench(t, 1, append(common, "--scenario", "churn", "--n", "2", "--count", "400", "--rate", "400", "--drop-every", "150ms")...)
		if r.Delivery == nil || r.ExactlyOnce || r.Duplicates == 0 || r.Lost != 0 || !strings.Contains(r.FirstError, "duplicates") {
			t.Fatalf("churn result: %+v, %+v, %+v", r, r.Delivery, r.Churn)
		}
	})
	// An archive of 300 messages, paged back through 50 at a time.
	t.Run("mam", func(t *testing.T) {
		r := bench(t, 0, "--addr", srv.Addr, "--domain", srv.Domain, "--users", "m", "--password", "secret",
			"--scenario", "mam", "--n", "2", "--fill", "301", "--page", "50", "--queries", "20")
		if r.MAM == nil || r.Fill != 301 || r.Queries != 20 || r.Ops != 20 || r.Errors != 0 || r.LatP50Ms <= 0 || r.Wrapped < 2 || r.Results < 20*50-3*49 {
			t.Fatalf("mam result: %+v, %+v", r, r.MAM)
		}
	})
	t.Run("presence", func(t *testing.T) {
		args := func(more ...string) []string {
			return append([]string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "p", "--password", "secret",
				"--scenario", "presence"}, more...)
		}
		check := func(r result, contacts int, requests int64) {
			t.Helper()
			if r.Delivery == nil || !r.ExactlyOnce || r.Sent < 1 || r.Contacts != contacts || r.Delivered != r.Sent*int64(contacts) ||
				r.Ops != r.Delivered || r.Lost != 0 || r.Duplicates != 0 || r.Misrouted != 0 || r.OutOfOrder != 0 ||
				r.LatP50Ms <= 0 || r.SetupS <= 0 || r.ServerCPUUsPerUpdate <= 0 || r.SubscriptionRequests != requests {
				t.Fatalf("presence result: %+v, %+v", r, r.Delivery)
			}
		}
		// Five users, each everyone's contact: first every user asks each
		// of its four contacts.
		r := bench(t, 0, args("--n", "5", "--contacts", "4", "--count", "100", "--window", "8")...)
		check(r, 4, 20)
		if r.Sent != 500 {
			t.Fatalf("sent %d updates, want 500", r.Sent)
		}
		// Again: the subscriptions are in place already.
		check(bench(t, 0, args("--n", "5", "--contacts", "4", "--count", "50", "--batch", "4")...), 4, 0)
		// A sparser ring on the same accounts: users no longer contacts
		// are removed from each other's rosters first, so each update
		// reaches the two contacts only.
		check(bench(t, 0, args("--n", "5", "--contacts", "2", "--count", "50")...), 2, 0)
		// Three of them, for a duration: p1 and p3 are contacts again.
		check(bench(t, 0, args("--n", "3", "--contacts", "2", "--duration", "100ms")...), 2, 2)
	})
	// PEP on the presence ring: sessions with caps (whose disco#info the
	// server asks once, then caches, across runs too), every item notified to each contact
	// exactly once. The second run's sessions get the first run's last
	// items when they come online, which are ignored.
	t.Run("pep", func(t *testing.T) {
		args := func(more ...string) []string {
			return append([]string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "e", "--password", "secret",
				"--scenario", "pep"}, more...)
		}
		check := func(r result, sent int64, contacts int, requests, discos int64) {
			t.Helper()
			if r.Delivery == nil || r.PEP == nil || !r.ExactlyOnce || r.Sent != sent || r.Contacts != contacts ||
				r.Delivered != sent*int64(contacts) || r.Ops != r.Delivered || r.Lost != 0 || r.Duplicates != 0 || r.Misrouted != 0 ||
				r.Bounced != 0 || r.LatP50Ms <= 0 || r.ServerCPUUsPerOp <= 0 || r.ServerCPUUsPerUpdate <= 0 ||
				r.SubscriptionRequests != requests || r.DiscoQueries != discos || r.Node != pepNode || r.Ver != capsVer || r.Errors != 0 {
				t.Fatalf("pep result: %+v, %+v, %+v", r, r.Delivery, r.PEP)
			}
		}
		check(bench(t, 0, args("--n", "5", "--contacts", "4", "--count", "30", "--window", "4")...), 150, 4, 20, 1)
		r := bench(t, 0, args("--n", "5", "--contacts", "2", "--count", "20", "--batch", "4")...)
		check(r, 100, 2, 0, 0) // the server knows the ver from the first run
		if r.Stale == 0 {
			t.Errorf("no last items of the first run were seen: %+v", r.PEP)
		}
	})
	// Group chat (XEP-0045): two instant rooms of three occupants, each
	// message delivered to the two others and reflected to its sender
	// exactly once; then one room of six, batched, and for a duration.
	t.Run("groupchat", func(t *testing.T) {
		args := func(more ...string) []string {
			return append([]string{"--addr", srv.Addr, "--domain", srv.Domain, "--users", "g", "--password", "secret",
				"--scenario", "groupchat"}, more...)
		}
		check := func(r result, rooms, n int) {
			t.Helper()
			gc := r.Groupchat
			if r.Delivery == nil || gc == nil || !r.ExactlyOnce || r.Sent < 1 || r.Contacts != n-1 || r.Delivered != r.Sent*int64(n-1) ||
				r.Ops != r.Delivered || r.Lost != 0 || r.Duplicates != 0 || r.Misrouted != 0 || r.Bounced != 0 || r.LatP50Ms <= 0 ||
				r.ServerCPUUsPerOp <= 0 || r.ServerCPUUsPerUpdate <= 0 || r.Errors != 0 || r.SetupS <= 0 ||
				gc.Rooms != rooms || gc.Occupants != n || gc.Service != "conference."+srv.Domain || gc.RoomsCreated != int64(rooms) ||
				!gc.ReflectedOnce || gc.Reflections != r.Sent || gc.ReflectionsLost != 0 || gc.ReflectionDuplicates != 0 || gc.ReflectP50Ms <= 0 || gc.ReflectionsOtherID != 0 {
				t.Fatalf("groupchat result: %+v, %+v, %+v", r, r.Delivery, r.Groupchat)
			}
		}
		r := bench(t, 0, args("--rooms", "2", "--n", "3", "--count", "100", "--window", "8")...)
		check(r, 2, 3)
		if r.Sent != 600 {
			t.Fatalf("sent %d messages, want 600", r.Sent)
		}
		check(bench(t, 0, args("--rooms", "1", "--n", "6", "--count", "50", "--batch", "4")...), 1, 6)
		check(bench(t, 0, args("--rooms", "3", "--n", "2", "--duration", "100ms")...), 3, 2)
		// No such service: the entering fails, with the error.
		r = bench(t, 1, args("--rooms", "1", "--n", "2", "--muc", "nowhere."+srv.Domain)...)
		if !strings.Contains(r.FirstError, "entering") {
			t.Fatalf("groupchat without a service: %+v", r)
		}
	})
	// Starling's default flood limit, 10 messages a second per occupant
	// after a burst of 50: the messages beyond are refused with
	// policy-violation, which fails the run at once, with the error.
	t.Run("groupchat-flood-limit", func(t *testing.T) {
		lim := testserver.Start(t, nil)
		for i := 1; i <= 2; i++ {
			lim.AddUser(t, "g"+strconv.Itoa(i), "secret")
		}
		r := bench(t, 1, "--addr", lim.Addr, "--domain", lim.Domain, "--users", "g", "--password", "secret",
			"--scenario", "groupchat", "--rooms", "1", "--n", "2", "--count", "200")
		if r.Delivery == nil || r.ExactlyOnce || r.Bounced == 0 || !strings.Contains(r.FirstError, "policy-violation") || r.ElapsedS > 5 {
			t.Fatalf("groupchat over the flood limit: %+v, %+v", r, r.Delivery)
		}
	})
}

// The caps ver is XEP-0115 §5.1's hash of the disco#info the sessions
// give, which lists the features in that order.
func TestCapsVer(t *testing.T) {
	a := discoAnswer([]byte("<iq type='get' id='d1' from='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='" + capsNode + "#" + capsVer + "'/></iq>"))
	for _, want := range []string{"id='d1'", "to='localhost'", "node='" + capsNode + "#" + capsVer + "'",
		"<identity category='client' type='pc' name='starling-bench'/>", "<feature var='" + pepNode + "+notify'/>"} {
		if !strings.Contains(a, want) {
			t.Errorf("disco#info answer %s lacks %s", a, want)
		}
	}
	if !strings.Contains(capsPresence, "ver='"+capsVer+"'") || len(capsVer) != 28 {
		t.Errorf("caps presence %s", capsPresence)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "presence", "--n", "5", "--contacts", "3"},
		{"--scenario", "presence", "--n", "4", "--contacts", "4"},
		{"--scenario", "presence", "--n", "5", "--accounts", "4"},
		{"--scenario", "pep", "--n", "5", "--contacts", "3"},
		{"--scenario", "pep", "--n", "5", "--accounts", "4"},
		{"--scenario", "messages", "--n", "2", "--accounts", "3"},
		{"--scenario", "nothing"},
		{"--scenario", "websocket"},
		{"--scenario", "websocket", "--url", "https://localhost/xmpp-websocket"},
		{"--scenario", "websocket", "--url", "wss://localhost/xmpp-websocket", "--directtls"},
		{"--scenario", "websocket", "--url", "wss://localhost/xmpp-websocket", "--n", "2", "--accounts", "3"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %s", args, code, errb.String())
		}
	}
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

func TestInbox(t *testing.T) {
	b := inbox{last: -1}
	for _, c := range []struct {
		seq   int64
		fresh bool
		dups  int64
	}{
		{0, true, 0}, {200, true, 0}, {5, true, 0}, {200, false, 1}, {0, false, 2}, {1, true, 2},
	} {
		if got := b.record(c.seq); got != c.fresh || b.dups != c.dups {
			t.Fatalf("record(%d) = %v, dups %d; want %v, %d", c.seq, got, b.dups, c.fresh, c.dups)
		}
	}
	if b.outOfOrder != 2 { // 5 after 200, 1 after 5
		t.Fatalf("out of order %d", b.outOfOrder)
	}
}

// Every user's contacts are K distinct others, each of whom has the user
// among its contacts; slot inverts contact.
func TestRing(t *testing.T) {
	for _, g := range []ring{{3, 2}, {5, 4}, {10, 4}, {200, 20}} {
		for i := range g.n {
			seen := map[int]bool{}
			for slot := range g.k {
				c := g.contact(i, slot)
				if c == i || seen[c] || c < 0 || c >= g.n {
					t.Fatalf("%+v: contact(%d, %d) = %d", g, i, slot, c)
				}
				seen[c] = true
				if g.slot(i, c) != slot || g.slot(c, i) < 0 {
					t.Fatalf("%+v: slot(%d, %d) = %d, slot(%d, %d) = %d; want %d, ≥ 0", g, i, c, g.slot(i, c), c, i, g.slot(c, i), slot)
				}
			}
			for c := range g.n {
				if !seen[c] && g.slot(i, c) >= 0 {
					t.Fatalf("%+v: slot(%d, %d) = %d for a non-contact", g, i, c, g.slot(i, c))
				}
			}
		}
	}
}
