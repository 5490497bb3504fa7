package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
)

const passwordHelp = `The password is asked twice on a terminal, or read as one line from
standard input otherwise; it is never taken from the command line. Keys are
derived with the configuration's [auth] scram_iterations.`

func init() {
	register(&command{
		name:    "user add",
		args:    "[--config FILE] JID",
		summary: "create an account (password from a prompt, or stdin)",
		help:    passwordHelp,
		run:     runUserAdd,
	})
	register(&command{
		name:    "user passwd",
		args:    "[--config FILE] JID",
		summary: "change an account's password (from a prompt, or stdin)",
		help:    passwordHelp,
		run:     runUserPasswd,
	})
	register(&command{
		name:    "user del",
		args:    "[--config FILE] JID",
		summary: "delete an account and everything stored for it",
		help:    "A running server then ends the account's sessions (through its admin socket).",
		run:     runUserDel,
	})
	register(&command{
		name:    "user list",
		args:    "[--config FILE] [HOST]",
		summary: "list the accounts of HOST, or of every host served",
		run:     runUserList,
	})
}

// accountArg parses the one argument of a user command, a bare JID of a
// host the configuration serves.
func accountArg(inv *invocation) (jid.JID, *config.Config, error) {
	if err := inv.wantArgs(1, 1); err != nil {
		return jid.JID{}, nil, err
	}
	cfg, err := inv.config()
	if err != nil {
		return jid.JID{}, nil, err
	}
	j, err := jid.Parse(inv.args[0])
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, nil, fmt.Errorf("%q is not a bare JID like alice@%s", inv.args[0], cfg.Server.Hosts[0])
	}
	if err := checkHost(cfg, j.Domainpart()); err != nil {
		return jid.JID{}, nil, err
	}
	return j, cfg, nil
}

func runUserAdd(ctx context.Context, inv *invocation) error    { return setPassword(ctx, inv, true) }
func runUserPasswd(ctx context.Context, inv *invocation) error { return setPassword(ctx, inv, false) }

func setPassword(ctx context.Context, inv *invocation, create bool) error {
	j, cfg, err := accountArg(inv)
	if err != nil {
		return err
	}
	store, err := inv.store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	pw, err := readPassword(os.Stdin)
	if err != nil {
		return err
	}
	// The iteration count in the configuration now ([auth]); keys stored
	// before keep theirs.
	n := cfg.Auth.SCRAMIterations
	if create {
		err = auth.CreateAccount(ctx, store, j, pw, n)
	} else {
		err = auth.SetPassword(ctx, store, j, pw, n)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", j, err)
	}
	if create {
		fmt.Printf("%s: created\n", j)
	} else {
		fmt.Printf("%s: password changed\n", j)
	}
	return nil
}

func runUserDel(ctx context.Context, inv *invocation) error {
	j, cfg, err := accountArg(inv)
	if err != nil {
		return err
	}
	store, err := inv.store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.DeleteAccount(ctx, j.Domainpart(), j.Localpart()); err != nil {
		return fmt.Errorf("%s: %w", j, err)
	}
	fmt.Printf("%s: deleted\n", j)
	// A running server ends the account's sessions.
	if running, err := server.EndSessions(ctx, cfg, j); err != nil {
		return fmt.Errorf("%s was deleted, but the running server did not end its sessions: %w", j, err)
	} else if running {
		fmt.Printf("%s: sessions ended\n", j)
	}
	return nil
}

func runUserList(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 1); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	hosts := cfg.Server.Hosts
	if len(inv.args) == 1 {
		if err := checkHost(cfg, inv.args[0]); err != nil {
			return err
		}
		hosts = inv.args[:1]
	}
	store, err := inv.store(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, h := range hosts {
		users, err := store.ListAccounts(ctx, h)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Printf("%s@%s\n", u, h)
		}
	}
	return nil
}

// readPassword prompts twice without echo on a terminal, or reads one line
// from a pipe. A password is never taken from the command line.
func readPassword(in *os.File) (string, error) {
	fd := int(in.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(os.Stderr, "Password: ")
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(os.Stderr, "Again: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		if len(a) == 0 {
			return "", errors.New("empty password")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input")
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}
