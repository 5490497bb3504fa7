package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
)

func init() {
	register(&command{
		name:    "serve",
		args:    "[--config FILE]",
		summary: "run the server",
		help: `Runs until SIGINT or SIGTERM, which end every stream with <system-shutdown/>.
SIGHUP (or starling reload) reads the configuration file and the
certificates again. Without --config, serves localhost on the embedded
defaults, with SQLite and a generated self-signed certificate under ./data.`,
		run: runServe,
	})
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

func runServe(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 0); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLogger(cfg, level)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if inv.configPath == "" {
		prog := progName()
		fmt.Fprintf(os.Stderr, `Starling is serving %s with the embedded defaults (data in %s).
Add a user:   %s user add alice@%s
Then connect any XMPP client as alice@%s (port 5222, STARTTLS; the certificate is self-signed).
Web clients (XMPP over WebSocket and BOSH) and the bundled web chat page need the [http] listener, off by default: see config.example.toml.
`, strings.Join(cfg.Server.Hosts, ", "), cfg.Server.DataDir, prog, cfg.Server.Hosts[0], cfg.Server.Hosts[0])
	}

	// SIGHUP and `starling reload` read the configuration file again and
	// apply it, certificates included; one at a time.
	var reloading sync.Mutex
	reload := func() error {
		reloading.Lock()
		defer reloading.Unlock()
		next, err := loadConfig(inv.configPath)
		if err == nil {
			err = srv.Reload(next)
		}
		if err != nil {
			log.Error("reload failed, keeping the running configuration", "err", err)
			return err
		}
		setLevel(next, level)
		log.Info("configuration reloaded")
		return nil
	}
	srv.SetReloader(reload)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			reload()
		}
	}()
	return srv.Run(ctx)
}
