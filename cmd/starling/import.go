package main

import (
	"context"
	"fmt"

	"github.com/starling-xmpp/starling/pie"
)

func init() {
	register(&command{
		name:    "import",
		args:    "[--config FILE] FILE...",
		summary: "add the accounts and data of XEP-0227 files",
		help: `Each FILE is in the Portable Import/Export Format (XEP-0227), as written by
starling export, ejabberdctl export_piefxis (give its main file: the host
files it includes are read from beside it) or Prosody's migrator (a file
per account: give them all, USER@HOST.xml ...). Accounts
keep their passwords: SCRAM keys are taken as they are; a plaintext
password has keys derived with [auth] scram_iterations. With them come
rosters, pending subscription requests, vCards, private XML, offline
messages, PEP nodes and items, the message archive and the blocklist.

Accounts of hosts this configuration does not serve, and accounts that
exist already, are skipped with a warning: importing a file twice adds
nothing the second time. Elements Starling does not know (privacy lists)
are left out with a warning. It can run while the server runs.

An account whose file has the keys of one SCRAM family only (ejabberd
keeps one, Prosody SHA-1) logs in with that mechanism or PLAIN until its
password is set again.`,
		run: runImport,
	})
}

func runImport(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, -1); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	store, err := inv.store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, file := range inv.args {
		st, err := pie.Import(ctx, store, file, pie.ImportOptions{
			Hosts:      cfg.Server.Hosts,
			Iterations: cfg.Auth.SCRAMIterations,
			Warn:       warn,
		})
		fmt.Printf("%s: %s\n", file, statsLine(st))
		if err != nil {
			return err
		}
	}
	return nil
}
