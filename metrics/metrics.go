// Package metrics exports Starling's metrics in the Prometheus exposition
// format (issue 17): the client sessions' counters (c2s.Stats), the
// server-to-server streams, storage operation latency (Store, a timing
// decorator of storage.Store), and the Go runtime and process collectors
// every Prometheus and Grafana setup knows. It owns the registry and is
// the only package that imports the Prometheus library: the core packages
// count with atomic counters of their own, read here at each scrape, so
// their hot paths neither allocate nor lock for metrics.
//
// The server serves Handler on the admin listener [metrics] listen, at
// Path; README "Metrics" lists what is exported, and
// contrib/grafana/starling.json is a dashboard of it.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starling-xmpp/starling/c2s"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Metrics is a registry of Starling's metrics.
type Metrics struct {
	reg     *prometheus.Registry
	storage *prometheus.HistogramVec
}

// New returns a registry holding the Go runtime and process collectors
// and the storage latency histograms (fed by Store).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "starling",
		Subsystem: "storage",
		Name:      "operation_duration_seconds",
		Help:      "Duration of storage operations, by operation (the storage.Store method; InTx a whole transaction).",
		// 100µs (an SQLite read from the page cache) to 2.5s.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"op"})
	m.reg.MustRegister(m.storage)
	return m
}

// Handler serves the metrics in the Prometheus exposition format (text,
// or protobuf and OpenMetrics when the scraper asks for them).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, for tests that gather it directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// C2S exports the client sessions' counters: stats is called once per
// scrape (c2s.Server.Stats).
func (m *Metrics) C2S(stats func() c2s.Stats) {
	m.reg.MustRegister(&c2sCollector{stats: stats})
}

// S2S exports the server-to-server streams: streams is called once per
// scrape and returns how many there are by direction ("in", "out") and
// state (for outgoing ones "connecting", "up", "failed"; for incoming
// ones "authenticated", "unauthenticated").
func (m *Metrics) S2S(streams func() map[[2]string]int) {
	m.reg.MustRegister(&s2sCollector{streams: streams})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("starling_"+name, help, labels, nil)
}

// c2sCollector turns a c2s.Stats snapshot into metrics.
type c2sCollector struct {
	stats func() c2s.Stats
}

var (
	c2sSessions = desc("c2s_sessions", "Client sessions bound now, by transport (tcp, websocket, bosh) and state (active; inactive: the client said so, XEP-0352; detached: waiting for a resumption, XEP-0198).", "transport", "state")
	c2sLogins   = desc("c2s_logins_total", "Successful client logins (SASL), by mechanism.", "mechanism")
	c2sFailures = desc("c2s_login_failures_total", "Failed client logins, by reason: the SASL failure condition (not-authorized: wrong credentials), or throttled (refused by the failed-login throttles).", "reason")
	c2sIn       = desc("c2s_stanzas_received_total", "Stanzas received from clients, by kind (message, presence, iq).", "kind")
	c2sOut      = desc("c2s_stanzas_sent_total", "Stanzas written to clients, by kind (message, presence, iq).", "kind")
	c2sCloses   = desc("c2s_stream_closes_total", "Client streams ended, by reason: the stream error condition sent (connection-timeout, policy-violation, conflict, system-shutdown, ...), client-closed or connection-lost.", "reason")
	c2sOverflow = desc("c2s_queue_overflows_total", "Client sessions ended because their outbound queue was full, by bound (queue-items, queue-bytes).", "reason")
	c2sQueue    = desc("c2s_outbound_queue_length", "Outbound queue length at each write: the stanzas and nonzas a session's writer took at once.")
)

func (c *c2sCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c2sSessions, c2sLogins, c2sFailures, c2sIn, c2sOut, c2sCloses, c2sOverflow, c2sQueue} {
		ch <- d
	}
}

func (c *c2sCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for _, s := range st.Sessions {
		ch <- prometheus.MustNewConstMetric(c2sSessions, prometheus.GaugeValue, float64(s.N), s.Transport, s.State)
	}
	counters := func(d *prometheus.Desc, m map[string]uint64) {
		for label, n := range m {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), label)
		}
	}
	counters(c2sLogins, st.Logins)
	counters(c2sFailures, st.LoginFailures)
	counters(c2sIn, st.StanzasIn)
	counters(c2sOut, st.StanzasOut)
	counters(c2sCloses, st.StreamCloses)
	counters(c2sOverflow, st.QueueOverflows)
	h := st.QueueLengths
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c2sQueue, h.Count, float64(h.Sum), buckets)
}

// s2sCollector reports the server-to-server streams.
type s2sCollector struct {
	streams func() map[[2]string]int
}

var s2sStreams = desc("s2s_streams", "Server-to-server streams now, by direction (in, out) and state (out: connecting, up, failed; in: authenticated, unauthenticated).", "direction", "state")

func (c *s2sCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s2sStreams }

func (c *s2sCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.streams() {
		ch <- prometheus.MustNewConstMetric(s2sStreams, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
