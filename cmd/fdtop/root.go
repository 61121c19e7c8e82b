package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	// exitNoMatch: fdtop doctor was given patterns that matched no unit.
	exitNoMatch = 4
)

// ioStreams are a command's standard input and outputs (cli/cli's
// IOStreams): every command reads and writes only these.
type ioStreams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError carries a command's exit status through cobra: every RunE
// returns one (or nil for 0), having said what went wrong itself.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitStatus is the error a RunE returns for an exit code.
func exitStatus(code int) error {
	if code == exitOK {
		return nil
	}
	return exitError{code}
}

// run runs fdtop with args and returns its exit status: 0 ok, 1 runtime
// error, 2 usage error, 128+N after signal N.
func run(args []string, stdout, stderr io.Writer) int {
	return execute(args, &ioStreams{In: os.Stdin, Out: stdout, Err: stderr})
}

// execute parses args with the command tree and runs what they name. A
// mistake on the command line (an unknown flag, a missing argument) is
// said on stderr with the command's usage line: exit 2.
func execute(args []string, ios *ioStreams) int {
	if len(args) > 0 {
		// The single-dash spellings Go's flag package accepted.
		switch args[0] {
		case "-help":
			args = append([]string{"--help"}, args[1:]...)
		case "-version", "version":
			args = append([]string{"--version"}, args[1:]...)
		}
	}
	root := NewCmdRoot(ios, nil)
	if len(args) == 0 || !namesCommand(root, args[0]) {
		// The dashboard: every argument is its flag or pattern, also one
		// spelled like a command (fdtop --user demo: the units demo).
		root.RemoveCommand(root.Commands()...)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintln(ios.Err, errorLine(commandName(cmd), err))
	fmt.Fprintf(ios.Err, "Usage: %s\nTry '%s --help' for more information.\n", cmd.UseLine(), cmd.CommandPath())
	return exitUsage
}

// namesCommand reports whether arg names one of root's commands: only the
// first argument does (as before cobra: fdtop --user demo is the
// dashboard on the units matching demo, not the demo).
func namesCommand(root *cobra.Command, arg string) bool {
	switch arg {
	case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	for _, c := range root.Commands() {
		if c.Name() == arg || c.HasAlias(arg) {
			return true
		}
	}
	return false
}

// commandName is how errors name a command: "" for the dashboard (the
// root), else its path after "fdtop".
func commandName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// NewCmdRoot is fdtop: the dashboard (its flags and patterns) and every
// command under it. runF, when set, replaces the dashboard's run (tests).
func init() { cobra.EnableCommandSorting = false }

func NewCmdRoot(ios *ioStreams, runF func(*dashboardOptions) int) *cobra.Command {
	root := newCmdDashboard(ios, runF)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.Err)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return clierr.Usage(err.Error()) })
	root.AddCommand(
		NewCmdSnapshot(ios, nil),
		NewCmdWatch(ios, nil),
		NewCmdRollout(ios, nil),
		NewCmdReplay(ios, nil),
		NewCmdDoctor(ios, nil),
		NewCmdExporter(ios, nil),
		NewCmdDemo(ios, nil),
		NewCmdAgent(ios, nil),
		newCmdMan(),
		newCmdPassThrough("demo-server", "the demo units' ExecStart", demoServerMain),
		newCmdPassThrough(sandboxInitCommand, "the sandbox's tiny init", sandboxInitMain),
	)
	subs := visibleCommands(root)
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == root {
			io.WriteString(c.OutOrStdout(), rootHelp(root, subs))
			return
		}
		gnuHelp(c, args)
	})
	for _, c := range append(root.Commands(), root) {
		c.DisableFlagsInUseLine = true
		c.InitDefaultHelpFlag()
		if f := c.Flags().Lookup("help"); f != nil {
			f.Usage = "display this help and exit"
		}
	}
	return root
}

// newCmdPassThrough is a hidden command that parses its own arguments
// (the demo's server, the sandbox's init: fdtop runs itself as them).
func newCmdPassThrough(name, short string, main func(args []string, ios *ioStreams) int) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitStatus(main(args, &ioStreams{In: cmd.InOrStdin(), Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr()}))
		},
	}
}

// noArgs refuses any argument (GNU: "unexpected argument").
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return clierr.Usage(fmt.Sprintf("unexpected argument %q", args[0]))
	}
	return nil
}

// exactArgs wants n arguments named what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return clierr.Usage("missing " + what)
		case len(args) > n:
			return clierr.Usage(fmt.Sprintf("unexpected argument %q", args[n]))
		}
		return nil
	}
}

// gnuHelp prints a command's help the GNU way: the usage line, what it
// does, its options, then the rest of its description.
func gnuHelp(cmd *cobra.Command, _ []string) {
	w := cmd.OutOrStdout()
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n%s.\n", cmd.UseLine(), capitalize(cmd.Short))
	if cmd.Long != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(cmd.Long, "\n"))
	}
	if cmd.HasAvailableLocalFlags() {
		fmt.Fprintf(&b, "\nOptions:\n%s", cmd.LocalFlags().FlagUsagesWrapped(100))
	}
	if cmd.Example != "" {
		fmt.Fprintf(&b, "\nExamples:\n%s\n", strings.TrimRight(cmd.Example, "\n"))
	}
	if subs := visibleCommands(cmd); len(subs) > 0 {
		b.WriteString("\nCommands:\n")
		for _, c := range subs {
			fmt.Fprintf(&b, "  %-12s %s\n", c.Name(), c.Short)
		}
	}
	fmt.Fprintf(&b, "\nRun '%s --help' for every command, 'man %s' for all of it.\n", cmd.Root().Name(), strings.ReplaceAll(cmd.CommandPath(), " ", "-"))
	io.WriteString(w, b.String())
}

// rootHelp is `fdtop --help`: every command's usage line and what it does,
// then the dashboard's options.
func rootHelp(root *cobra.Command, subs []*cobra.Command) string {
	var b strings.Builder
	b.WriteString("fdtop — systemd socket activation, live\n\nUsage:\n")
	line := func(use, short string) {
		fmt.Fprintf(&b, "  %s\n", use)
		for _, l := range wrap(short, 60) {
			fmt.Fprintf(&b, "%26s%s\n", "", l)
		}
	}
	line(root.UseLine(), rootShort)
	for _, c := range subs {
		line(root.Name()+" "+c.Use, c.Short) // c may be detached from root (execute)
	}
	b.WriteString("  fdtop --help            this text\n  fdtop --version         print the version\n")
	fmt.Fprintf(&b, "\nDashboard options:\n%s", root.LocalFlags().FlagUsagesWrapped(100))
	b.WriteString(`
snapshot, watch, rollout (and the dashboard) reach remote hosts over ssh with
-H [user@]host[:port][,...] or --hosts-file FILE (--ssh CMD, --push, --sudo).
Options may come before and after the patterns; -- ends them.

Exit codes: 0 ok, 1 runtime error, 2 usage error, 128+N after signal N
(130 SIGINT, 143 SIGTERM, 129 SIGHUP). Ctrl-Z suspends the dashboard.

Run 'fdtop COMMAND --help' for a command's options, 'man fdtop' for all of it.
`)
	return b.String()
}

// visibleCommands are cmd's subcommands that help lists.
func visibleCommands(cmd *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" {
			out = append(out, c)
		}
	}
	return out
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// flagChanged reports whether a flag was given on the command line.
func flagChanged(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed
}
