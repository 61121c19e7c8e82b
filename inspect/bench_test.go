package inspect_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
	"github.com/fdtop/fdtop/tools/loadgen"
)

// BenchmarkSnapshotVsScan compares a full `fdtop snapshot` (D-Bus load,
// full host scan, join) on the sandbox with the demo units against the
// procfs full scan alone, on a generated load: 200 processes × 100
// descriptors by default, FDTOP_BENCH_LOAD=1000x100 for the 100k fds.
func BenchmarkSnapshotVsScan(b *testing.B) {
	procs, fds := 200, 100
	if v := os.Getenv("FDTOP_BENCH_LOAD"); v != "" {
		if _, err := fmt.Sscanf(v, "%dx%d", &procs, &fds); err != nil {
			b.Fatalf("FDTOP_BENCH_LOAD=%q: want NxM", v)
		}
	}
	sb := sandboxtest.Start(b, sandboxtest.Versions()[0])
	e := newEnvTB(b, sb)
	l, err := loadgen.Start(procs, fds, 10*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Stop)
	fs, _ := procfs.New("/proc")
	b.Run("procfs-scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := fs.Scan(context.Background(), procfs.ScanOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.b.Snapshot(context.Background(), inspect.SnapshotOptions{FullScan: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The live model's host-wide pass: the units as last read, the
	// descriptors of unchanged processes from the pass before.
	b.Run("host-pass", func(b *testing.B) {
		if _, err := e.b.Snapshot(context.Background(), inspect.SnapshotOptions{FullScan: true}); err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime(b)
		for b.Loop() {
			if _, err := e.b.Snapshot(context.Background(), inspect.SnapshotOptions{FullScan: true, Cached: true}); err != nil {
				b.Fatal(err)
			}
		}
		// What the pass costs the machine: every thread's CPU (the /proc
		// walkers and the socket dump run beside the caller), GC included.
		b.ReportMetric(float64((cpuTime(b)-c0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
	b.Run("snapshot-targeted", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.b.Snapshot(context.Background(), inspect.SnapshotOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
