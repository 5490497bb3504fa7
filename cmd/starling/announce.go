package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

var announceHost string

func init() {
	c := &command{
		name:    "announce",
		args:    "[--config FILE] [--host HOST] MESSAGE...",
		summary: "send a message to every online user",
		help: `Sends MESSAGE (the arguments joined by spaces) from the host, as a headline
message with the subject "Announcement", to every available session of
the accounts of HOST, or of every host served, as Prosody's mod_announce
does; users offline do not get it. Asks the running server through its
admin socket.`,
		run: runAnnounce,
	}
	c.flags.StringVar(&announceHost, "host", "", "only the users of `HOST` (default: every host served)")
	register(c)
}

func runAnnounce(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, -1); err != nil {
		return err
	}
	text := strings.Join(inv.args, " ")
	if strings.TrimSpace(text) == "" {
		return inv.usagef("announce: empty message")
	}
	host := "*"
	if announceHost != "" {
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		if err := checkHost(cfg, announceHost); err != nil {
			return err
		}
		host = announceHost
	}
	answer, err := inv.admin(ctx, "announce "+host+" "+strconv.Quote(text))
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(answer, "sent "))
	if err != nil {
		return fmt.Errorf("unexpected answer from the server: %q", answer)
	}
	if n == 1 {
		fmt.Println("sent to 1 session")
	} else {
		fmt.Printf("sent to %d sessions\n", n)
	}
	return nil
}
