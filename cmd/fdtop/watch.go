package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// runWatch prints the timeline: one readable line, or one JSON object, per
// event; --record appends the JSON lines to a file as they happen.
func runWatch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop watch [--user|--system] [--all] [--json] [--record FILE] [--interval D] [PATTERN...]\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "one JSON object per line (schema in README.md)")
	record := fs.String("record", "", "append every event as a JSON line to FILE (flushed per event; play it with 'fdtop replay FILE')")
	interval := fs.Duration("interval", 2*time.Second, "rescan of every unit when nothing happens")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "watch", err)
	}
	if *interval <= 0 {
		return fail(stderr, "watch", usageError{"--interval must be positive"})
	}
	var rec *os.File
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fail(stderr, "watch", err)
		}
		defer f.Close()
		rec = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	client, b, err := mf.connect(ctx, fs.Args())
	if err != nil {
		return fail(stderr, "watch", err)
	}
	kernel := b.Kernel.(procfs.FS)
	defer client.Close()
	sub, err := client.Subscribe(ctx)
	if err != nil {
		return fail(stderr, "watch", err)
	}
	defer sub.Close()

	if p := os.Getenv("FDTOP_DEBUG_STATS"); p != "" {
		go writeStats(ctx, p) // soak tests: goroutine and memory figures
	}
	events := make(chan inspect.Event, 1024)
	w := &inspect.Watcher{Snapshots: b, Events: sub, Interval: *interval, FullEvery: 30,
		Alive: inspect.SocketsAlive(kernel.SocketsByInode), FDCount: kernel.FDCount}
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, events) }()
	for {
		select {
		case err := <-errc:
			if err != nil {
				return fail(stderr, "watch", err)
			}
			return exitOK
		case e := <-events:
			line, err := json.Marshal(e)
			if err != nil {
				return fail(stderr, "watch", err)
			}
			line = append(line, '\n')
			if rec != nil {
				if _, err := rec.Write(line); err != nil { // one write per event: nothing half-written is lost
					return fail(stderr, "watch", fmt.Errorf("record: %w", err))
				}
			}
			if *asJSON {
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
