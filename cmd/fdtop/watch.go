package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// watchOptions are `fdtop watch`'s flags and patterns.
type watchOptions struct {
	IO          *ioStreams
	Manager     managerFlags
	Fleet       fleetFlags
	Patterns    []string
	JSON        bool
	Record      string
	Interval    time.Duration
	IntervalSet bool // given on the command line (then it also goes to remote agents)
	Probe       bool
}

// NewCmdWatch is `fdtop watch`.
func NewCmdWatch(ios *ioStreams, runF func(*watchOptions) int) *cobra.Command {
	opts := &watchOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "watch [--user|--system] [--all] [--json] [--record FILE] [--interval D] [--probe] [-H HOSTS] [PATTERN...]",
		Short: "the timeline: jobs, main PIDs, fds passed and stored, handoffs",
		Long: `Prints one line (or one JSON object) per event as it happens: jobs, main PIDs,
descriptors passed and stored, connections, and each restart's handoff with its
verdict. --record appends every event to FILE as it happens; 'fdtop replay FILE'
plays it. With -H every host's timeline, each line tagged with its host.`,
		Example: `  fdtop watch --user 'demo-*'
  fdtop watch --json --user 'demo-*' --record deploy.jsonl
  fdtop watch --hosts-file fleet.txt`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Patterns = args
			opts.IntervalSet = flagChanged(cmd.Flags(), "interval")
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(watchRun(opts))
		},
	}
	fs := cmd.Flags()
	opts.Manager.register(fs)
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	opts.Fleet.register(fs)
	_ = cmd.RegisterFlagCompletionFunc("host", completeHosts)
	fs.BoolVar(&opts.JSON, "json", false, "one JSON object per line (schema in docs/json.md)")
	fs.StringVar(&opts.Record, "record", "", "append every event as a JSON line to `FILE` (flushed per event; play it with 'fdtop replay FILE')")
	fs.DurationVar(&opts.Interval, "interval", 2*time.Second, "rescan of every unit every `D` when nothing happens")
	fs.BoolVar(&opts.Probe, "probe", false, "run the gap meter on a service's loopback TCP listeners while its job runs; the handoff says what it saw (not with -H)")
	return cmd
}

// watchRun prints the timeline: one readable line, or one JSON object, per
// event; --record appends the JSON lines to a file as they happen.
func watchRun(opts *watchOptions) int {
	stderr := opts.IO.Err
	if err := opts.Manager.validate(); err != nil {
		return fail(stderr, "watch", err)
	}
	if err := checkInterval(opts.Interval); err != nil {
		return fail(stderr, "watch", err)
	}
	if opts.Probe && opts.Fleet.remote() {
		return fail(stderr, "watch", clierr.Usage("--probe with -H: the remote agents run the gap meter only for restarts asked through them (the dashboard, rollout --probe); watch each host locally with --probe instead"))
	}
	if err := (&recorder{path: opts.Record}).check(); err != nil {
		return fail(stderr, "watch", err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	if opts.Fleet.remote() {
		return sig.exit(runRemoteWatch(ctx, opts))
	}
	return sig.exit(watch(ctx, sig, opts))
}

// watch runs the timeline once the flags are checked. Nothing is written
// once ctx ends: what a watcher reports while being cancelled (a rescan cut
// short) did not happen to the units.
func watch(ctx context.Context, sig *caught, opts *watchOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	client, b, err := opts.Manager.connectHostWide(ctx, opts.Patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "watch", sig, err)
	}
	defer client.Close()
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return failUnlessSignalled(stderr, "watch", sig, fmt.Errorf("subscribe: %w", err))
	}
	defer sub.Close()

	if p := os.Getenv("FDTOP_DEBUG_STATS"); p != "" {
		go writeStats(ctx, p) // soak tests: goroutine and memory figures
	}
	rec := &recorder{path: opts.Record}
	defer rec.close()
	events := make(chan inspect.Event, 1024)
	w := live.NewWatcher(b, sub, live.WatcherOptions{Interval: opts.Interval})
	if opts.Probe {
		w.Probe = func(string) bool { return true }
	}
	var noMatch, ready sync.Once          // each said once, on the first snapshot
	readyFile := os.Getenv("FDTOP_READY") // tests: appears once the watch has its first view
	w.OnSnapshot = func(s *inspect.Snapshot) {
		if note := inspect.NoMatchNote(s.Unmatched); note != "" {
			noMatch.Do(func() { fmt.Fprintf(stderr, "fdtop watch: %s\n", termsafe.String(note)) })
		}
		if readyFile != "" {
			ready.Do(func() { _ = os.WriteFile(readyFile, nil, 0o644) })
		}
	}
	if p := os.Getenv("FDTOP_TRACE"); p != "" {
		// The tracker's inputs, for replaying a misjudged handoff
		// (inspect.Step JSON lines; see inspect/testdata/traces).
		trace, err := os.Create(p)
		if err != nil {
			return fail(stderr, "watch", fmt.Errorf("FDTOP_TRACE: %w", err))
		}
		defer trace.Close()
		enc := json.NewEncoder(trace)
		w.Trace = func(s inspect.Step) { _ = enc.Encode(s) }
	}
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, events) }()
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case err := <-errc:
			if err != nil {
				return failUnlessSignalled(stderr, "watch", sig, err)
			}
			return exitOK
		case e := <-events:
			if ctx.Err() != nil {
				return exitOK // sent while being cancelled: not an event
			}
			e.Message = inspect.Describe(e)
			line, err := json.Marshal(e)
			if err != nil {
				return fail(stderr, "watch", err)
			}
			line = append(line, '\n')
			if err := rec.write(line); err != nil {
				return fail(stderr, "watch", err)
			}
			if opts.JSON {
				_, err = stdout.Write(line)
			} else {
				_, err = fmt.Fprintln(stdout, inspect.FormatEvent(e))
			}
			if err != nil {
				return exitRuntime // stdout closed (a pipe to head): stop quietly
			}
		}
	}
}

// recorder appends events to the --record file, which it creates (or
// opens) only when the first event arrives: a watch that never connected
// leaves no empty recording behind.
type recorder struct {
	path string
	f    *os.File
}

// write appends one JSON line with one write, so nothing half-written is
// lost.
func (r *recorder) write(line []byte) error {
	if r.path == "" {
		return nil
	}
	if r.f == nil {
		f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
		r.f = f
	}
	if _, err := r.f.Write(line); err != nil {
		return fmt.Errorf("record %s: %w", r.path, err)
	}
	return nil
}

// check tells early whether the file could be written, without creating
// it: an existing file must be writable, a new one's directory too.
func (r *recorder) check() error {
	if r.path == "" {
		return nil
	}
	target := r.path
	if _, err := os.Stat(r.path); errors.Is(err, fs.ErrNotExist) {
		target = filepath.Dir(r.path)
	} else if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := unix.Access(target, unix.W_OK); err != nil {
		return fmt.Errorf("record %s: %s: %w", r.path, target, err)
	}
	return nil
}

func (r *recorder) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// writeStats appends {"goroutines":N,"heap_kb":M,"rss_kb":R} to path every
// second until ctx ends: the soak test reads it to see fdtop stay flat.
func writeStats(ctx context.Context, path string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		// The live heap: HeapAlloc alone counts the garbage not collected
		// yet, which varies with when the last scans ran (the soak test saw
		// it 2.6 MiB early and 38 MiB late in a run, an idle second after).
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(f, "{\"goroutines\":%d,\"heap_kb\":%d,\"rss_kb\":%d}\n", runtime.NumGoroutine(), ms.HeapAlloc/1024, rssKB())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rssKB reads this process's resident set size from /proc/self/status.
func rssKB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
