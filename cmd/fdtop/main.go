// Command fdtop is a terminal dashboard for systemd socket activation: socket
// units, file-descriptor stores, the processes that hold each descriptor and
// the connections behind them, and live handoffs during restarts.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

const usage = `fdtop — systemd socket activation, live

Usage:
  fdtop demo [--systemd PATH] [--startup-delay D]
                          start a private systemd user manager with three demo
                          services (plain, activated, handoff) and traffic
  fdtop --help            this text
  fdtop --version         print the version

Run 'fdtop COMMAND --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "fdtop %s\n", version)
		return exitOK
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "demo-server": // hidden: the demo units' ExecStart
		return server.Main(args[1:], stdout, stderr)
	case sandbox.InitCommand: // hidden: the sandbox's tiny init
		return sandbox.InitMain(args[1:], stderr)
	}
	fmt.Fprintf(stderr, "fdtop: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
