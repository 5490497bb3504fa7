package server_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/internal/testserver"
	"github.com/starling-xmpp/starling/internal/xmpptest"
	"github.com/starling-xmpp/starling/metrics"
)

// scrapeMetrics fetches the metrics endpoint over HTTP, as Prometheus
// does, and returns each sample's value by series (name{labels}).
func scrapeMetrics(t *testing.T, srv *testserver.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + srv.MetricsAddr().String() + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v", resp.Status, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// waitMetric scrapes until series has value want, or fails at the
// deadline.
func waitMetric(t *testing.T, srv *testserver.Server, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(xmpptest.Timeout)
	for {
		got := scrapeMetrics(t, srv)[series]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", series, got, want)
		}
	}
}

// The metrics endpoint counts what clients do: logins by mechanism and
// failures by reason, stanzas in and out by kind, sessions by transport
// while they are bound, stream closes, storage latency, and the Go
// runtime.
func TestMetricsAfterTraffic(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	srv.AddUser(t, "alice", "alice-secret")
	srv.AddUser(t, "bob", "bob-secret")

	const (
		tcpActive = `starling_c2s_sessions{state="active",transport="tcp"}`
		wsActive  = `starling_c2s_sessions{state="active",transport="websocket"}`
		logins    = `starling_c2s_logins_total{mechanism="SCRAM-SHA-256"}`
		failures  = `starling_c2s_login_failures_total{reason="not-authorized"}`
		msgIn     = `starling_c2s_stanzas_received_total{kind="message"}`
		msgOut    = `starling_c2s_stanzas_sent_total{kind="message"}`
		closed    = `starling_c2s_stream_closes_total{reason="client-closed"}`
	)
	before := scrapeMetrics(t, srv)
	for _, s := range []string{tcpActive, wsActive, msgIn, msgOut} {
		if v, ok := before[s]; !ok || v != 0 {
			t.Errorf("before any client: %s = %v (present %v), want 0", s, v, ok)
		}
	}
	for _, s := range []string{"go_goroutines", "process_open_fds", "go_gc_duration_seconds_count"} {
		if _, ok := before[s]; !ok {
			t.Errorf("no %s", s)
		}
	}

	alice := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "laptop")
	bob := xmpptest.LoginWebSocket(t, srv.WebSocketURL(), srv.Domain, srv.WebSocketOptions(t), "SCRAM-SHA-256", "bob", "bob-secret", "phone")
	alice.Send("<message to='bob@" + srv.Domain + "/phone' type='chat' id='m1'><body>hello</body></message>")
	if el := bob.MustNext(); el.Name.Local != "message" {
		t.Fatalf("bob got %s", el.Raw)
	}
	bob.Send("<message to='alice@" + srv.Domain + "/laptop' type='chat' id='m2'><body>hi</body></message>")
	if el := alice.MustNext(); el.Name.Local != "message" {
		t.Fatalf("alice got %s", el.Raw)
	}

	// A wrong password is counted by its reason.
	mallory := xmpptest.Dial(t, srv.Addr, srv.Domain)
	mallory.OpenStream()
	mallory.StartTLS(0)
	if err := mallory.Auth("SCRAM-SHA-256", "alice", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	during := scrapeMetrics(t, srv)
	for series, want := range map[string]float64{
		tcpActive: 1, wsActive: 1, logins: 2, failures: 1, msgIn: 2, msgOut: 2,
	} {
		if got := during[series]; got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Bind results are iq stanzas written; the queue was written from.
	for _, s := range []string{`starling_c2s_stanzas_sent_total{kind="iq"}`, "starling_c2s_outbound_queue_length_count",
		`starling_storage_operation_duration_seconds_count{op="Account"}`} {
		if during[s] < 1 {
			t.Errorf("%s = %v, want at least 1", s, during[s])
		}
	}

	alice.Send("</stream:stream>")
	alice.ExpectClosed()
	bob.Send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	waitMetric(t, srv, tcpActive, 0)
	waitMetric(t, srv, wsActive, 0)
	waitMetric(t, srv, closed, 2)
}

// With [metrics] listen unset, nothing listens.
func TestMetricsOffByDefault(t *testing.T) {
	srv := testserver.Start(t, nil)
	if a := srv.MetricsAddr(); a != nil {
		t.Errorf("metrics listening on %s by default", a)
	}
}

// Sessions are counted by state: inactive once the client says so
// (XEP-0352), detached while they wait for a resumption (XEP-0198), and
// the lost connection is a stream close of its own.
func TestMetricsSessionStates(t *testing.T) {
	srv := testserver.Start(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	srv.AddUser(t, "alice", "alice-secret")
	alice := xmpptest.Login(t, srv.Addr, srv.Domain, "alice", "alice-secret", "SCRAM-SHA-256", "phone")
	alice.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	if el := alice.MustNext(); el.Name.Local != "enabled" {
		t.Fatalf("enable: %s", el.Raw)
	}
	const series = `starling_c2s_sessions{state="%s",transport="tcp"}`
	state := func(s string) string { return strings.Replace(series, "%s", s, 1) }
	waitMetric(t, srv, state("active"), 1)
	alice.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	waitMetric(t, srv, state("inactive"), 1)
	waitMetric(t, srv, state("active"), 0)
	alice.Close() // no goodbye: the session waits for a resumption
	waitMetric(t, srv, state("detached"), 1)
	waitMetric(t, srv, state("inactive"), 0)
	waitMetric(t, srv, `starling_c2s_stream_closes_total{reason="connection-lost"}`, 1)
}

// Go's profiles are served on the metrics listener only with [metrics]
// pprof on.
func TestMetricsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := testserver.Start(t, func(c *config.Config) {
			c.Metrics.Listen = "127.0.0.1:0"
			c.Metrics.Pprof = on
		})
		resp, err := http.Get("http://" + srv.MetricsAddr().String() + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("pprof %v: %s, want %d", on, resp.Status, want)
		}
		if on && !strings.Contains(string(b), "heap profile") {
			t.Errorf("pprof on: not a heap profile: %.200s", b)
		}
	}
}
