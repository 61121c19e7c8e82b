package systemtest

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The dashboard's cost on the container's system manager, as root:
//
//	demo/scripts/system-dashboard-cost.sh
//
// BenchmarkDashboardStartup: from starting fdtop in a terminal to the first
// screen listing journald's socket. BenchmarkDashboardIdle: the CPU the
// idle dashboard and PID 1 use over 20 s, against PID 1 alone.

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ, 100 a second).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k, nil
}

// cpuPercent is the share of one core pid used over window.
func cpuPercent(tb testing.TB, pid int, window time.Duration) float64 {
	tb.Helper()
	t0, err := cpuTicks(pid)
	if err != nil {
		tb.Fatal(err)
	}
	time.Sleep(window) // a measurement window, not a wait for a condition
	t1, err := cpuTicks(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return float64(t1-t0) / 100 / window.Seconds() * 100
}

// dashboardPID finds the fdtop process under a tmux pane (nsenter → fdtop).
func (term *terminal) dashboardPID(tb testing.TB) int {
	tb.Helper()
	out, err := term.s.command("display-message", "-p", "-t", term.name, "#{pane_pid}").Output()
	if err != nil {
		tb.Fatal(err)
	}
	pane, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	for _, p := range descendants(pane) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(b)) == "fdtop" {
			return p
		}
	}
	tb.Fatalf("no fdtop process under tmux pane pid %d", pane)
	return 0
}

func BenchmarkDashboardStartup(b *testing.B) {
	c := Shared(b)
	demoUnits(b, c)
	tm := newTmux(b)
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		term := tm.start(b, c.Argv(Root, "env", "TERM=tmux-256color", FdtopPath))
		term.waitFor(b, "the socket list", func(s string) bool {
			return strings.Contains(s, "systemd-journald.socket") && strings.Contains(s, "dbus.socket")
		})
		took = append(took, time.Since(start))
		term.quit(b)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "ms-to-first-screen(median)")
	b.Logf("systemd %s; time to first screen over %d runs: %v", c.Version, len(took), took)
}

func BenchmarkDashboardIdle(b *testing.B) {
	c := Shared(b)
	demoUnits(b, c)
	tm := newTmux(b)
	const window = 20 * time.Second
	for i := 0; i < b.N; i++ {
		pid1Alone := cpuPercent(b, c.Leader, window)
		term := tm.start(b, c.Argv(Root, "env", "TERM=tmux-256color", FdtopPath))
		term.waitFor(b, "the socket list", func(s string) bool { return strings.Contains(s, "systemd-journald.socket") })
		pid := term.dashboardPID(b)
		t0, _ := cpuTicks(c.Leader)
		fd := cpuPercent(b, pid, window)
		t1, _ := cpuTicks(c.Leader)
		pid1With := float64(t1-t0) / 100 / window.Seconds() * 100
		term.quit(b)
		b.ReportMetric(fd, "%cpu-fdtop")
		b.ReportMetric(pid1With, "%cpu-pid1-with")
		b.ReportMetric(pid1Alone, "%cpu-pid1-alone")
		b.Logf("over %v idle: fdtop %.2f%% of a core; PID 1 %.2f%% with the dashboard, %.2f%% without", window, fd, pid1With, pid1Alone)
	}
}
