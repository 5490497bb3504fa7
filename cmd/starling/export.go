package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/starling-xmpp/starling/pie"
	"github.com/starling-xmpp/starling/storage"
)

var (
	exportHosts   stringList
	exportHashes  string
	exportPerUser bool
	exportTwice   bool
)

func init() {
	c := &command{
		name:    "export",
		args:    "[--config FILE] [--host H]... [--scram-hash LIST] [--ejabberd] [--per-user] FILE",
		summary: "write accounts and their data to FILE in XEP-0227's format",
		help: `FILE (new, readable by its owner only) gets the accounts of every host
served, or of each --host, in the Portable Import/Export Format (XEP-0227)
that ejabberdctl import_piefxis and Prosody's migrator read: SCRAM keys (so
users keep their passwords), rosters, pending subscription requests,
vCards, private XML, offline messages, PEP nodes and items, the message
archive and the blocklist. Not included: MUC rooms, push registrations,
uploaded files, last activity, archive preferences, disabled flags.

--scram-hash lists the SCRAM families written, in order (default
SHA-1,SHA-256,SHA-512). ejabberd keeps the first one: give the family of
its auth_scram_hash first (sha256: --scram-hash SHA-256). Prosody reads
the SCRAM-SHA-1 one.

--ejabberd writes the SCRAM salts and keys base64-encoded twice, as
ejabberd's export_piefxis writes them and its import_piefxis reads them
(ejabberd 23.01); without it, ejabberd imports keys its logins fail on.
starling import reads both forms.

With --per-user, FILE is a new directory that gets a document per
account, USER@HOST.xml: the layout of Prosody's mod_storage_xep0227,
which prosody-migrator reads (README, "Migrating").

Each account is read on its own while the server runs; for one moment of
the whole server, export from a copy made by starling backup.`,
		run: runExport,
	}
	c.flags.Var(&exportHosts, "host", "a host to export (repeatable; default: every host served)")
	c.flags.StringVar(&exportHashes, "scram-hash", "", "the SCRAM hash families to write, in order, comma-separated")
	c.flags.BoolVar(&exportTwice, "ejabberd", false, "SCRAM values base64-encoded twice, for ejabberdctl import_piefxis")
	c.flags.BoolVar(&exportPerUser, "per-user", false, "write a file per account into the directory FILE (Prosody's layout)")
	register(c)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runExport(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, 1); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	hosts := cfg.Server.Hosts
	if len(exportHosts) > 0 {
		for _, h := range exportHosts {
			if err := checkHost(cfg, h); err != nil {
				return err
			}
		}
		hosts = exportHosts
	}
	var hashes []storage.Hash
	if exportHashes != "" {
		for _, h := range strings.Split(exportHashes, ",") {
			h = strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(h), "SCRAM-"))
			switch storage.Hash(h) {
			case storage.SHA1, storage.SHA256, storage.SHA512:
				hashes = append(hashes, storage.Hash(h))
			default:
				return inv.usagef("--scram-hash: %q is not SHA-1, SHA-256 or SHA-512", h)
			}
		}
	}
	store, err := inv.store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	path := inv.args[0]
	opts := pie.ExportOptions{Hosts: hosts, Hashes: hashes, Base64Twice: exportTwice, Warn: warn}
	if exportPerUser {
		return exportPerUserFiles(ctx, store, path, opts)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: give a new file", path)
	}
	if err != nil {
		return err
	}
	st, err := pie.Export(ctx, store, f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	fmt.Printf("%s: %s\n", path, statsLine(st))
	return nil
}

// exportPerUserFiles writes dir/USER@HOST.xml for each account.
func exportPerUserFiles(ctx context.Context, store storage.Store, dir string, opts pie.ExportOptions) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: give a new directory", dir)
		}
		return err
	}
	var total pie.Stats
	for _, host := range opts.Hosts {
		users, err := store.ListAccounts(ctx, host)
		if err != nil {
			return err
		}
		for _, user := range users {
			path := filepath.Join(dir, user+"@"+host+".xml")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			st, err := pie.ExportAccount(ctx, store, f, host, user, opts)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			total = addStats(total, st)
		}
	}
	fmt.Printf("%s: %s\n", dir, statsLine(total))
	return nil
}

func addStats(a, b pie.Stats) pie.Stats {
	return pie.Stats{
		Accounts: a.Accounts + b.Accounts, Skipped: a.Skipped + b.Skipped, RosterItems: a.RosterItems + b.RosterItems,
		Requests: a.Requests + b.Requests, VCards: a.VCards + b.VCards, PrivateElements: a.PrivateElements + b.PrivateElements,
		Offline: a.Offline + b.Offline, PEPNodes: a.PEPNodes + b.PEPNodes, PEPItems: a.PEPItems + b.PEPItems,
		Archived: a.Archived + b.Archived, Blocked: a.Blocked + b.Blocked,
	}
}

func warn(s string) { fmt.Fprintln(os.Stderr, "warning:", s) }

// statsLine says what an export wrote or an import stored.
func statsLine(st pie.Stats) string {
	parts := []string{fmt.Sprintf("%d accounts", st.Accounts)}
	for _, c := range []struct {
		n    int
		what string
	}{
		{st.Skipped, "skipped"}, {st.RosterItems, "roster items"}, {st.Requests, "subscription requests"},
		{st.VCards, "vCards"}, {st.PrivateElements, "private XML elements"}, {st.Offline, "offline messages"},
		{st.PEPNodes, "PEP nodes"}, {st.PEPItems, "PEP items"}, {st.Archived, "archived messages"}, {st.Blocked, "blocked JIDs"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}
