package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"text/tabwriter"
	"time"
)

// result is what a scenario measured. Fields that do not apply to a
// scenario are left zero and omitted from the JSON.
type result struct {
	Scenario    string  `json:"scenario"`
	Label       string  `json:"label,omitempty"`
	Addr        string  `json:"addr"` // or the WebSocket URL
	Domain      string  `json:"domain"`
	TLS         string  `json:"tls"` // starttls, direct; ws or wss over WebSocket
	Mech        string  `json:"mech"`
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"` // logins, sessions, delivered messages or presence deliveries
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	ElapsedS    float64 `json:"elapsed_s"`
	RatePerS    float64 `json:"rate_per_s"`

	LatP50Ms  float64 `json:"lat_p50_ms,omitempty"`
	LatP99Ms  float64 `json:"lat_p99_ms,omitempty"`
	LatP999Ms float64 `json:"lat_p999_ms,omitempty"`
	LatMaxMs  float64 `json:"lat_max_ms,omitempty"`

	ServerPID        int     `json:"server_pid,omitempty"`
	ServerCPUS       float64 `json:"server_cpu_s,omitempty"`
	ServerCPUUsPerOp float64 `json:"server_cpu_us_per_op,omitempty"`
	BenchCPUS        float64 `json:"bench_cpu_s"`
	BenchCPUUsPerOp  float64 `json:"bench_cpu_us_per_op"`
	// ServerCPUUsPerUpdate is presence's server CPU per update sent (the
	// per-op figure is per delivery).
	ServerCPUUsPerUpdate float64 `json:"server_cpu_us_per_update,omitempty"`

	// The presence setup, not measured: logins and subscriptions until
	// every user has all its contacts in 'both', and the subscription
	// requests it took (0 when an earlier run had made them).
	SetupS               float64 `json:"setup_s,omitempty"`
	SubscriptionRequests int64   `json:"subscription_requests,omitempty"`

	RosterErrors int64 `json:"roster_errors,omitempty"`

	// Exchange is a login's byte counts turn by turn (application data:
	// what the client wrote, then what the server wrote back), before
	// STARTTLS and inside TLS, as --script takes them: recorded from the
	// first login over TCP, or the script a --relay login played.
	Exchange string `json:"exchange,omitempty"`
	// Resume is --resume's count of resumed TLS sessions.
	*Resume `json:",omitempty"`
	// Relay says the figures are the relay's (--relay), not a server's.
	Relay bool `json:"relay,omitempty"`

	// Federation: server B, where the receivers are logged in (the
	// fields above are server A's, the senders'), and its CPU per message.
	PeerAddr       string  `json:"peer_addr,omitempty"`
	PeerDomain     string  `json:"peer_domain,omitempty"`
	PeerMech       string  `json:"peer_mech,omitempty"`
	PeerPID        int     `json:"peer_pid,omitempty"`
	PeerCPUS       float64 `json:"peer_cpu_s,omitempty"`
	PeerCPUUsPerOp float64 `json:"peer_cpu_us_per_op,omitempty"`
	// WarmupS is federation's warm-up, not measured: from one unnumbered
	// message of each sender until every receiver had its own, which
	// includes negotiating the server-to-server streams.
	WarmupS float64 `json:"warmup_s,omitempty"`

	RSSBefore         int64 `json:"server_rss_before,omitempty"`
	RSSAfter          int64 `json:"server_rss_after,omitempty"`
	RSSAfterHold      int64 `json:"server_rss_after_hold,omitempty"`
	RSSBytesPerSess   int64 `json:"server_rss_bytes_per_session,omitempty"`
	SessionsAliveHold int64 `json:"sessions_alive_after_hold,omitempty"`

	// Delivery is the messages and presence scenarios' exactly-once check.
	*Delivery `json:",omitempty"`
	// Churn is the churn scenario's resumptions.
	*Churn `json:",omitempty"`
	// MAM is the mam scenario's fill and queries.
	*MAM `json:",omitempty"`
	// PEP is the pep scenario's node and caps.
	*PEP `json:",omitempty"`
	// Groupchat is the groupchat scenario's rooms and reflections.
	*Groupchat `json:",omitempty"`
	// Upload is the upload scenario's service, files and downloads.
	*Upload `json:",omitempty"`
	Date    string `json:"date"`

	bounce string // the first message bounced to a sender, for the error
}

// Delivery counts what the receivers saw, every message or presence
// update identified by its sender and sequence number. For presence, Sent
// counts updates and Delivered their arrivals at contacts: Contacts per
// update are expected.
type Delivery struct {
	Window      int   `json:"window"`
	Batch       int   `json:"batch"`
	Contacts    int   `json:"contacts,omitempty"`
	Sent        int64 `json:"sent"`
	Delivered   int64 `json:"delivered"`
	Lost        int64 `json:"lost"`
	Duplicates  int64 `json:"duplicates"`
	Misrouted   int64 `json:"misrouted"`
	Bounced     int64 `json:"bounced"`
	OutOfOrder  int64 `json:"out_of_order"`
	ExactlyOnce bool  `json:"exactly_once"`
}

// Resume counts the logins of --resume whose TLS handshake resumed a
// session (ConnectionState().DidResume) and those that made a full one:
// at least one per worker, its first. A server that does not resume shows
// 0 %.
type Resume struct {
	Resumed    int64   `json:"resumed"`
	Full       int64   `json:"full_handshakes"`
	ResumedPct float64 `json:"resumed_pct"`
}

// PEP is what the pep scenario adds: the node published to, the caps
// ver every session advertised, the disco#info queries the server sent
// (for that ver: once per server if it caches, as XEP-0115 says) and the
// notifications of items of earlier runs (the last item, sent when a
// session becomes available), which are not counted, and the warm-up's
// refused publishes.
type PEP struct {
	Node         string `json:"node"`
	Ver          string `json:"caps_ver"`
	DiscoQueries int64  `json:"disco_queries"`
	Stale        int64  `json:"stale_notifications"`
	// WarmUpErrors are the warm-up publishes the server refused (each
	// user publishes again the next round), not counted as bounced.
	WarmUpErrors     int64  `json:"warm_up_errors,omitempty"`
	FirstWarmUpError string `json:"first_warm_up_error,omitempty"`
}

// Groupchat is what the groupchat scenario adds: the rooms (the first
// one's JID, the others differing in their last number), how many the
// server reported created (status 201) and the enterings tried again
// after item-not-found; and the reflections of each message to its
// sender (XEP-0045 §7.4), checked exactly once apart from the
// deliveries, with their latency, and how many came back with another id
// than the one sent (by which clients recognize their own messages; not
// a failure). Stray counts groupchat messages with a
// body not of this run (history, the service's own), ignored.
type Groupchat struct {
	Rooms                 int     `json:"rooms"`
	Occupants             int     `json:"occupants_per_room"`
	Service               string  `json:"muc"`
	Room                  string  `json:"first_room"`
	RoomsCreated          int64   `json:"rooms_created"`
	JoinRetries           int64   `json:"join_retries"`
	Reflections           int64   `json:"reflections"`
	ReflectionsLost       int64   `json:"reflections_lost"`
	ReflectionDuplicates  int64   `json:"reflection_duplicates"`
	ReflectionsOutOfOrder int64   `json:"reflections_out_of_order"`
	ReflectionsOtherID    int64   `json:"reflections_other_id"`
	ReflectedOnce         bool    `json:"reflected_exactly_once"`
	ReflectP50Ms          float64 `json:"reflect_p50_ms,omitempty"`
	ReflectP99Ms          float64 `json:"reflect_p99_ms,omitempty"`
	Stray                 int64   `json:"stray_messages"`
}

func newResult(cfg *config) *result {
	r := &result{Scenario: cfg.scenario, Label: cfg.label, Addr: cfg.addr, Domain: cfg.domain, Mech: cfg.mech,
		N: cfg.n, Concurrency: cfg.concurrency, TLS: "starttls", Date: time.Now().UTC().Format(time.RFC3339)}
	if cfg.directTLS {
		r.TLS = "direct"
	}
	r.Relay = cfg.relay
	if u, err := url.Parse(cfg.url); err == nil && cfg.url != "" {
		r.Addr, r.TLS = cfg.url, u.Scheme // XMPP over WebSocket: ws or wss
	}
	if cfg.pid > 0 {
		r.ServerPID = cfg.pid
	}
	if cfg.scenario == "federation" {
		r.PeerAddr, r.PeerDomain, r.PeerMech, r.PeerPID = cfg.peerAddr, cfg.peerDomain, cfg.peerMech, cfg.peerPID
	}
	return r
}

// measured fills the elapsed time, rate and CPU figures between a and b
// for ops operations.
func (r *result) measured(a, b probe, ops int64) {
	r.Ops = ops
	el := b.wall.Sub(a.wall)
	r.ElapsedS = el.Seconds()
	if el > 0 {
		r.RatePerS = float64(ops) / el.Seconds()
	}
	r.BenchCPUS = (b.selfCPU - a.selfCPU).Seconds()
	if a.pid > 0 && a.err == nil && b.err == nil {
		r.ServerCPUS = (b.srvCPU - a.srvCPU).Seconds()
	}
	if ops > 0 {
		r.BenchCPUUsPerOp = r.BenchCPUS * 1e6 / float64(ops)
		r.ServerCPUUsPerOp = r.ServerCPUS * 1e6 / float64(ops)
	}
}

// peerMeasured fills server B's CPU figures between a and b, samples of
// its PID, for ops operations.
func (r *result) peerMeasured(a, b probe, ops int64) {
	if a.pid > 0 && a.err == nil && b.err == nil {
		r.PeerCPUS = (b.srvCPU - a.srvCPU).Seconds()
	}
	if ops > 0 {
		r.PeerCPUUsPerOp = r.PeerCPUS * 1e6 / float64(ops)
	}
}

// latencies sets the percentiles from samples in nanoseconds (sorted in
// place).
func (r *result) latencies(ns []int64) {
	if len(ns) == 0 {
		return
	}
	slices.Sort(ns)
	q := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.999999) - 1 // nearest rank
		i = max(0, min(i, len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	r.LatP50Ms, r.LatP99Ms, r.LatP999Ms = q(0.50), q(0.99), q(0.999)
	r.LatMaxMs = float64(ns[len(ns)-1]) / 1e6
}

func (r *result) fail(err error) {
	r.Errors++
	if r.FirstError == "" && err != nil {
		r.FirstError = err.Error()
	}
}

func (r *result) writeJSON(w io.Writer) {
	b, _ := json.Marshal(r)
	w.Write(append(b, '\n'))
}

func (r *result) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, v ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, v...)...) }
	title := r.Scenario
	if r.Label != "" {
		title += " @ " + r.Label
	}
	row("scenario", "%s (%s, %s, %s)", title, r.Addr, r.TLS, r.Mech)
	if r.PeerDomain != "" {
		row("", "senders on %s, receivers on %s (%s, %s, %s)", r.Domain, r.PeerDomain, r.PeerAddr, r.TLS, r.PeerMech)
	}
	unit := map[string]string{"login": "logins", "idle": "sessions", "messages": "messages delivered", "websocket": "messages delivered",
		"federation": "messages delivered", "presence": "presence deliveries", "churn": "messages delivered", "mam": "MAM queries",
		"pep": "PEP notifications", "groupchat": "group chat deliveries", "upload": "uploads"}[r.Scenario]
	row(unit, "%d in %.2f s = %.1f/s (concurrency %d)", r.Ops, r.ElapsedS, r.RatePerS, r.Concurrency)
	if r.WarmupS > 0 {
		row("warm-up", "%.3f s, not measured: one message per pair, server-to-server streams negotiated", r.WarmupS)
	}
	if r.SetupS > 0 {
		if r.PEP != nil {
			row("setup", "%.2f s, not measured: logins, %d subscription requests, every contact 'both', a warm-up notification from each contact", r.SetupS, r.SubscriptionRequests)
		} else if r.Groupchat != nil {
			row("setup", "%.2f s, not measured: logins, rooms created as instant rooms: %d, every occupant entered (%d enterings tried again)", r.SetupS, r.RoomsCreated, r.JoinRetries)
		} else {
			row("setup", "%.2f s, not measured: logins, %d subscription requests, every contact 'both'", r.SetupS, r.SubscriptionRequests)
		}
	}
	if r.LatP50Ms > 0 {
		if r.Delivery != nil {
			row("latency", "p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms", r.LatP50Ms, r.LatP99Ms, r.LatP999Ms, r.LatMaxMs)
		} else if r.Upload != nil {
			row("upload latency", "p50 %.2f ms  p99 %.2f ms  max %.2f ms (slot request and PUT)", r.LatP50Ms, r.LatP99Ms, r.LatMaxMs)
		} else if r.MAM != nil {
			row("query latency", "p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms", r.LatP50Ms, r.LatP99Ms, r.LatP999Ms, r.LatMaxMs)
		} else {
			row("login latency", "p50 %.2f ms  p99 %.2f ms  max %.2f ms", r.LatP50Ms, r.LatP99Ms, r.LatMaxMs)
		}
	}
	if r.Resume != nil {
		row("TLS resumed", "%d of %d logins (%.1f %%), %d full handshakes", r.Resumed, r.Resumed+r.Full, r.ResumedPct, r.Full)
	}
	if r.Exchange != "" {
		row("exchange", "%s (bytes client/server per turn: plaintext|TLS)", r.Exchange)
	}
	if r.ServerPID > 0 {
		who := ""
		if r.PeerDomain != "" {
			who = ", " + r.Domain
		}
		if r.Relay {
			who += ", the relay"
		}
		row("server CPU", "%.3f s = %.1f µs per op (pid %d%s)", r.ServerCPUS, r.ServerCPUUsPerOp, r.ServerPID, who)
		if r.ServerCPUUsPerUpdate > 0 {
			if r.PEP != nil {
				row("", "%.1f µs per item published", r.ServerCPUUsPerUpdate)
			} else if r.Groupchat != nil {
				row("", "%.1f µs per message sent to a room", r.ServerCPUUsPerUpdate)
			} else {
				row("", "%.1f µs per presence update sent", r.ServerCPUUsPerUpdate)
			}
		}
	}
	if r.PeerPID > 0 {
		row("peer CPU", "%.3f s = %.1f µs per op (pid %d, %s)", r.PeerCPUS, r.PeerCPUUsPerOp, r.PeerPID, r.PeerDomain)
	}
	row("bench CPU", "%.3f s = %.1f µs per op", r.BenchCPUS, r.BenchCPUUsPerOp)
	if r.Scenario == "login" {
		row("roster errors", "%d (an error answer still counts as answered)", r.RosterErrors)
	}
	if r.RSSAfter > 0 {
		row("server RSS", "%.1f MiB before, %.1f MiB with %d sessions = %d bytes/session", mib(r.RSSBefore), mib(r.RSSAfter), r.Ops, r.RSSBytesPerSess)
		if r.RSSAfterHold > 0 {
			row("after hold", "%.1f MiB, %d sessions still up", mib(r.RSSAfterHold), r.SessionsAliveHold)
		}
	}
	if r.MAM != nil {
		row("archive", "filled with %d messages in %.2f s = %.1f/s, %.1f µs server CPU per message", r.Fill, r.FillS, r.FillRatePerS, r.FillCPUUsPerOp)
		row("queries", "%d of %d messages each, paging back: %d results, back at the latest %d times", r.Queries, r.Page, r.Results, r.Wrapped)
	}
	if r.PEP != nil {
		row("pep", "node %s, caps ver %s: %d disco#info queries answered, %d notifications of earlier runs' items ignored", r.Node, r.Ver, r.DiscoQueries, r.Stale)
		if r.WarmUpErrors > 0 {
			row("warm-up errors", "%d publishes refused, published again, first: %s", r.WarmUpErrors, r.FirstWarmUpError)
		}
	}
	if u := r.Upload; u != nil {
		row("service", "%s, max-file-size %d; %d clients, files of %d bytes (%.2f MiB), %s", u.Service, u.MaxFileSize, u.Clients, u.Size, mib(u.Size), u.Proto)
		row("uploads", "%d in %.2f s = %.2f/s, %.1f MiB/s; slot request p50 %.2f ms  p99 %.2f ms; server CPU %.1f µs per MiB",
			u.Uploads, u.UploadS, u.UploadsPerS, u.UploadMiBPerS, u.SlotP50Ms, u.SlotP99Ms, u.UploadCPUUsPerMiB)
		row("downloads", "%d in %.2f s = %.2f/s, %.1f MiB/s; latency p50 %.2f ms  p99 %.2f ms; server CPU %.3f s = %.1f µs per MiB",
			u.Downloads, u.DownloadS, u.DownloadsPerS, u.DownloadMiBPerS, u.DownloadP50Ms, u.DownloadP99Ms, u.DownloadCPUS, u.DownloadCPUUsPerMiB)
		row("verified", "%d of %d downloads of the right size and content", u.Verified, u.Downloads)
	}
	if r.Churn != nil {
		row("churn", "%d receivers, %.0f messages/s each, a drop every %.1f s ±50 %%", r.N, r.RatePerSender, r.DropEveryS)
		row("resumptions", "%d, %d failed; latency p50 %.2f ms  p99 %.2f ms  max %.2f ms (reset → <resumed/>)",
			r.Resumptions, r.ResumeFailures, r.ResumeP50Ms, r.ResumeP99Ms, r.ResumeMaxMs)
		row("across drops", "%d messages sent before a drop of their receiver and received after it", r.AcrossDrops)
	}
	if r.Delivery != nil {
		sent := fmt.Sprintf("sent %d", r.Sent)
		if r.PEP != nil {
			sent = fmt.Sprintf("published %d items, notified to %d contacts each", r.Sent, r.Contacts)
		} else if r.Groupchat != nil {
			sent = fmt.Sprintf("sent %d messages to rooms, each to %d other occupants", r.Sent, r.Contacts)
		} else if r.Contacts > 0 {
			sent = fmt.Sprintf("sent %d updates to %d contacts each", r.Sent, r.Contacts)
		}
		row("delivery", "%s, delivered %d, lost %d, duplicates %d, misrouted %d, bounced %d, out of order %d (window %d, batch %d)",
			sent, r.Delivered, r.Lost, r.Duplicates, r.Misrouted, r.Bounced, r.OutOfOrder, r.Window, r.Batch)
		v := "NO"
		if r.ExactlyOnce {
			v = "yes"
		}
		row("exactly once", "%s", v)
	}
	if gc := r.Groupchat; gc != nil {
		row("rooms", "%d × %d occupants on %s (first: %s), %d groupchat messages not of this run ignored", gc.Rooms, gc.Occupants, gc.Service, gc.Room, gc.Stray)
		v := "NO"
		if gc.ReflectedOnce {
			v = "yes"
		}
		row("reflections", "%d to their senders, lost %d, duplicates %d, out of order %d, %d with another id than sent; latency p50 %.2f ms  p99 %.2f ms; exactly once: %s",
			gc.Reflections, gc.ReflectionsLost, gc.ReflectionDuplicates, gc.ReflectionsOutOfOrder, gc.ReflectionsOtherID, gc.ReflectP50Ms, gc.ReflectP99Ms, v)
	}
	row("errors", "%d %s", r.Errors, r.FirstError)
	tw.Flush()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
