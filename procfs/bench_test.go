package procfs

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fdtop/fdtop/tools/loadgen"
)

// benchLoad starts the generated load for benchmarks: 200 processes × 100
// descriptors by default; FDTOP_BENCH_LOAD=1000x100 or 50x4000 for the full ones.
func benchLoad(b *testing.B) *loadgen.Load {
	b.Helper()
	procs, fds := 200, 100
	if v := os.Getenv("FDTOP_BENCH_LOAD"); v != "" {
		if _, err := fmt.Sscanf(v, "%dx%d", &procs, &fds); err != nil {
			b.Fatalf("FDTOP_BENCH_LOAD=%q: want NxM", v)
		}
	}
	l, err := loadgen.Start(procs, fds, 5*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Stop)
	return l
}

func BenchmarkScanFull(b *testing.B) {
	benchLoad(b)
	fs, _ := New("/proc")
	b.ResetTimer()
	for b.Loop() {
		if _, err := fs.Scan(context.Background(), ScanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanPIDs10(b *testing.B) {
	l := benchLoad(b)
	fs, _ := New("/proc")
	if _, err := fs.Scan(context.Background(), ScanOptions{}); err != nil { // warms the socket cache
		b.Fatal(err)
	}
	pids := l.PIDs[:10]
	b.ResetTimer()
	for b.Loop() {
		s, err := fs.ScanPIDs(context.Background(), pids, ScanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Processes) != 10 {
			b.Fatalf("%d processes", len(s.Processes))
		}
	}
}

func BenchmarkSockets(b *testing.B) {
	benchLoad(b)
	fs, _ := New("/proc")
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := fs.Sockets(context.Background(), ScanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSocketsProcNet(b *testing.B) {
	benchLoad(b)
	fs, _ := New("/proc")
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := fs.Sockets(context.Background(), ScanOptions{NoNetlink: true}); err != nil {
			b.Fatal(err)
		}
	}
}
