package main

import (
	"context"
	"errors"
	"fmt"
)

func init() {
	register(&command{
		name:    "reload",
		args:    "[--config FILE]",
		summary: "make the running server read its configuration again (as SIGHUP)",
		help: `The server reads the configuration file it was started with, and the
certificates, and applies them; hosts, listeners, data_dir and storage
change only with a restart. If the file has a problem, the server keeps
its configuration and this command prints the problem and exits 1. Asks
the running server through its admin socket.`,
		run: runReload,
	})
}

func runReload(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 0); err != nil {
		return err
	}
	if _, err := inv.config(); err != nil {
		// The server would refuse it too; and its data directory, where
		// the admin socket is, is not known for sure.
		return fmt.Errorf("%w\nthe running server was not asked to reload: it keeps its configuration", err)
	}
	if _, err := inv.admin(ctx, "reload"); err != nil {
		if _, ok := errors.AsType[*notRunningError](err); ok {
			return err
		}
		return fmt.Errorf("reload failed, the server keeps its configuration: %w", err)
	}
	fmt.Println("configuration reloaded")
	return nil
}
