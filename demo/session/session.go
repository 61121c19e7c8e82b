// Package session runs `fdtop demo`: a sandboxed systemd user manager with
// the demo units installed and traffic against each demo mode, and the
// live model with the traffic's counters for the dashboard's scoreboard.
// Only cmd wires it: the live model itself knows nothing of the demo.
package session

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/ui"
)

// Conns is how many connections the traffic generator holds per mode.
const Conns = 4

// Session is a running demo: the sandbox, its units and the traffic
// generators (one per mode).
type Session struct {
	Sandbox *sandbox.Sandbox
	Config  demo.Config
	Traffic map[demo.Mode]*traffic.Generator

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start starts the sandbox (with the systemd binary given, or the
// distribution's), installs the demo units in it (each service's start-up
// work simulated by delay) and starts the traffic.
func Start(ctx context.Context, systemd string, delay time.Duration) (*Session, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the fdtop binary: %w", err)
	}
	sb, err := sandbox.Start(ctx, sandbox.OptionsFor(self, systemd))
	if err != nil {
		return nil, err
	}
	cfg, err := demo.NewConfig(self)
	if err != nil {
		sb.Close()
		return nil, err
	}
	cfg.StartupDelay = delay
	cfg.PreserveStore = demo.KnowsStorePreserve(sb.Version)
	cfg.LogDir = sb.Dir // removed with the sandbox
	if err := demo.Install(ctx, sb, cfg); err != nil {
		sb.Close()
		return nil, fmt.Errorf("install demo units: %w", err)
	}
	s := &Session{Sandbox: sb, Config: cfg}
	if err := s.startTraffic(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the traffic and tears the sandbox down.
func (s *Session) Close() error {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
	return s.Sandbox.Close()
}

// startTraffic starts one generator per mode: Conns connections each,
// sending a line every 100 ms, for at most a day.
func (s *Session) startTraffic() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.Traffic = map[demo.Mode]*traffic.Generator{}
	for _, m := range demo.Modes {
		g, err := traffic.New(traffic.Config{
			Addr:        s.Config.Addr(m),
			Conns:       Conns,
			Interval:    100 * time.Millisecond,
			MaxDuration: 24 * time.Hour,
		})
		if err != nil {
			return fmt.Errorf("traffic for %s: %w", m, err)
		}
		s.Traffic[m] = g
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = g.Run(ctx)
		}()
	}
	return nil
}

// Source is the live model of `fdtop demo` with the traffic generators'
// counters (ui.DemoSource), which the dashboard reads every fast interval.
type Source struct {
	*live.Source
	traffic map[string]*traffic.Generator // service -> generator
}

// Source is src with this session's traffic counters.
func (s *Session) Source(src *live.Source) Source {
	d := Source{Source: src, traffic: map[string]*traffic.Generator{}}
	for m, g := range s.Traffic {
		d.traffic[m.Service()] = g
	}
	return d
}

// DemoCounters implements ui.DemoSource.
func (s Source) DemoCounters() map[string]ui.DemoCounters {
	out := map[string]ui.DemoCounters{}
	for svc, g := range s.traffic {
		st := g.Stats()
		out[svc] = ui.DemoCounters{
			Conns: Conns, Connected: st.Connected, Sent: st.Sent, Replies: st.Replies,
			Refused: st.Refused, Dropped: st.Dropped, CounterResets: st.CounterResets,
			LastPID: st.LastPID, MaxLatency: st.MaxLatency,
		}
	}
	return out
}
