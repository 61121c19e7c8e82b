// Command fdtop is a terminal dashboard for systemd socket activation: socket
// units, file-descriptor stores, the processes that hold each descriptor and
// the connections behind them, and live handoffs during restarts.
package main

import (
	"os"
	"runtime/pprof"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/server"
)

// sandboxInitCommand is the hidden command the demo's sandbox runs fdtop
// as (its tiny init).
const sandboxInitCommand = sandbox.InitCommand

func demoServerMain(args []string, ios *ioStreams) int { return server.Main(args, ios.Out, ios.Err) }

func sandboxInitMain(args []string, ios *ioStreams) int { return sandbox.InitMain(args, ios.Err) }

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
