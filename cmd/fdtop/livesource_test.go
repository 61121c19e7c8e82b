package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
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
