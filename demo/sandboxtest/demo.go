package sandboxtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/traffic"
)

// InstallDemo installs and starts the four demo unit sets in sb, with the
// given simulated start-up delay, and returns their configuration.
func InstallDemo(t testing.TB, sb *sandbox.Sandbox, delay time.Duration) demo.Config {
	t.Helper()
	cfg, err := demo.NewConfig(Fdtop(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StartupDelay = delay
	cfg.PreserveStore = demo.KnowsStorePreserve(sb.Version)
	cfg.LogDir = sb.Dir // a service that fails to start says why in the error
	if err := demo.Install(context.Background(), sb, cfg); err != nil {
		t.Fatalf("install demo units: %v", err)
	}
	return cfg
}

// Traffic holds conns connections to addr, a line every interval on each,
// until the test ends. It returns once every connection is up and has had a
// reply.
func Traffic(t testing.TB, addr string, conns int, interval time.Duration) *traffic.Generator {
	t.Helper()
	g, err := traffic.New(traffic.Config{Addr: addr, Conns: conns, Interval: interval, MaxDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st := g.Stats(); st.Connected == conns && st.Replies >= uint64(conns) {
			return g
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("traffic to %s never got going: %+v", addr, g.Stats())
	return nil
}
