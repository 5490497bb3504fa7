package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/server"
	"github.com/starling-xmpp/starling/storage"
)

// An invocation is one run of a command: its positional arguments and the
// shared flags, with the helpers every command uses.
type invocation struct {
	cmd        *command
	args       []string // positional arguments, flags taken out
	configPath string   // --config; "" for the embedded defaults

	cfg *config.Config // loaded by config
}

// usagef returns a usage error for the command.
func (inv *invocation) usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...), inv.cmd.usageText()}
}

// wantArgs checks that there are min to max positional arguments (max < 0:
// no limit).
func (inv *invocation) wantArgs(min, max int) error {
	n := len(inv.args)
	switch {
	case n < min:
		return inv.usagef("%s: too few arguments", inv.cmd.name)
	case max >= 0 && n > max:
		return inv.usagef("%s: too many arguments: %s", inv.cmd.name, strings.Join(inv.args[max:], " "))
	}
	return nil
}

// config loads --config once (see loadConfig).
func (inv *invocation) config() (*config.Config, error) {
	if inv.cfg != nil {
		return inv.cfg, nil
	}
	cfg, err := loadConfig(inv.configPath)
	if err != nil {
		return nil, err
	}
	inv.cfg = cfg
	return cfg, nil
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

// store opens the configured storage; the caller closes it.
func (inv *invocation) store(ctx context.Context) (storage.Store, error) {
	cfg, err := inv.config()
	if err != nil {
		return nil, err
	}
	return server.OpenStore(ctx, cfg)
}

// admin sends one command line to the running server through its admin
// socket and returns the answer; an answer "error: TEXT" becomes an error.
// When no server runs on the configuration's data directory, the error
// says so and how this command found the directory.
func (inv *invocation) admin(ctx context.Context, line string) (string, error) {
	cfg, err := inv.config()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(server.AdminSocket(cfg)); err != nil {
		return "", inv.notRunning(cfg)
	}
	answer, err := server.Admin(ctx, cfg, line)
	if err != nil {
		if _, serr := os.Stat(server.AdminSocket(cfg)); serr != nil {
			return "", inv.notRunning(cfg)
		}
		return "", err
	}
	if msg, ok := strings.CutPrefix(answer, "error: "); ok {
		return "", errors.New(msg)
	}
	return answer, nil
}

func (inv *invocation) notRunning(cfg *config.Config) error {
	from := "the embedded defaults; pass the server's --config FILE"
	if inv.configPath != "" {
		from = inv.configPath
	}
	return &notRunningError{fmt.Sprintf("the server is not running (no admin socket %s; data_dir from %s)", server.AdminSocket(cfg), from)}
}

// notRunningError is admin's error when no server runs on the data
// directory, as opposed to the server's answer to the command.
type notRunningError struct{ msg string }

func (e *notRunningError) Error() string { return e.msg }

// checkHost returns an error unless cfg serves host.
func checkHost(cfg *config.Config, host string) error {
	if slices.Contains(cfg.Server.Hosts, host) {
		return nil
	}
	return fmt.Errorf("%s is not served (server.hosts: %s)", host, strings.Join(cfg.Server.Hosts, ", "))
}

// progName is how the user ran this program, for messages that show a
// command to type: the base name of os.Args[0], or "go run ./cmd/starling"
// when the executable is a build of `go run` (in the go-build cache's
// temporary directory, named go-build…/…/exe/starling).
func progName() string {
	exe, err := os.Executable()
	if err == nil && isGoRun(exe) {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" {
			return "go run " + goRunPath(bi.Path, bi.Main.Path)
		}
		return "go run ./cmd/starling"
	}
	return filepath.Base(os.Args[0])
}

// isGoRun reports whether exe is a binary `go run` built: it lives in a
// directory named "exe" under a temporary "go-build" directory.
func isGoRun(exe string) bool {
	dir := filepath.Dir(exe)
	return filepath.Base(dir) == "exe" && strings.Contains(dir, string(filepath.Separator)+"go-build")
}

// goRunPath turns the package path into the argument a user in the
// module's root would give `go run`.
func goRunPath(pkg, module string) string {
	if rel, ok := strings.CutPrefix(pkg, module+"/"); ok && module != "" {
		return "./" + rel
	}
	return pkg
}
