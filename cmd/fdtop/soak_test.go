package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// soakRestarts is how many back-to-back restarts TestSoakWatch does:
// FDTOP_SOAK_RESTARTS (demo/scripts/soak.sh sets 500), else 25 (CI).
func soakRestarts(t *testing.T) int {
	if v := os.Getenv("FDTOP_SOAK_RESTARTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("FDTOP_SOAK_RESTARTS=%q: want a number >= 10", v)
		}
		return n
	}
	return 25
}

// stats is one line that FDTOP_DEBUG_STATS makes fdtop write.
type stats struct {
	Goroutines int `json:"goroutines"`
	HeapKB     int `json:"heap_kb"`
	RSSKB      int `json:"rss_kb"`
}

func lastStats(t *testing.T, path string) stats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var s stats
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("stats line %q: %v", lines[len(lines)-1], err)
	}
	return s
}

// keepTrace names the file a watch records its tracker's inputs in
// (FDTOP_TRACE): in FDTOP_TRACE_DIR when set, else a temporary file that
// is removed when the test passes and kept, its path logged, when it fails,
// to replay the failure (inspect.TestTrackerReplay).
func keepTrace(t *testing.T) string {
	t.Helper()
	name := strings.ReplaceAll(t.Name(), "/", "-") + ".jsonl"
	if dir := os.Getenv("FDTOP_TRACE_DIR"); dir != "" {
		return filepath.Join(dir, name)
	}
	f, err := os.CreateTemp("", "fdtop-trace-*-"+name)
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tracker trace kept: %s", f.Name())
			return
		}
		_ = os.Remove(f.Name())
	})
	return f.Name()
}

// TestSoakWatch runs `fdtop watch --json` while the handoff demo service is
// restarted back to back: exactly one handoff event per restart, none
// missed or doubled, no client dropped, and fdtop's goroutines and memory
// flat from the first tenth of the run to the end.
func TestSoakWatch(t *testing.T) {
	restarts := soakRestarts(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		bin := sandboxtest.Fdtop(t)
		cfg := sandboxtest.InstallDemo(t, sb, 20*time.Millisecond)
		gen := sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), 3, 20*time.Millisecond)

		statsFile := filepath.Join(t.TempDir(), "stats.jsonl")
		ready := filepath.Join(t.TempDir(), "ready")
		cmd := exec.Command(bin, "watch", "--json", "--user", "--address", sb.Address, "--interval", "500ms", demo.Handoff.Socket())
		trace := keepTrace(t)
		cmd.Env = append(os.Environ(), "FDTOP_DEBUG_STATS="+statsFile, "FDTOP_READY="+ready, "FDTOP_TRACE="+trace)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

		var mu sync.Mutex
		var handoffs []inspect.Event
		var bad []string
		go func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e inspect.Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					mu.Lock()
					bad = append(bad, sc.Text())
					mu.Unlock()
					continue
				}
				if e.Type == inspect.EventHandoff {
					mu.Lock()
					handoffs = append(handoffs, e)
					mu.Unlock()
				}
			}
		}()
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(handoffs) }
		// A restart begun before the watch's first view of the service is
		// one whose old process fdtop never saw: it has no handoff to
		// report (a fixed sleep here let the first restarts of a loaded CI
		// run go before that view). The traffic is up before the watch
		// starts, so the first view shows the service running.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, errReady := os.Stat(ready)
			fi, errStats := os.Stat(statsFile)
			if errReady == nil && errStats == nil && fi.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("fdtop watch had no first view and stats line in 60 s")
			}
		}

		var early stats
		for i := 1; i <= restarts; i++ {
			if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
				t.Fatal(err)
			}
			if i == restarts/10 {
				time.Sleep(1100 * time.Millisecond) // a fresh stats line
				early = lastStats(t, statsFile)
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) && count() < restarts {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond) // anything doubled shows up now
		late := lastStats(t, statsFile)
		st := gen.Stats()

		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d restarts: %d handoff events; fdtop goroutines %d → %d, heap %d → %d KiB, RSS %d → %d KiB; clients: %d replies, %d refused, %d dropped, %d counter resets, %d server pids",
			restarts, len(handoffs), early.Goroutines, late.Goroutines, early.HeapKB, late.HeapKB, early.RSSKB, late.RSSKB,
			st.Replies, st.Refused, st.Dropped, st.CounterResets, len(st.PIDs))
		if len(bad) > 0 {
			t.Errorf("%d lines of watch --json are not events, e.g. %q", len(bad), bad[0])
		}
		if len(handoffs) != restarts {
			t.Errorf("%d handoff events for %d restarts, want exactly one each (tracker trace: %s)", len(handoffs), restarts, trace)
		}
		pids := map[int]bool{}
		for _, e := range handoffs {
			h := e.Handoff
			if h == nil || e.Unit != demo.Handoff.Service() {
				t.Errorf("handoff event %+v has no summary or the wrong unit", e)
				continue
			}
			if pids[h.NewPID] {
				t.Errorf("two handoffs to pid %d (tracker trace: %s)", h.NewPID, trace)
			}
			pids[h.NewPID] = true
			if h.ConnectionsDropped != 0 || h.ListenersReplaced != 0 {
				t.Errorf("handoff %d → %d: dropped %d, listeners replaced %d; want 0 (tracker trace: %s)", h.OldPID, h.NewPID, h.ConnectionsDropped, h.ListenersReplaced, trace)
			}
		}
		if st.Dropped != 0 || st.Refused != 0 || st.CounterResets != 0 {
			t.Errorf("clients saw dropped=%d refused=%d resets=%d, want 0", st.Dropped, st.Refused, st.CounterResets)
		}
		if late.Goroutines > early.Goroutines+5 {
			t.Errorf("goroutines grew from %d to %d", early.Goroutines, late.Goroutines)
		}
		if late.HeapKB > 2*early.HeapKB+4096 {
			t.Errorf("heap grew from %d KiB to %d KiB", early.HeapKB, late.HeapKB)
		}
	})
}
