package main

import (
	"context"
	"net"
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

// TestWatchRestartFailed (issue 20, case 10): restarts of demo-activated
// until its start limit (StartLimitBurst=2) refuses one. That restart's job
// fails, the service and its socket unit fail and the manager closes the
// listener (nothing accepts on it: a connect is refused). The watch says
// so: a failed restart of the old process, no handoff to "pid 0", no
// "stop+start" made of the next start the limit refuses too.
func TestWatchRestartFailed(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		svc := demo.Activated.Service()
		dir := filepath.Join(sb.UnitDir, svc+".d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "limit.conf"), []byte("[Unit]\nStartLimitIntervalSec=600\nStartLimitBurst=2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "reset-failed", svc); err != nil {
			t.Fatal(err)
		}
		w := startWatchJSON(t, sb, "demo-activated*")
		var failedAt int
		for i := 1; i <= 3 && failedAt == 0; i++ {
			if _, err := sb.Systemctl(ctx, "restart", svc); err != nil {
				failedAt = i
			}
			w.waitHandoffs(t, svc, i)
		}
		if failedAt == 0 {
			t.Fatal("no restart failed on the start limit")
		}
		// The next start is refused by the limit too.
		if _, err := sb.Systemctl(ctx, "start", svc); err == nil {
			t.Fatal("a start passed the start limit")
		}
		state, err := sb.Systemctl(ctx, "show", "-p", "ActiveState", "-p", "Result", svc, demo.Activated.Socket())
		if err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", cfg.Addr(demo.Activated), time.Second); err == nil {
			c.Close()
			t.Fatalf("the listener still accepts after the failure (%s)", state)
		}
		// The watch saw both refused jobs end (the restart's and the
		// start's).
		for deadline := time.Now().Add(60 * time.Second); w.failedJobs() < 2 || !w.jobsDone(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the watch saw %d failed jobs end, want 2", w.failedJobs())
			}
		}
		hs := w.handoffs(svc)
		if len(hs) != failedAt {
			for _, e := range hs {
				t.Logf("%s", inspect.Verdict(*e.Handoff))
			}
			t.Fatalf("%d handoff events, want %d (the last one the failed restart); the manager: %s", len(hs), failedAt, state)
		}
		e := hs[len(hs)-1]
		h := *e.Handoff
		v := inspect.Verdict(h)
		t.Logf("%s (the manager: %s)", v, strings.ReplaceAll(state, "\n", " "))
		if !h.Failed || e.Result != "failed" || h.NewPID != 0 || h.OldPID == 0 || h.HandoffJob != "restart" {
			t.Errorf("%s: failed %v result %q job %q pid %d → %d; want a failed restart of the old process", v, h.Failed, e.Result, h.HandoffJob, h.OldPID, h.NewPID)
		}
		if h.ServiceState != "failed" || h.ServiceResult != "start-limit-hit" || len(h.SocketsFailed) != 1 || h.ListenersClosed != 1 || h.ListenersUnknown != 0 {
			t.Errorf("%s: service %s (%s), sockets failed %q, listeners closed %d unknown %d; want failed (start-limit-hit), [%s], 1 closed",
				v, h.ServiceState, h.ServiceResult, h.SocketsFailed, h.ListenersClosed, h.ListenersUnknown, demo.Activated.Socket())
		}
		for _, ev := range hs[:len(hs)-1] {
			if ev.Failed {
				t.Errorf("a restart that succeeded is called failed: %s", inspect.Verdict(*ev.Handoff))
			}
		}
	})
}

// failedJobs counts the job_finished events with the result failed.
func (w *watchJSON) failedJobs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e.Type == inspect.EventJobFinished && e.Result == "failed" {
			n++
		}
	}
	return n
}
