// Command starling is the Starling XMPP server and its administration tool.
//
//	starling serve [--config FILE]
//	starling check-config FILE
//	starling user add|del|passwd|list [--config FILE] JID|HOST
//	starling s2s [--config FILE]
//
// Without --config, serve runs on the embedded defaults: host localhost,
// SQLite and a generated certificate under ./data.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/starling-xmpp/starling/auth"
	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
)

const usage = `usage:
  starling serve [--config FILE]
  starling check-config FILE
  starling user add [--config FILE] JID      (password from a prompt, or stdin)
  starling user passwd [--config FILE] JID
  starling user del [--config FILE] JID
  starling user list [--config FILE] [HOST]
  starling s2s [--config FILE]               (the running server's federation streams)
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "starling:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		return serve(args[1:])
	case "check-config":
		if len(args) != 2 {
			return errors.New("usage: starling check-config FILE")
		}
		if _, err := loadConfig(args[1]); err != nil {
			return err
		}
		fmt.Println("configuration OK:", args[1])
		return nil
	case "user":
		return user(args[1:])
	case "s2s":
		return s2sStatus(args[1:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// loadConfig reads FILE, or returns the embedded defaults when path is "",
// and checks the modules' tables (server.CheckConfig).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := server.CheckConfig(cfg); err != nil {
		if p, ok := errors.AsType[*config.Problems](err); ok {
			p.File = path
		}
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, level *slog.LevelVar) *slog.Logger {
	setLevel(cfg, level)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func setLevel(cfg *config.Config, level *slog.LevelVar) {
	var l slog.Level
	l.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	level.Set(l)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (default: embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg, level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintf(os.Stderr, `Starling is serving %s with the embedded defaults (data in %s).
Add a user:   go run ./cmd/starling user add alice@%s
Then connect any XMPP client as alice@%s (port 5222, STARTTLS; the certificate is self-signed).
Web clients (XMPP over WebSocket and BOSH) and the bundled web chat page need the [http] listener, off by default: see config.example.toml.
`, strings.Join(cfg.Server.Hosts, ", "), cfg.Server.DataDir, cfg.Server.Hosts[0], cfg.Server.Hosts[0])
	}

	// SIGHUP reloads the configuration and certificates.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			next, err := loadConfig(*path)
			if err == nil {
				err = srv.Reload(next)
			}
			if err != nil {
				log.Error("reload failed, keeping the running configuration", "err", err)
				continue
			}
			setLevel(next, level)
			log.Info("configuration reloaded")
		}
	}()
	return srv.Run(ctx)
}

// s2sStatus prints the running server's server-to-server streams.
func s2sStatus(args []string) error {
	fs := flag.NewFlagSet("s2s", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (default: embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	answer, err := server.Admin(context.Background(), cfg, "s2s")
	if err != nil {
		return err
	}
	if strings.HasPrefix(answer, "error: unknown command") {
		return errors.New("federation is off on the running server ([s2s] enabled = false)")
	}
	fmt.Println(answer)
	return nil
}

func user(args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("user "+cmd, flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (default: embedded defaults)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	if cmd == "list" {
		hosts := cfg.Server.Hosts
		if fs.NArg() == 1 {
			hosts = []string{fs.Arg(0)}
		}
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
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: starling user %s [--config FILE] JID", cmd)
	}
	j, err := jid.Parse(fs.Arg(0))
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return fmt.Errorf("%q is not a bare JID like alice@%s", fs.Arg(0), cfg.Server.Hosts[0])
	}
	if !slices.Contains(cfg.Server.Hosts, j.Domainpart()) {
		return fmt.Errorf("%s is not a host of this server (server.hosts = %v)", j.Domainpart(), cfg.Server.Hosts)
	}
	switch cmd {
	case "add", "passwd":
		pw, err := readPassword(os.Stdin)
		if err != nil {
			return err
		}
		// The iteration count in the configuration now ([auth]); keys
		// stored before keep theirs.
		if n := cfg.Auth.SCRAMIterations; cmd == "add" {
			err = auth.CreateAccount(ctx, store, j, pw, n)
		} else {
			err = auth.SetPassword(ctx, store, j, pw, n)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", j, err)
		}
		fmt.Printf("%s: %s\n", j, map[string]string{"add": "created", "passwd": "password changed"}[cmd])
		return nil
	case "del":
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
	return fmt.Errorf("unknown user command %q", cmd)
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
