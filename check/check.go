// Package check tells an operator what stands between a configuration
// and a working XMPP service, before or while it runs (`starling check`,
// beyond prosodyctl's): the configuration itself, each host's
// certificate (files, key, expiry, the names of the host and its
// services' subdomains by RFC 6125 DNS-IDs, the chain to the system's
// roots), DNS (the SRV records of RFC 6120 §3.2 and XEP-0368, addresses,
// and whether they are this machine's), the listeners' ports, the data
// directory, the database and its migrations, and the web client's files.
//
// Each finding is a Result: ok, a warning (works, but something a user
// or another server will notice) or a problem (something does not
// work), explained in words with how to fix it. Nothing is changed: the
// database is only read, a port only bound for a moment, and connections
// are only made to loopback addresses and the configured DNS server.
package check

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/starling-xmpp/starling/config"
)

// Level is how bad a Result is.
type Level int

const (
	OK Level = iota
	Warning
	Problem
)

func (l Level) String() string {
	switch l {
	case Warning:
		return "warning"
	case Problem:
		return "problem"
	}
	return "ok"
}

// The areas, in the order Run checks them.
const (
	AreaConfig    = "configuration"
	AreaCerts     = "certificates"
	AreaDNS       = "dns"
	AreaPorts     = "ports"
	AreaDatabase  = "database"
	AreaWebClient = "web client"
)

// Result is one finding.
type Result struct {
	Area  string
	Level Level
	// Text says what was found.
	Text string
	// Fix says how to fix a warning or a problem; "" for ok.
	Fix string
}

// Report is every finding of a run, in order.
type Report struct {
	Results []Result
}

func (r *Report) add(area string, level Level, fix string, format string, args ...any) {
	r.Results = append(r.Results, Result{Area: area, Level: level, Text: fmt.Sprintf(format, args...), Fix: fix})
}

func (r *Report) ok(area, format string, args ...any) { r.add(area, OK, "", format, args...) }

// Count returns the number of results of each level.
func (r *Report) Count() (ok, warnings, problems int) {
	for _, res := range r.Results {
		switch res.Level {
		case OK:
			ok++
		case Warning:
			warnings++
		case Problem:
			problems++
		}
	}
	return
}

// Failed reports whether the report has a problem, or with strict a
// warning.
func (r *Report) Failed(strict bool) bool {
	_, w, p := r.Count()
	return p > 0 || strict && w > 0
}

// Write prints the results grouped by area, each line "ok", "warning" or
// "problem" and the text, a fix on the lines after, then a summary line.
func (r *Report) Write(w io.Writer) {
	var last string
	for _, res := range r.Results {
		if res.Area != last {
			if last != "" {
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, res.Area)
			last = res.Area
		}
		fmt.Fprintf(w, "  %-8s %s\n", res.Level, res.Text)
		if res.Fix != "" {
			fmt.Fprintf(w, "  %-8s fix: %s\n", "", res.Fix)
		}
	}
	ok, warnings, problems := r.Count()
	fmt.Fprintf(w, "\n%s, %s, %s\n", plural(ok, "ok", "ok"), plural(warnings, "warning", "warnings"), plural(problems, "problem", "problems"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Options are what a run checks and how.
type Options struct {
	// Config is the configuration, loaded (see LoadConfig).
	Config *config.Config
	// Roots are the certificate authorities a chain must lead to; nil:
	// the system's.
	Roots *x509.CertPool
	// NoDNS skips the DNS checks.
	NoDNS bool
	// Now is the time certificates are checked at; zero: time.Now().
	Now time.Time
	// LocalAddrs returns this machine's addresses; nil: those of its
	// interfaces (net.InterfaceAddrs).
	LocalAddrs func() ([]netip.Addr, error)
	// Running reports whether a Starling answers on the configuration's
	// admin socket; nil: asks it (server.Admin).
	Running func(ctx context.Context) bool
	// Timeout bounds each DNS lookup, connection and database query; 0:
	// 5 seconds.
	Timeout time.Duration
}

func (o *Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 5 * time.Second
}

// Run checks everything but the configuration (LoadConfig), in order:
// certificates, DNS (unless NoDNS), ports, database, web client, adding
// to r.
func Run(ctx context.Context, opts Options, r *Report) {
	services := serviceDomains(opts.Config, r)
	Certificates(opts, services, r)
	if opts.NoDNS {
		r.ok(AreaDNS, "not checked (--no-dns)")
	} else {
		DNS(ctx, opts, services, r)
	}
	Ports(ctx, opts, r)
	Database(ctx, opts, r)
	WebClient(opts, r)
}

// hostList is hosts joined for a message.
func hostList(hosts []string) string { return strings.Join(hosts, ", ") }
