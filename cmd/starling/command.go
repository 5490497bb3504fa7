package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// A command is one `starling NAME ...` command line; see the package
// comment for how to add one.
type command struct {
	// name is the words after "starling": "serve", "user add". A name of
	// two words makes the first a group ("user"), whose help lists them.
	name string
	// args is the synopsis after the name: "[--config FILE] JID".
	args string
	// summary is one line for the list of commands.
	summary string
	// help is printed by --help after the synopsis and summary; optional.
	help string
	// noConfig leaves out the --config flag, for commands that read no
	// configuration (version) or take the file as an argument.
	noConfig bool
	// flags holds the command's own flags, defined from its file's init.
	flags flag.FlagSet
	// run does the work, after the flags were parsed.
	run func(ctx context.Context, inv *invocation) error
}

// commands is the registry, filled by register from each command's init.
var commands = map[string]*command{}

// register adds c to the registry; a name registered twice is a bug.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("starling: command registered twice: " + c.name)
	}
	if c.run == nil || c.summary == "" {
		panic("starling: command without run or summary: " + c.name)
	}
	commands[c.name] = c
}

// sortedCommands returns the commands whose names start with prefix ("" for
// all), in name order.
func sortedCommands(prefix string) []*command {
	var cs []*command
	for name, c := range commands {
		if prefix == "" || strings.HasPrefix(name, prefix) {
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return cs
}

// synopsis is "starling NAME ARGS".
func (c *command) synopsis() string {
	s := "starling " + c.name
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

// usageList writes the synopsis and summary of every command under prefix.
func usageList(w io.Writer, prefix string) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, c := range sortedCommands(prefix) {
		fmt.Fprintf(tw, "  %s\t%s\n", c.synopsis(), c.summary)
	}
	tw.Flush()
}

// usage is the text of `starling help`.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: starling COMMAND [ARGS]\n\ncommands:\n")
	usageList(&b, "")
	b.WriteString("\nEvery command takes -h/--help. Without --config, commands use the embedded\n" +
		"defaults: host localhost, SQLite and a generated certificate under ./data.\n")
	return b.String()
}

// writeHelp writes c's --help text.
func (c *command) writeHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.synopsis(), upperFirst(c.summary)+".")
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	var hasFlags bool
	c.flags.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nflags:\n")
		c.flags.SetOutput(w)
		c.flags.PrintDefaults()
		c.flags.SetOutput(io.Discard)
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// A usageError is a wrong command line: main prints it with the synopsis
// and exits 2.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// run finds the command named by args' leading words and runs it.
func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{"no command", usage()}
	}
	if args[0] == "help" || isHelp(args[0]) {
		return help(args[1:])
	}
	// The longest run of leading words that names a command.
	var c *command
	n := 0
	for i := 1; i <= len(args) && !strings.HasPrefix(args[i-1], "-"); i++ {
		if cc, ok := commands[strings.Join(args[:i], " ")]; ok {
			c, n = cc, i
		}
	}
	if c == nil {
		return groupOrUnknown(args)
	}
	return c.invoke(ctx, args[n:])
}

// groupOrUnknown answers a command line that names no command: a group's
// name alone or with --help lists its commands; anything else is unknown.
func groupOrUnknown(args []string) error {
	group := args[0]
	if strings.HasPrefix(group, "-") {
		return &usageError{fmt.Sprintf("%s: the command comes first, its flags after it (starling user list --config FILE)", group), usage()}
	}
	if len(sortedCommands(group+" ")) == 0 {
		return &usageError{fmt.Sprintf("unknown command %q", group), usage()}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "usage: starling %s COMMAND [ARGS]\n\ncommands:\n", group)
	usageList(&b, group+" ")
	if len(args) > 1 && isHelp(args[1]) {
		fmt.Print(b.String())
		return nil
	}
	if len(args) == 1 {
		return &usageError{fmt.Sprintf("%s: which command?", group), b.String()}
	}
	return &usageError{fmt.Sprintf("unknown command %q", group+" "+args[1]), b.String()}
}

// help answers `starling help [COMMAND...]`.
func help(args []string) error {
	if len(args) == 0 {
		fmt.Print(usage())
		return nil
	}
	name := strings.Join(args, " ")
	if c, ok := commands[name]; ok {
		c.writeHelp(os.Stdout)
		return nil
	}
	if len(sortedCommands(name+" ")) > 0 {
		return groupOrUnknown([]string{name, "--help"})
	}
	return &usageError{fmt.Sprintf("unknown command %q", name), usage()}
}

// invoke parses args, flags anywhere among the positional arguments, and
// runs c; -h/--help prints c's help instead.
func (c *command) invoke(ctx context.Context, args []string) error {
	inv := &invocation{cmd: c}
	fs := &c.flags
	fs.Init(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if !c.noConfig && fs.Lookup("config") == nil {
		fs.StringVar(&inv.configPath, "config", "", "configuration `FILE` (default: the embedded defaults)")
	}
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.writeHelp(os.Stdout)
			return nil
		}
		if err != nil {
			return &usageError{err.Error(), c.usageText()}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			inv.args = append(inv.args, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		inv.args = append(inv.args, rest[0])
		args = rest[1:]
	}
	return c.run(ctx, inv)
}

// usageText is the synopsis and flags printed with a usage error.
func (c *command) usageText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", c.synopsis())
	fmt.Fprintf(&b, "(starling %s --help for more)\n", c.name)
	return b.String()
}
