// Command fdtop is a terminal dashboard for systemd socket activation: socket
// units, file-descriptor stores, the processes that hold each descriptor and
// the connections behind them, and live handoffs during restarts.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

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
	// exitNoMatch: fdtop doctor was given patterns that matched no unit.
	exitNoMatch = 4
)

const usage = `fdtop — systemd socket activation, live

Usage:
  fdtop [--user|--system] [--all] [--read-only] [--probe] [--interval D] [PATTERN...]
                          the live dashboard (system manager by default)
  fdtop snapshot [--user|--system] [--all] [--json] [PATTERN...]
                          one joined picture: listeners, holders, fd stores, connections
  fdtop watch [--user|--system] [--all] [--json] [--record FILE] [--interval D] [PATTERN...]
                          the timeline: jobs, main PIDs, fds passed and stored, handoffs
  fdtop rollout UNIT [-H HOSTS] [--probe] [--max-refused N] [--max-dropped N] [--pause D] [--json]
                          restart UNIT host by host, halting at the first
                          host whose handoff verdict breaks the budget
  fdtop replay [--stepped] [--speed X] FILE
                          play a file recorded by 'fdtop watch --record'
  fdtop doctor [--user|--system] [--json] [PATTERN...]
                          what keeps socket activation or a handoff from
                          working: per finding the evidence and the fix
                          (exit 0 nothing found, 1 findings)
  fdtop exporter [--listen ADDR] [--user|--system] [--address A] [--unit-include RE]
                 [--unit-exclude RE] [--max-units N] [--probe] [PATTERN...]
                          serve /metrics for Prometheus (127.0.0.1:9786 by
                          default): fd stores, listener holders, handoff
                          verdicts, doctor findings (docs/exporter.md)
  fdtop demo [--systemd PATH] [--startup-delay D] [--dashboard=false]
                          a private systemd user manager with three demo
                          services (plain, activated, handoff) and traffic
  fdtop --help            this text
  fdtop --version         print the version

snapshot, watch, rollout (and the dashboard, one host) reach remote hosts over ssh with
-H [user@]host[:port][,...] or --hosts-file FILE (--ssh CMD, --push, --sudo).

Exit codes: 0 ok, 1 runtime error, 2 usage error, 128+N after signal N
(130 SIGINT, 143 SIGTERM, 129 SIGHUP). Ctrl-Z suspends the dashboard.

Run 'fdtop COMMAND --help' for a command's flags.
`

func main() {
	if p := os.Getenv("FDTOP_CPUPROFILE"); p != "" {
		// Profiling fdtop itself (e.g. the idle cost of watch), from
		// FDTOP_CPUPROFILE_AFTER on if set (leaving out the start-up).
		if f, err := os.Create(p); err == nil {
			after, _ := time.ParseDuration(os.Getenv("FDTOP_CPUPROFILE_AFTER"))
			started := make(chan bool, 1)
			stop := make(chan struct{})
			go func() {
				select {
				case <-time.After(after):
					started <- pprof.StartCPUProfile(f) == nil
				case <-stop:
					started <- false
				}
			}()
			code := run(os.Args[1:], os.Stdout, os.Stderr)
			close(stop)
			if <-started {
				pprof.StopCPUProfile()
			}
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runDashboard(args, stderr)
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "fdtop %s\n", version)
		return exitOK
	case "watch":
		return runWatch(args[1:], stdout, stderr)
	case "replay":
		return runReplay(args[1:], stderr)
	case "snapshot":
		return runSnapshot(args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "rollout":
		return runRollout(args[1:], stdout, stderr)
	case "exporter":
		return runExporter(args[1:], stdout, stderr)
	case agentCommand: // hidden: the remote side of -H
		return runAgent(args[1:], os.Stdin, stdout, stderr)
	case "demo-server": // hidden: the demo units' ExecStart
		return server.Main(args[1:], stdout, stderr)
	case sandbox.InitCommand: // hidden: the sandbox's tiny init
		return sandbox.InitMain(args[1:], stderr)
	}
	// Anything else is the dashboard's flags and unit patterns.
	return runDashboard(args, stderr)
}
