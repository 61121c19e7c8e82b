package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/sshtest"
)

// BenchmarkFleetSnapshot10 measures a snapshot of 10 sshd hosts once
// their ControlMasters are up: each agent's start (through the master) and
// its snapshot, all hosts at once. The hosts share two managers (10
// sandboxes would measure the machine, not fdtop). FDTOP_BENCH_WATCH=1
// waits for each live model's first picture instead (what a fleet view
// shows first); FDTOP_BENCH_TARGETED=1 scans only the units' processes.
//
//	CI=true go test -run '^$' -bench FleetSnapshot10 -benchtime 5x ./internal/fleet
func BenchmarkFleetSnapshot10(b *testing.B) {
	f, targets := demoHosts(b, 10)
	ctx := context.Background()
	tr, err := newSSHTransport(f.SSH(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	hosts := make([]*fleetHost, len(targets))
	fl := &Fleet{tr: tr}
	for i, tg := range targets {
		hosts[i] = &fleetHost{target: tg}
	}
	fl.hosts = hosts
	start := time.Now()
	fl.each(func(h *fleetHost) { h.ssh, h.err = tr.Open(ctx, h.target, false) })
	b.Logf("10 ControlMasters up in %s", time.Since(start))
	o := AgentOptions{Args: []string{"--user", "--", "demo-*"}}
	full := os.Getenv("FDTOP_BENCH_TARGETED") == ""
	var mu sync.Mutex
	var agentMax, snapMax time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		fl.each(func(h *fleetHost) {
			if h.err != nil {
				return
			}
			t0 := time.Now()
			a, err := h.ssh.StartAgent(ctx, o)
			if err != nil {
				h.err = err
				return
			}
			defer a.Close()
			t1 := time.Now()
			if os.Getenv("FDTOP_BENCH_WATCH") != "" {
				// What a fleet view waits for: the live model's first picture.
				if err := a.Watch(ctx); err != nil {
					h.err = err
				} else {
					<-a.Ready()
				}
			} else if _, err := a.Snapshot(ctx, full); err != nil {
				h.err = err
			}
			mu.Lock()
			agentMax, snapMax = max(agentMax, t1.Sub(t0)), max(snapMax, time.Since(t1))
			mu.Unlock()
		})
	}
	b.StopTimer()
	b.Logf("slowest agent start %s, slowest snapshot %s (full scan %v)", agentMax, snapMax, full)
	for _, h := range hosts {
		if h.err != nil {
			b.Fatalf("%s: %v", h.target.Spec, h.err)
		}
	}
}

// BenchmarkIdleTraffic measures the agent protocol's bytes per minute from
// one host whose demo services run with clients connected but nothing
// restarts. FDTOP_IDLE_SECONDS sets the window (default 60).
//
//	CI=true go test -run '^$' -bench IdleTraffic -benchtime 1x ./internal/fleet
func BenchmarkIdleTraffic(b *testing.B) {
	secs := 60
	if v, err := strconv.Atoi(os.Getenv("FDTOP_IDLE_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	f := sshtest.New(b)
	sb := sandboxtest.Start(b, sandboxtest.Versions()[0])
	cfg := sandboxtest.InstallDemo(b, sb, 50*time.Millisecond)
	for _, m := range []demo.Mode{demo.Activated, demo.Handoff} {
		sandboxtest.Traffic(b, cfg.Addr(m), 4, 100*time.Millisecond)
	}
	h := f.AddHost(b, append(sb.Env(), "PATH="+dirOf(sandboxtest.Fdtop(b))+":/usr/bin:/bin")...)
	tg, _ := ParseTarget(h.Target)
	tr, err := newSSHTransport(f.SSH(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	sh, err := tr.Open(ctx, tg, false)
	if err != nil {
		b.Fatal(err)
	}
	a, err := sh.StartAgent(ctx, AgentOptions{Args: []string{"--user", "--", "demo-*"}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Watch(ctx); err != nil {
		b.Fatal(err)
	}
	<-a.Ready()
	go func() {
		for range a.Events() {
		}
	}()
	time.Sleep(2 * time.Second) // the first picture and its settling are not idle
	b.ResetTimer()
	from := a.received.Load()
	time.Sleep(time.Duration(secs) * time.Second)
	got := a.received.Load() - from
	perMin := float64(got) * 60 / float64(secs)
	b.ReportMetric(perMin/1024, "KB/min")
	b.Logf("idle agent traffic: %d bytes in %d s = %.1f KB/min (first picture: %d bytes)", got, secs, perMin/1024, from)
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}

// BenchmarkRolloutOverhead measures what a rollout adds to each restart:
// per host, from asking for the restart to its verdict (elapsed_ms) less
// the restart job itself (duration_ms), over three hosts whose service
// hands off; and the whole command's time per host (preflight included).
//
//	CI=true go test -run '^$' -bench RolloutOverhead -benchtime 3x ./internal/fleet
func BenchmarkRolloutOverhead(b *testing.B) {
	f := sshtest.New(b)
	var targets []string
	for _, v := range []sandboxtest.Version{sandboxtest.Versions()[0], sandboxtest.Versions()[1], sandboxtest.Versions()[0]} {
		sb := sandboxtest.Start(b, v)
		installWebB(b, sb)
		h := f.AddHost(b, append(sb.Env(), "PATH="+dirOf(sandboxtest.Fdtop(b))+":/usr/bin:/bin")...)
		targets = append(targets, h.Target)
	}
	var over, total []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		start := time.Now()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(sandboxtest.Fdtop(b), "rollout", "web.service", "--user", "--json", "--ssh", f.SSH(), "-H", strings.Join(targets, ","))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		total = append(total, time.Since(start)/time.Duration(len(targets)))
		out := stdout.String()
		if err != nil {
			b.Fatalf("rollout: %v: %s%s", err, out, stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r RolloutLine
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.Handoff == nil {
				b.Fatalf("%v: %s", err, l)
			}
			over = append(over, time.Duration(r.ElapsedMs-r.DurationMs)*time.Millisecond)
		}
	}
	b.StopTimer()
	b.Logf("per host: verdict after the restart job %v; whole command / hosts %v", over, total)
}

// installWebB installs web.socket and web.service (the demo's handoff
// mode) with clients connected.
func installWebB(b *testing.B, sb *sandbox.Sandbox) {
	cfg, err := demo.NewConfig(sandboxtest.Fdtop(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.StartupDelay = 50 * time.Millisecond
	cfg.LogDir = sb.Dir
	units := cfg.Units()
	for name, src := range map[string]string{"web.socket": demo.Handoff.Socket(), "web.service": demo.Handoff.Service()} {
		if err := sb.WriteUnit(name, units[src]); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, args := range [][]string{{"daemon-reload"}, {"start", "web.socket"}} {
		if out, err := sb.Systemctl(ctx, args...); err != nil {
			b.Fatalf("systemctl %v: %v: %s", args, err, out)
		}
	}
	sandboxtest.Traffic(b, cfg.Addr(demo.Handoff), 2, 20*time.Millisecond)
}

// demoHosts starts n sshd hosts sharing one demo manager per systemd
// version (n sandboxes would measure the machine, not fdtop) and returns
// the hosts' fleet and targets.
func demoHosts(b *testing.B, n int) (*sshtest.Fleet, []Target) {
	f := sshtest.New(b)
	var sbs []*sandbox.Sandbox
	for _, v := range sandboxtest.Versions() {
		sb := sandboxtest.Start(b, v)
		sandboxtest.InstallDemo(b, sb, 50*time.Millisecond)
		sbs = append(sbs, sb)
	}
	path := "PATH=" + dirOf(sandboxtest.Fdtop(b)) + ":/usr/bin:/bin"
	var targets []Target
	for i := 0; i < n; i++ {
		h := f.AddHost(b, append(sbs[i%len(sbs)].Env(), path)...)
		tg, _ := ParseTarget(h.Target)
		targets = append(targets, tg)
	}
	return f, targets
}
