package live

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// TestPictureLeavesOutProbeConnections: while the gap meter runs on a
// restart from the dashboard, the pictures the live model publishes list
// the service's clients only, never the gap meter's own probe
// connections (which the old process accepts before its stop and hands
// over through the store): at most the clients' connections, in every
// picture, while the handoff's summary shows the gap meter made attempts.
func TestPictureLeavesOutProbeConnections(t *testing.T) {
	const conns = 2
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cfg := sandboxtest.InstallDemo(t, sb, 300*time.Millisecond)
		gen := sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), conns, 20*time.Millisecond)
		src := startLiveSource(t, sb, []string{"demo-*"}, 200*time.Millisecond)
		svc := demo.Handoff.Service()
		var mu sync.Mutex
		most, pictures := 0, 0
		var worst []inspect.Connection
		seen := make(chan struct{}, 1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case u := <-src.Updates():
					if u.Snapshot == nil {
						continue
					}
					for _, s := range u.Snapshot.Services {
						if s.Unit != svc {
							continue
						}
						mu.Lock()
						pictures++
						if len(s.Connections) > most {
							most, worst = len(s.Connections), s.Connections
						}
						mu.Unlock()
						if len(s.Connections) >= conns {
							select {
							case seen <- struct{}{}:
							default:
							}
						}
					}
				}
			}
		}()
		select {
		case <-seen:
		case <-ctx.Done():
			t.Fatalf("no picture showed the %d clients' connections of %s", conns, svc)
		}
		const restarts = 3
		for i := 0; i < restarts; i++ {
			if res, err := src.Act(ctx, ui.ActionRestart, svc, true); err != nil || res.Result != "done" {
				t.Fatalf("restart %d: %+v, %v", i+1, res, err)
			}
		}
		var attempts, handoffs int
		for handoffs < restarts {
			select {
			case e := <-src.Events():
				if e.Type == inspect.EventHandoff && e.Unit == svc && e.Handoff != nil {
					handoffs++
					if p := e.Handoff.Probe; p != nil {
						attempts += p.Attempts
					}
				}
			case <-ctx.Done():
				t.Fatalf("%d of %d handoffs of %s seen", handoffs, restarts, svc)
			}
		}
		if st := gen.Stats(); st.Dropped != 0 || st.Refused != 0 {
			t.Fatalf("the clients saw dropped=%d refused=%d (the demo lost them, whatever fdtop shows)", st.Dropped, st.Refused)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d pictures of %s, at most %d connections; %d gap meter attempts", pictures, svc, most, attempts)
		if attempts == 0 {
			t.Errorf("the gap meter made no attempt: nothing was put to the test")
		}
		if most > conns {
			t.Errorf("a picture listed %d connections of %s (%+v), want at most the %d clients'", most, svc, worst, conns)
		}
	})
}
