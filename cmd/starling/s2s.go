package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

func init() {
	register(&command{
		name:    "s2s",
		args:    "[--config FILE]",
		summary: "list the running server's federation streams",
		help:    "Asks the running server through its admin socket (data_dir/admin.sock).",
		run:     runS2S,
	})
}

func runS2S(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 0); err != nil {
		return err
	}
	answer, err := inv.admin(ctx, "s2s")
	if err != nil {
		if strings.HasPrefix(err.Error(), "unknown command") {
			return errors.New("federation is off on the running server ([s2s] enabled = false)")
		}
		return err
	}
	fmt.Println(answer)
	return nil
}
