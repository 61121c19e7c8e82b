package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// soakRestarts is how many back-to-back restarts TestSoakWatch does:
// FDTOP_SOAK_RESTARTS (demo/scripts/soak.sh sets 500), else 25 (CI).
func soakRestarts(t *testing.T) int { return envCount(t, "FDTOP_SOAK_RESTARTS", 10, 25) }

// stats is one line that FDTOP_DEBUG_STATS makes fdtop write.
type stats struct {
	Goroutines int `json:"goroutines"`
	HeapKB     int `json:"heap_kb"`
	RSSKB      int `json:"rss_kb"`
}

// readStats reads the stats lines written so far (a last one still being
// written left out).
func readStats(t *testing.T, path string) []stats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []stats
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, "\n") {
			break
		}
		var s stats
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("stats line %q: %v", l, err)
		}
		out = append(out, s)
	}
	return out
}

// statsFloor waits for n stats lines after the first from (one a second)
// and returns the least of each figure among them: a scan running as a
// line is written counts its working set as live, a leak raises every line.
func statsFloor(t *testing.T, path string, from, n int) stats {
	t.Helper()
	for deadline := time.Now().Add(time.Duration(n)*time.Second + 30*time.Second); ; time.Sleep(50 * time.Millisecond) {
		if all := readStats(t, path); len(all) >= from+n {
			f := all[from]
			for _, s := range all[from+1 : from+n] {
				f.Goroutines, f.HeapKB, f.RSSKB = min(f.Goroutines, s.Goroutines), min(f.HeapKB, s.HeapKB), min(f.RSSKB, s.RSSKB)
			}
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d stats lines after the first %d", n, from)
		}
	}
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
// (the least of three one-second samples) flat from the first tenth of the
// run to the end.
func TestSoakWatch(t *testing.T) {
	restarts := soakRestarts(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 20*time.Millisecond)
		gen := sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), 3, 20*time.Millisecond)

		statsFile := filepath.Join(t.TempDir(), "stats.jsonl")
		// The watch's first view is in once this returns: a restart begun
		// before it is one whose old process fdtop never saw, with no
		// handoff to report (a fixed sleep here let the first restarts of a
		// loaded CI run go before that view). The traffic is up before the
		// watch starts, so the first view shows the service running.
		w := startWatchJSONEnv(t, sb, []string{"FDTOP_DEBUG_STATS=" + statsFile}, "--interval", "500ms", demo.Handoff.Socket())
		count := func() int { return len(w.handoffs("")) }
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if fi, err := os.Stat(statsFile); err == nil && fi.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("fdtop watch wrote no stats line in 60 s")
			}
		}

		var early stats
		for i := 1; i <= restarts; i++ {
			if _, err := sb.Systemctl(ctx, "restart", demo.Handoff.Service()); err != nil {
				t.Fatal(err)
			}
			if i == restarts/10 {
				early = statsFloor(t, statsFile, len(readStats(t, statsFile)), 3)
			}
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) && count() < restarts {
			time.Sleep(50 * time.Millisecond)
		}
		// Anything doubled shows up while these lines are written.
		late := statsFloor(t, statsFile, len(readStats(t, statsFile)), 3)
		st := gen.Stats()

		w.mu.Lock()
		defer w.mu.Unlock()
		handoffs, bad, trace := w.handoffsLocked(""), w.bad, w.trace
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
