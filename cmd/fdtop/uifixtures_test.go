package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/inspect"
)

// uiRecordingDir is where TestRecordUIFixtures writes the recordings the
// ui package's tests play (ui/testdata/recordings/systemdNNN.jsonl.gz).
const uiRecordingDir = "../../ui/testdata/recordings"

// TestRecordUIFixtures is the recorder of the ui tests' fixtures, not a
// test: with FDTOP_RECORD_FIXTURES=1 it runs `fdtop watch --probe
// --record FILE 'demo-*'` on a fresh demo of each systemd version, with
// 4 clients on every demo service, and does what a person does in the
// demo: a daemon-reload, then one restart each of demo-handoff,
// demo-plain and demo-activated (waiting for each verdict). The recording
// is written gzipped to ui/testdata/recordings/systemdNNN.jsonl.gz exactly
// as watch wrote it. Remake the fixtures with
//
//	FDTOP_RECORD_FIXTURES=1 FDTOP_SYSTEMD_254=$(demo/scripts/fetch-systemd-254.sh | tail -1) \
//	    go test -count=1 -run TestRecordUIFixtures ./cmd/fdtop/
//
// then run go test ./ui/ (the ui tests read the events, not their PIDs or
// times, so a new recording passes unless what inspect emits changed).
func TestRecordUIFixtures(t *testing.T) {
	if os.Getenv("FDTOP_RECORD_FIXTURES") == "" {
		t.Skip("the ui fixture recorder runs with FDTOP_RECORD_FIXTURES=1")
	}
	const conns = 4
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 300*time.Millisecond)
		gens := map[demo.Mode]*traffic.Generator{}
		for _, m := range demo.Modes {
			gens[m] = sandboxtest.Traffic(t, cfg.Addr(m), conns, 50*time.Millisecond)
		}
		rec := filepath.Join(t.TempDir(), "rec.jsonl")
		w := startWatchJSON(t, sb, "--probe", "--record", rec, "demo-*")

		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); w.count(inspect.EventReloading) == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("fdtop watch recorded no daemon-reload in 10 s")
			}
		}
		for _, m := range []demo.Mode{demo.Handoff, demo.Plain, demo.Activated} {
			for deadline := time.Now().Add(10 * time.Second); gens[m].Stats().Connected < conns && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := sb.Systemctl(ctx, "restart", m.Service()); err != nil {
				t.Fatal(err)
			}
			if hs := w.waitHandoffs(t, m.Service(), 1); len(hs) != 1 {
				t.Fatalf("%d handoff events of %s for one restart", len(hs), m.Service())
			}
		}
		raw, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
		bw := bufio.NewWriter(zw)
		_, _ = bw.Write(raw)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(uiRecordingDir, filepath.Base(t.Name())+".jsonl.gz") // systemd252, systemd254
		if err := os.MkdirAll(uiRecordingDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, zb.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d events, %d bytes gzipped", out, bytes.Count(raw, []byte("\n")), zb.Len())
	})
}

// count is how many events of typ the watch has written.
func (w *watchJSON) count(typ inspect.EventType) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}
