package main

import (
	"context"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
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
