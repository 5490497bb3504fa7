package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

func init() {
	register(&command{
		name:    "sessions",
		args:    "[--config FILE] [HOST]",
		summary: "list who is online on the running server",
		help: `One line per client session of HOST, or of every host served: its JID,
transport (tcp, websocket, bosh), the client's address, whether it is
encrypted, since when it is bound, its stream management state (off, on,
resumable, detached until a time, resuming), its client state indication
(active, inactive) and its presence. Asks the running server through its
admin socket (data_dir/admin.sock).`,
		run: runSessions,
	})
}

func runSessions(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 1); err != nil {
		return err
	}
	line := "sessions"
	if len(inv.args) == 1 {
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		if err := checkHost(cfg, inv.args[0]); err != nil {
			return err
		}
		line += " " + inv.args[0]
	}
	answer, err := inv.admin(ctx, line)
	if err != nil {
		return err
	}
	var rows [][]string
	for l := range strings.Lines(answer) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	if len(rows) == 0 {
		fmt.Println("no sessions")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "JID\tTRANSPORT\tADDRESS\tSECURITY\tSINCE\tSTREAM MGMT\tCSI\tPRESENCE")
	for _, r := range rows {
		if len(r) > 4 {
			if t, err := time.Parse(time.RFC3339, r[4]); err == nil {
				r[4] = t.Local().Format(time.DateTime)
			}
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	if len(rows) == 1 {
		fmt.Println("1 session")
	} else {
		fmt.Printf("%d sessions\n", len(rows))
	}
	return nil
}
