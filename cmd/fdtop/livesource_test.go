package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// startLiveSource starts the dashboard's live model on the sandbox's
// manager, on the units patterns name, rescanning every interval; it stops
// when the test ends.
func startLiveSource(t *testing.T, sb *sandbox.Sandbox, patterns []string, interval time.Duration) *liveSource {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mf := managerFlags{user: true, address: sb.Address, proc: "/proc"}
	client, b, err := mf.connect(ctx, patterns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	src, err := newLiveSource(ctx, client, b, interval, false)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestOnePWhenShown: the dashboard's live source lets the runtime run on
// one processor once its first picture is out, not before, and not when
// the user set GOMAXPROCS.
func TestOnePWhenShown(t *testing.T) {
	before := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(before)
	for _, env := range []string{"", "2"} {
		t.Run("GOMAXPROCS="+env, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", env)
			runtime.GOMAXPROCS(2)
			src := &liveSource{updates: make(chan ui.Update, 1), first: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := src.onePWhenShown(ctx)
			select {
			case <-done:
				t.Fatal("decided before the first picture")
			default:
			}
			if n := runtime.GOMAXPROCS(0); n != 2 {
				t.Fatalf("GOMAXPROCS %d before the first picture, want 2", n)
			}
			src.setPicture(false, func(*inspect.Snapshot) *inspect.Snapshot { return &inspect.Snapshot{} })
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("nothing decided 10 s after the first picture")
			}
			want := 1
			if env != "" {
				want = 2
			}
			if n := runtime.GOMAXPROCS(0); n != want {
				t.Errorf("GOMAXPROCS %d after the first picture, want %d", n, want)
			}
		})
	}
}

// TestFindingsWaitForPicture: the dashboard's doctor diagnoses the live
// model's picture; before the first one it waits (and asks nothing of its
// own: the source here has no manager, which a snapshot would need), and
// gives up when its context ends. On a real manager, once the picture is
// out, it diagnoses it: the healthy demo has no finding.
func TestFindingsWaitForPicture(t *testing.T) {
	s := &liveSource{first: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if fs, err := s.Findings(ctx); err == nil || fs != nil {
		t.Errorf("Findings before the first picture = %v, %v; want the context's error", fs, err)
	}

	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		src := startLiveSource(t, sb, []string{"demo-*"}, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fs, err := src.Findings(ctx)
		if err != nil || len(fs) != 0 {
			t.Errorf("Findings on the healthy demo = %+v, %v; want none", fs, err)
		}
		if src.current() == nil {
			t.Error("Findings returned before the model had a picture")
		}
	})
}
