package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
)

func init() {
	register(&command{
		name:    "kick",
		args:    "[--config FILE] JID [REASON...]",
		summary: "end a user's session (a full JID) or all of an account's (a bare JID)",
		help: `Each session ends with the stream error <policy-violation/> and REASON
as its text ("ended by an administrator" without one); sessions waiting
for a stream management resumption end too. The account is not locked:
the client may log in again (starling user passwd or del for that).
Asks the running server through its admin socket.`,
		run: runKick,
	})
}

func runKick(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, -1); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	j, err := jid.Parse(inv.args[0])
	if err != nil || j.Localpart() == "" {
		return fmt.Errorf("%q is not a user's JID like alice@%s, or alice@%[2]s/phone for one session", inv.args[0], cfg.Server.Hosts[0])
	}
	if err := checkHost(cfg, j.Domainpart()); err != nil {
		return err
	}
	line := "kick " + j.String()
	if reason := strings.Join(inv.args[1:], " "); reason != "" {
		line += " " + strconv.Quote(reason)
	}
	answer, err := inv.admin(ctx, line)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(answer, "ended "))
	if err != nil {
		return fmt.Errorf("unexpected answer from the server: %q", answer)
	}
	if n == 0 {
		return fmt.Errorf("%s has no session", j)
	}
	if n == 1 {
		fmt.Printf("%s: 1 session ended\n", j)
	} else {
		fmt.Printf("%s: %d sessions ended\n", j, n)
	}
	return nil
}
