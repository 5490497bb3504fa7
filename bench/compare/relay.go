package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/starling-xmpp/starling/internal/anchor"
)

// The floor (issue 18): `starling-bench relay`, a bare TLS relay that
// parses nothing, run as a process of its own with the servers' RSA
// certificate chain, and driven by the relay cases (benchCase.relay) with
// the same bytes and round trips as the servers' case each is the floor
// of (benchCase.ref): relay-login replays, turn by turn, the byte counts
// of a Starling login of this run (its JSON's exchange), with a full TLS
// handshake between the plaintext turns and those inside TLS, as
// STARTTLS has it; relay-messages pairs the sessions through the relay,
// which copies each stanza from one TLS connection to the other. The
// relay's CPU per login or message, from /proc like a server's, is what
// syscalls and crypto cost on this machine for that traffic; the floor
// section puts each server's figure beside it as a ratio.

// relayInfo is where the relay runs: Starling's address, free by then.
var relayInfo = serverInfo{name: "relay", title: "relay", addr: "127.0.0.1", mechs: []string{"SCRAM-SHA-1"}}

// runRelayCases starts the relay, runs the relay cases against it and
// stops it.
func runRelayCases(ctx context.Context, rep *report, bench, logDir string, chain *anchor.Chain, quick bool) error {
	addr := net.JoinHostPort(relayInfo.addr, anchor.StartTLSPort)
	log.Printf("relay: starting on %s", addr)
	cmd := exec.Command(bench, "relay", "--listen", addr, "--cert", chain.CertFile, "--key", chain.KeyFile)
	out, err := os.Create(filepath.Join(logDir, "relay.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	up := false
	for deadline := time.Now().Add(startTimeout); !up && time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			up = true
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("the relay exited: %v; %s", cmd.ProcessState, tail(out.Name()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !up {
		return fmt.Errorf("the relay did not listen on %s within %v", addr, startTimeout)
	}
	pid := cmd.Process.Pid
	for _, c := range rep.cases {
		if !c.relay {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		args := append(benchArgs(relayInfo.addr, strconv.Itoa(pid), "relay"), "--relay")
		args = append(args, c.args...)
		if c.scenario == "login" {
			ref := rep.cells[c.ref]["starling"]
			if !ref.ok() || ref.res.Exchange == "" {
				rep.cells[c.name][relayInfo.name] = &cell{err: fmt.Sprintf("no exchange to replay: Starling's %s did not run in this run", c.ref)}
				continue
			}
			args = append(args, "--script", ref.res.Exchange)
		}
		log.Printf("relay: %s", c.name)
		rep.cells[c.name][relayInfo.name] = runBench(ctx, bench, filepath.Join(logDir, "relay-"+c.name), "relay: "+c.name, args, []int{pid}, quick, c.timeout)
	}
	return nil
}

// floorMetrics are the rows of the floor section for each relay case.
var floorMetrics = map[string][]metric{
	"login": {
		{label: "server CPU per login", values: func(r *result) []float64 { return []float64{r.ServerCPUUs} }, format: micros},
		{label: "logins/s", values: func(r *result) []float64 { return []float64{r.RatePerS} }, format: perSecond},
		{label: "login latency p50 / p99", values: func(r *result) []float64 { return []float64{r.LatP50Ms, r.LatP99Ms} }, format: millis},
	},
	"messages": {
		{label: "server CPU per message", values: func(r *result) []float64 { return []float64{r.ServerCPUUs} }, format: micros},
		{label: "messages/s", values: func(r *result) []float64 { return []float64{r.RatePerS} }, format: perSecond},
		{label: "message latency p50 / p99", values: func(r *result) []float64 { return []float64{r.LatP50Ms, r.LatP99Ms} }, format: millis},
	},
}

// floor is the section on the relay cases: the relay's figures, each
// server's for the case it is the floor of, and their ratios to the
// relay's ("" if no relay case ran).
func (r *report) floor() string {
	var rows []string
	for _, c := range r.cases {
		if !c.relay {
			continue
		}
		rc := r.cells[c.name][relayInfo.name]
		for _, m := range floorMetrics[c.scenario] {
			var b strings.Builder
			fmt.Fprintf(&b, "| %s (%s) | ", m.label, c.title)
			switch {
			case rc == nil:
				b.WriteString("not run")
			case !rc.ok():
				fmt.Fprintf(&b, "failed [%d]", r.noteText("relay, `"+c.name+"`: "+rc.err))
			default:
				b.WriteString(m.format(m.values(rc.res)))
			}
			b.WriteString(" |")
			for _, s := range r.servers {
				sc, alt := r.cells[c.ref][s.name], ""
				if !sc.ok() && c.altRef != "" && r.cells[c.altRef][s.name].ok() {
					sc, alt = r.cells[c.altRef][s.name], " (`"+c.altRef+"`)"
				}
				v, q := "—", "—"
				if sc.ok() {
					v = m.format(m.values(sc.res)) + alt
					if rc.ok() {
						q = ratio(m.values(sc.res), m.values(rc.res))
					}
				}
				fmt.Fprintf(&b, " %s | %s |", escape(v), q)
			}
			rows = append(rows, b.String())
		}
	}
	if len(rows) == 0 {
		return ""
	}
	var g strings.Builder
	g.WriteString("\n### The floor: a bare TLS relay\n\n")
	g.WriteString("The same bytes and round trips through `starling-bench relay`, which parses nothing (the servers'\n" +
		"certificate chain; a login's exchange recorded from Starling's first login of `" + refOf(r.cases, "login") + "` in this run and replayed\n" +
		"turn by turn, plaintext, then a full TLS handshake, then the turns inside TLS; messages copied from one TLS\n" +
		"connection to its pair's). \"÷ relay\" is the server's figure divided by the relay's: for CPU, how many\n" +
		"times the floor of syscalls and crypto on this machine the server needs.\n\n")
	g.WriteString("```\nstarling-bench relay --listen " + net.JoinHostPort(relayInfo.addr, anchor.StartTLSPort) + " --cert CHAIN.crt --key CHAIN.key\n")
	for _, c := range r.cases {
		if c.relay {
			script := ""
			if c.scenario == "login" {
				script = " --script EXCHANGE"
				if rc := r.cells[c.ref]["starling"]; rc.ok() && rc.res.Exchange != "" {
					script = " --script " + rc.res.Exchange
				}
			}
			fmt.Fprintf(&g, "starling-bench %s --relay %s%s\n", strings.Join(benchArgs(relayInfo.addr, "RELAY_PID", "relay"), " "), strings.Join(c.args, " "), script)
		}
	}
	g.WriteString("```\n\n| floor | relay |")
	for _, s := range r.servers {
		fmt.Fprintf(&g, " %s | %s ÷ relay |", s.title, s.title)
	}
	g.WriteString("\n|---|---|" + strings.Repeat("---|---|", len(r.servers)) + "\n")
	g.WriteString(strings.Join(rows, "\n") + "\n")
	return g.String()
}

// refOf is the case the first relay case of scenario is the floor of.
func refOf(cases []benchCase, scenario string) string {
	for _, c := range cases {
		if c.relay && c.scenario == scenario {
			return c.ref
		}
	}
	return ""
}
