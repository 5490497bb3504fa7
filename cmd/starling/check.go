package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/starling-xmpp/starling/check"
	"github.com/starling-xmpp/starling/s2s/peercert"
)

var checkFlags struct {
	strict bool
	noDNS  bool
	caFile string
}

func init() {
	c := &command{
		name:    "check",
		args:    "[--config FILE] [--strict] [--no-dns] [--ca FILE]",
		summary: "check the configuration, certificates, DNS, ports, database and web client",
		help: `Goes through what an operator must get right, and prints, grouped by
area, one line per finding: ok, warning (works, but users or other
servers will notice) or problem (does not work), each warning and
problem with how to fix it, then a summary line. Nothing is changed:
the database is only read, ports are bound for a moment, connections go
to loopback addresses only. DNS is asked through [s2s] resolver when it
is set. Run it as the server's user, before starting the server and
while it runs.

Exit status: 0 when there is no problem (warnings too, with --strict),
1 otherwise.`,
		run: runCheck,
	}
	c.flags.BoolVar(&checkFlags.strict, "strict", false, "exit 1 on warnings too")
	c.flags.BoolVar(&checkFlags.noDNS, "no-dns", false, "skip the DNS checks")
	c.flags.StringVar(&checkFlags.caFile, "ca", "", "also trust the CA certificates in `FILE` (PEM) for the chain check, besides the system's")
	register(c)
}

func runCheck(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 0); err != nil {
		return err
	}
	r := &check.Report{}
	cfg := check.LoadConfig(inv.configPath, r)
	if cfg != nil {
		roots, err := peercert.Roots(checkFlags.caFile)
		if err != nil && checkFlags.caFile != "" {
			return inv.usagef("--ca: %v", err)
		}
		check.Run(ctx, check.Options{Config: cfg, Roots: roots, NoDNS: checkFlags.noDNS}, r)
	}
	r.Write(os.Stdout)
	if !r.Failed(checkFlags.strict) {
		return nil
	}
	_, warnings, problems := r.Count()
	if problems == 0 {
		return fmt.Errorf("check failed: %d warning(s), and --strict", warnings)
	}
	return errors.New("check failed: see the problems above")
}
