// Command starling is the Starling XMPP server and its administration tool.
// `starling help` lists its commands; `starling COMMAND --help` explains one.
//
// # Adding a command
//
// Each command lives in a file of its own in this directory and registers
// itself from that file's init function; nothing else needs editing:
//
//	var backupCmd = &command{
//		name:    "backup",              // the words after "starling": "user add" is a subcommand of "user"
//		args:    "[--config FILE] FILE", // the synopsis, after the name
//		summary: "copy the database while the server runs",
//		help:    "Longer text for --help, optional.",
//		run:     runBackup,
//	}
//
//	func init() {
//		backupCmd.flags.BoolVar(&backupForce, "force", false, "overwrite FILE") // the command's own flags, if any
//		register(backupCmd)
//	}
//
//	func runBackup(ctx context.Context, inv *invocation) error {
//		if err := inv.wantArgs(1, 1); err != nil {
//			return err
//		}
//		cfg, err := inv.config()
//		...
//	}
//
// The usage text (`starling help`, `starling user --help`) is generated from
// the registry in name order. Every command gets --config FILE (unless it
// sets noConfig) and -h/--help, which prints its help to standard output
// and exits 0 before run is called, so that asking for help never has side
// effects. Flags may come before or after the positional arguments
// (`starling user add alice@example.org --config F`); "--" ends the flags.
// A run returns usageError (inv.usagef) for a wrong command line, which
// exits 2 with the command's synopsis; any other error exits 1.
//
// The shared helpers are in cli.go: inv.config() loads --config (or the
// embedded defaults), inv.store() opens storage, inv.admin() talks to the
// running server through its admin socket, checkHost() refuses hosts the
// configuration does not serve.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:])
	if err == nil {
		return
	}
	if u, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(os.Stderr, "starling: %s\n", u.msg)
		fmt.Fprint(os.Stderr, u.usage)
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "starling:", err)
	os.Exit(1)
}
