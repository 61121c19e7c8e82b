package fleet

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/fdtop/fdtop/ui"
)

// BenchmarkFleetDashboard10 measures the fleet view's start on 10 sshd
// hosts once their ControlMasters are up: every agent started (through its
// master, all at once, as the dashboard does before it takes the
// terminal), then the fleet source, until its first published picture in
// which every host is ok with its units — what the dashboard draws next.
// The hosts share two managers with the demo's units (10 sandboxes would
// measure the machine, not fdtop).
//
//	CI=true go test -run '^$' -bench FleetDashboard10 -benchtime 5x ./internal/fleet
func BenchmarkFleetDashboard10(b *testing.B) {
	f, targets := demoHosts(b, 10)
	fl := &Fleet{}
	for _, tg := range targets {
		fl.hosts = append(fl.hosts, &fleetHost{target: tg})
	}
	tr, err := newSSHTransport(f.SSH(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	fl.tr = tr
	ctx := context.Background()
	start := time.Now()
	fl.each(func(h *fleetHost) { h.ssh, h.err = tr.Open(ctx, h.target, false) })
	b.Logf("10 ControlMasters up in %s", time.Since(start))
	for _, h := range fl.hosts {
		if h.err != nil {
			b.Fatalf("%s: %v", h.target.Spec, h.err)
		}
	}
	o := AgentOptions{Args: []string{"--user", "--", "demo-*"}}
	var times, agents []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		t0 := time.Now()
		fl.each(func(h *fleetHost) { h.agent, h.err = h.ssh.StartAgent(ctx, o) })
		agents = append(agents, time.Since(t0))
		for _, h := range fl.hosts {
			if h.err != nil {
				b.Fatalf("%s: %v", h.target.Spec, h.err)
			}
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		fl.o = o
		src, wait := fl.FleetSource(sctx)
		for all := false; !all; {
			select {
			case u := <-src.Updates():
				all = true
				for _, h := range u.Hosts {
					if h.State != ui.HostOK || h.Snapshot == nil || len(h.Snapshot.Services) == 0 {
						all = false
					}
					if h.State == ui.HostFailed {
						b.Fatalf("%s failed: %s", h.Host, h.Message)
					}
				}
			case <-sctx.Done():
				b.Fatal("no picture with every host ok within a minute")
			}
		}
		times = append(times, time.Since(t0))
		cancel()
		wait()
		for _, h := range fl.hosts {
			h.agent.Close()
		}
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.Logf("every host's first picture published %v after the masters were up (median %v, worst %v); of which every agent started (hello) %v", times, times[len(times)/2], times[len(times)-1], agents)
}
