package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/starling-xmpp/starling/server"
)

func init() {
	register(&command{
		name:     "version",
		summary:  "print the version, the Go version and build information",
		noConfig: true,
		run:      runVersion,
	})
}

func runVersion(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(0, 0); err != nil {
		return err
	}
	fmt.Printf("starling %s %s %s/%s\n", server.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	fmt.Printf("module %s %s\n", bi.Main.Path, bi.Main.Version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "-race", "CGO_ENABLED", "GOAMD64":
			fmt.Printf("%s=%s\n", s.Key, s.Value)
		}
	}
	return nil
}
