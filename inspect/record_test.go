package inspect_test

import (
	"bufio"
	"compress/gzip"
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
	"github.com/fdtop/fdtop/inspect"
)

// traceDir holds the recorded tracker inputs, one directory per systemd
// version, one file per scenario (JSON lines of inspect.Step).
const traceDir = "testdata/traces"

// traceConns is how many connections the traffic generator holds to each
// demo service while a scenario is recorded; the replay test checks the
// handoffs against it.
const traceConns = 3

// scenario is one recorded sequence: what is done to the demo's manager.
type scenario struct {
	name string
	run  func(t *testing.T, sb *sandbox.Sandbox, w *watch)
}

func sysctl(t *testing.T, sb *sandbox.Sandbox, args ...string) {
	t.Helper()
	if _, err := sb.Systemctl(context.Background(), args...); err != nil {
		t.Fatalf("systemctl %s: %v", strings.Join(args, " "), err)
	}
}

// settle waits until no job runs in the manager and the watch has caught
// up: every job it saw start has finished, and it made at least handoffs
// handoff events for unit.
func settle(t *testing.T, sb *sandbox.Sandbox, w *watch, unit string, handoffs int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := sb.Systemctl(context.Background(), "list-jobs", "--no-legend")
		if strings.TrimSpace(out) == "" && len(w.handoffs(unit)) >= handoffs && w.jobsDone() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("settle: %d handoffs of %s (want %d) after 20 s", len(w.handoffs(unit)), unit, handoffs)
}

// waitState waits until unit's ActiveState is state.
func waitState(t *testing.T, sb *sandbox.Sandbox, unit, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := sb.Systemctl(context.Background(), "show", "-P", "ActiveState", unit)
		if err == nil && strings.TrimSpace(out) == state {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never reached %s", unit, state)
}

// jobsDone reports that every job the watch saw start has finished.
func (w *watch) jobsDone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	running := map[uint32]bool{}
	for _, e := range w.events {
		switch e.Type {
		case inspect.EventJobStarted:
			running[e.JobID] = true
		case inspect.EventJobFinished:
			delete(running, e.JobID)
		}
	}
	return len(running) == 0
}

// scenarios are the sequences the replay test checks (TestTrackerReplay).
var scenarios = []scenario{
	{"back-to-back", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		for i := 0; i < 10; i++ {
			sysctl(t, sb, "restart", demo.Handoff.Service())
		}
		settle(t, sb, w, demo.Handoff.Service(), 10)
	}},
	{"plain-activated", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		for i := 0; i < 3; i++ {
			sysctl(t, sb, "restart", demo.Plain.Service())
			sysctl(t, sb, "restart", demo.Activated.Service())
		}
		settle(t, sb, w, demo.Activated.Service(), 3)
	}},
	{"restart-while-running", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		for i := 0; i < 3; i++ {
			sysctl(t, sb, "restart", "--no-block", demo.Handoff.Service())
			waitState(t, sb, demo.Handoff.Service(), "activating") // the first restart's start-up work
			sysctl(t, sb, "restart", demo.Handoff.Service())
			settle(t, sb, w, demo.Handoff.Service(), i+1)
		}
	}},
	{"sigkill-mid-restart", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		sysctl(t, sb, "restart", "--no-block", demo.Handoff.Service())
		waitState(t, sb, demo.Handoff.Service(), "activating") // the new process is in its start-up work
		sysctl(t, sb, "kill", "--signal=KILL", demo.Handoff.Service())
		settle(t, sb, w, demo.Handoff.Service(), 0)
		sysctl(t, sb, "reset-failed", demo.Handoff.Service())
		sysctl(t, sb, "start", demo.Handoff.Service())
		settle(t, sb, w, demo.Handoff.Service(), 0)
	}},
	{"stop-start", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		sysctl(t, sb, "stop", demo.Handoff.Service())
		sysctl(t, sb, "start", demo.Handoff.Service())
		settle(t, sb, w, demo.Handoff.Service(), 1)
	}},
	{"reload-reexec-during-job", func(t *testing.T, sb *sandbox.Sandbox, w *watch) {
		sysctl(t, sb, "restart", "--no-block", demo.Handoff.Service())
		sysctl(t, sb, "daemon-reload")
		settle(t, sb, w, demo.Handoff.Service(), 1)
		sysctl(t, sb, "restart", "--no-block", demo.Handoff.Service())
		sysctl(t, sb, "daemon-reexec")
		settle(t, sb, w, demo.Handoff.Service(), 2)
		sysctl(t, sb, "restart", demo.Handoff.Service())
		settle(t, sb, w, demo.Handoff.Service(), 3)
	}},
}

// TestRecordTraces is the recorder, not a test: with FDTOP_RECORD_TRACES=1
// it plays every scenario on a fresh demo of each systemd version under
// traffic and writes what the tracker was given to testdata/traces, for
// TestTrackerReplay. Run it as
//
//	FDTOP_RECORD_TRACES=1 FDTOP_SYSTEMD_254=... go test -run TestRecordTraces ./inspect/
func TestRecordTraces(t *testing.T) {
	if os.Getenv("FDTOP_RECORD_TRACES") == "" {
		t.Skip("the trace recorder runs with FDTOP_RECORD_TRACES=1")
	}
	only := os.Getenv("FDTOP_RECORD_ONLY")
	for _, v := range sandboxtest.Versions() {
		for _, sc := range scenarios {
			if only != "" && only != sc.name {
				continue
			}
			t.Run("systemd"+v.Name+"/"+sc.name, func(t *testing.T) {
				sb := sandboxtest.Start(t, v)
				e := newEnv(t, sb, 300*time.Millisecond)
				for _, m := range demo.Modes {
					e.traffic(t, m, traceConns)
				}
				w := e.watch(t)
				waitConnections(t, w, traceConns)
				sc.run(t, sb, w)
				w.cancel()
				<-w.done
				writeTrace(t, filepath.Join(traceDir, "systemd"+v.Name, sc.name+".jsonl.gz"), w.steps)
				t.Logf("timeline:\n%s", w.text())
			})
		}
		if only != "" && only != "accept" {
			continue
		}
		// Accept=yes socket units (TestTrackerAcceptReplay): their own
		// units, no demo.
		t.Run("systemd"+v.Name+"/accept", func(t *testing.T) {
			sb := sandboxtest.Start(t, v)
			e := newAcceptEnv(t, sb)
			w := e.watch(t)
			acceptScenario(t, sb, e, w)
			w.cancel()
			<-w.done
			writeTrace(t, filepath.Join(traceDir, "systemd"+v.Name, "accept.jsonl.gz"), w.steps)
			t.Logf("timeline:\n%s", w.text())
		})
	}
}

// waitConnections waits until a view of the watch shows every demo
// service with n connections.
func waitConnections(t *testing.T, w *watch, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		ok := 0
		for i := len(w.steps) - 1; i >= 0; i-- {
			if v := w.steps[i].View; v != nil && v.Units == nil {
				for _, svc := range v.Snapshot.Services {
					if len(svc.Connections) >= n {
						ok++
					}
				}
				break
			}
		}
		w.mu.Unlock()
		if ok == len(demo.Modes) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the watch never saw %d connections on every demo service", n)
}

func writeTrace(t *testing.T, path string, steps []inspect.Step) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(zw)
	enc := json.NewEncoder(bw)
	for _, s := range steps {
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
