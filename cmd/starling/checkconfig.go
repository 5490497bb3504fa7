package main

import (
	"context"
	"fmt"
)

func init() {
	register(&command{
		name:     "check-config",
		args:     "FILE",
		summary:  "check a configuration file, modules' tables included",
		help:     "Lists every problem with its key path and exits 1 if there is any.",
		noConfig: true,
		run:      runCheckConfig,
	})
}

func runCheckConfig(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, 1); err != nil {
		return err
	}
	if _, err := loadConfig(inv.args[0]); err != nil {
		return err
	}
	fmt.Println("configuration OK:", inv.args[0])
	return nil
}
