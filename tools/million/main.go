// Command million builds a host with many descriptors (tools/loadgen:
// -procs processes × -fds descriptors, loopback only, every holder a
// child of this process, killed by PID at the end) and a sandbox manager
// with -units units, and prints in one run: fdtop snapshot --json with the
// BPF holder pass and with the /proc pass (FDTOP_HOLDERS=proc), the
// readlink floor (tools/procfs-bench -mode bare), lsof, lsfd and
// ss -tuaxnp each within -limit, wall time and peak RSS of each; then the
// dashboard: time until the units are on screen, its idle CPU over
// -window and its peak RSS. Run it through tools/million.sh, as root.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/tools/loadgen"
)

func main() {
	bin := flag.String("fdtop", "", "the fdtop binary")
	bench := flag.String("bench", "", "the procfs-bench binary (the readlink floor)")
	procs := flag.Int("procs", 100, "loadgen processes")
	fds := flag.Int("fds", 1000, "descriptors per loadgen process")
	units := flag.Int("units", 100, "units of the sandbox manager (half sockets, half services)")
	runs := flag.Int("runs", 3, "runs of each fdtop snapshot and of the floor (median)")
	limit := flag.Duration("limit", 60*time.Second, "time limit of lsof, lsfd and ss")
	window := flag.Duration("window", 30*time.Second, "idle window of the dashboard")
	tools := flag.Bool("tools", true, "measure the snapshots, the floor, lsof, lsfd and ss (false: the dashboard only)")
	before := flag.String("before", "", "another fdtop binary whose dashboard is measured too, on the same load (an earlier commit's)")
	holders := flag.String("holders", "bpf,proc", "the holder passes the dashboard is measured with (bpf, proc)")
	slow := flag.Bool("slow", true, "measure lsof, lsfd and ss too (false: fdtop, its scan and the floor only)")
	dash := flag.Bool("dashboard", true, "measure the dashboard (false: the table only)")
	hold := flag.Duration("hold", 0, "after building the host, print the sandbox's address and keep the host this long (for measuring by hand), then measure")
	profile := flag.String("profile", "", "write CPU profiles of one fdtop snapshot each way (BPF, /proc, --targeted) to this directory (FDTOP_CPUPROFILE) before the table")
	flag.Parse()
	if *bin == "" || *bench == "" {
		fmt.Fprintln(os.Stderr, "million: -fdtop and -bench are required")
		os.Exit(2)
	}
	var envs []string
	for _, h := range strings.Split(*holders, ",") {
		switch h {
		case "bpf":
			envs = append(envs, "")
		case "proc":
			envs = append(envs, "FDTOP_HOLDERS=proc")
		default:
			fmt.Fprintf(os.Stderr, "million: -holders: %q is neither bpf nor proc\n", h)
			os.Exit(2)
		}
	}
	if err := run(*bin, *bench, *before, *procs, *fds, *units, *runs, *limit, *window, *tools, *slow, *dash, *hold, envs, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "million:", err)
		os.Exit(1)
	}
}

func run(bin, bench, before string, procs, fds, units, runs int, limit, window time.Duration, tools, slow, dash bool, hold time.Duration, envs []string, profile string) error {
	ctx := context.Background()
	for _, p := range []*string{&bin, &bench, &before} {
		if *p == "" {
			continue
		}
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{Fdtop: bin})
	if err != nil {
		return err
	}
	defer sb.Close()
	var sockets []string
	for i := 0; i < units/2; i++ {
		name := fmt.Sprintf("mil-%04d", i)
		if err := sb.WriteUnit(name+".socket", fmt.Sprintf("[Socket]\nListenStream=%%t/%s.sock\n", name)); err != nil {
			return err
		}
		if err := sb.WriteUnit(name+".service", "[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
			return err
		}
		sockets = append(sockets, name+".socket")
	}
	if out, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("daemon-reload: %w: %s", err, out)
	}
	if out, err := sb.Systemctl(ctx, append([]string{"start"}, sockets...)...); err != nil {
		first, _, _ := strings.Cut(out, "\n")
		return fmt.Errorf("start the %d sockets: %s", len(sockets), first)
	}
	start := time.Now()
	load, err := loadgen.Start(procs, fds, 45*time.Minute)
	if err != nil {
		return err
	}
	defer load.Stop()
	fmt.Printf("host: %d×%d descriptors (loadgen, ready in %.1fs), sandbox systemd %s with %d units, load average %s\n",
		procs, fds, time.Since(start).Seconds(), sb.Version, units, loadavg())
	if hold > 0 {
		fmt.Printf("holding the host for %v: fdtop snapshot --json --address %s\n", hold, sb.Address)
		time.Sleep(hold)
	}

	if profile != "" {
		for _, p := range []struct{ name, env, flag string }{{"bpf", "", ""}, {"proc", "FDTOP_HOLDERS=proc", ""}, {"targeted", "", "--targeted"}} {
			env := []string{"FDTOP_CPUPROFILE=" + filepath.Join(profile, "snapshot-"+p.name+".prof")}
			if p.env != "" {
				env = append(env, p.env)
			}
			argv := []string{bin, "snapshot", "--json", "--address", sb.Address}
			if p.flag != "" {
				argv = append(argv, p.flag)
			}
			w, r, _, err := timed(ctx, 0, env, argv)
			if err != nil {
				return fmt.Errorf("profile snapshot %s: %w", p.name, err)
			}
			fmt.Printf("profiled snapshot %s: %.3fs, %.1f MiB\n", p.name, w, r/1024)
		}
	}
	if tools {
		if err := measureTools(ctx, bin, bench, sb.Address, runs, limit, slow); err != nil {
			return err
		}
	}
	for _, b := range []struct{ bin, label string }{{bin, ""}, {before, ", before"}} {
		if b.bin == "" || !dash {
			continue
		}
		for _, env := range envs {
			if err := dashboard(b.bin, b.label, sb.Address, env, sockets[0], window); err != nil {
				return err
			}
		}
	}
	return nil
}

// measureTools prints the table: fdtop snapshot both ways, the readlink
// floor, the procfs scan both ways, lsof, lsfd and ss.
func measureTools(ctx context.Context, bin, bench, address string, runs int, limit time.Duration, slow bool) error {
	snap := []string{bin, "snapshot", "--json", "--address", address}
	// The source each snapshot says it used, from one run of each.
	for _, env := range [][]string{nil, {"FDTOP_HOLDERS=proc"}} {
		out, err := command(ctx, env, snap).Output()
		if err != nil {
			return fmt.Errorf("%v %s: %w", env, strings.Join(snap, " "), err)
		}
		var s struct {
			Host struct {
				HoldersSource string `json:"holders_source"`
				HoldersNote   string `json:"holders_note"`
			} `json:"host"`
		}
		if err := json.Unmarshal(out, &s); err != nil {
			return fmt.Errorf("snapshot JSON: %w", err)
		}
		fmt.Printf("snapshot %v: holders_source %q %s\n", env, s.Host.HoldersSource, s.Host.HoldersNote)
	}
	type row struct {
		name            string
		wall, rssK, cpu float64
		note            string
	}
	var rows []row
	measure := func(name string, n int, timeout time.Duration, env []string, argv ...string) {
		var walls, rss, cpus []float64
		note := ""
		for range n {
			w, r, c, err := timed(ctx, timeout, env, argv)
			if err != nil {
				note = err.Error()
				break
			}
			walls, rss, cpus = append(walls, w), append(rss, r), append(cpus, c)
		}
		if len(walls) == 0 {
			rows = append(rows, row{name: name, note: note})
			return
		}
		rows = append(rows, row{name, median(walls), median(rss), median(cpus), note})
	}
	measure("readlink-floor", runs, 0, nil, bench, "-mode", "bare")
	measure("fdtop-snapshot-bpf", runs, 0, nil, snap...)
	measure("fdtop-snapshot-proc", runs, 0, []string{"FDTOP_HOLDERS=proc"}, snap...)
	measure("procfs-scan-bpf", runs, 0, nil, bench, "-mode", "scan")
	measure("procfs-scan-proc", runs, 0, []string{"FDTOP_HOLDERS=proc"}, bench, "-mode", "scan")
	if slow {
		measure("lsof", 1, limit, nil, "lsof", "-n", "-P")
		measure("lsfd", 1, limit, nil, "lsfd")
		measure("ss-tuaxnp", 1, limit, nil, "ss", "-tuaxnp")
	}
	floor := rows[0].wall
	// cpu_s is user+system time (median), steadier than wall time on a
	// busy machine.
	fmt.Printf("%-22s %9s %8s %10s %9s\n", "tool", "wall_s", "cpu_s", "rss_MiB", "vs_floor")
	for _, r := range rows {
		if r.wall == 0 {
			fmt.Printf("%-22s %9s %8s %10s %9s  %s\n", r.name, "-", "-", "-", "-", r.note)
			continue
		}
		fmt.Printf("%-22s %9.3f %8.2f %10.1f %8.2fx\n", r.name, r.wall, r.cpu, r.rssK/1024, r.wall/floor)
	}
	return nil
}

// dashboard starts fdtop's dashboard in tmux (its own server socket) and
// reports the time until a unit is on screen, until the picture is whole
// (the header no longer says it is still filling: the host-wide pass is
// in), its CPU over window once settled, and its peak RSS.
func dashboard(bin, label, address, env, want string, window time.Duration) error {
	session := fmt.Sprintf("million-%d-%d", os.Getpid(), time.Now().UnixNano())
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", "fdtop-million"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	cmd := "exec env " + env + " " + bin + " --address " + address
	// The tmux server is started first, by a session of its own, so that
	// the time counted is fdtop's, not the server's start. The last
	// dashboard's kill-session ends the server: a session started while
	// it exits fails with "server exited unexpectedly" (seen at 100k).
	// Start again then.
	keeper := session + "-keeper"
	for try := 1; ; try++ {
		out, err := tmux("new-session", "-d", "-s", keeper, "sleep 3600")
		if err == nil {
			break
		}
		if try == 5 || !strings.Contains(out, "server exited unexpectedly") {
			return fmt.Errorf("tmux: %w: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer tmux("kill-session", "-t", keeper)
	start := time.Now()
	if out, err := tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd); err != nil {
		return fmt.Errorf("tmux: %w: %s", err, out)
	}
	defer tmux("kill-session", "-t", session)
	pidS, err := tmux("display-message", "-p", "-t", session, "#{pane_pid}")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil {
		return fmt.Errorf("pane pid %q: %w", pidS, err)
	}
	var onScreen time.Duration
	firstSays := "whole" // what the first screen with the units said of the picture
	for {
		screen, err := tmux("capture-pane", "-p", "-t", session)
		if err == nil && strings.Contains(screen, want) {
			onScreen = time.Since(start)
			for _, l := range strings.Split(screen, "\n") {
				if strings.Contains(l, "still filling") {
					firstSays = strconv.Quote(strings.TrimSpace(l))
				}
			}
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the dashboard never showed %s; screen:\n%s", want, screen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var whole time.Duration
	for {
		screen, err := tmux("capture-pane", "-p", "-t", session)
		if err == nil && strings.Contains(screen, want) && !strings.Contains(screen, "still filling") {
			whole = time.Since(start)
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the dashboard's picture was still filling after 5 minutes; screen:\n%s", screen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(15 * time.Second) // the settling after the first host-wide pass
	t0, err := ticks(pid)
	if err != nil {
		return err
	}
	time.Sleep(window)
	t1, err := ticks(pid)
	if err != nil {
		return err
	}
	hwm := status(pid, "VmHWM:")
	cpu := float64(t1-t0) / 100
	name := "bpf"
	if env != "" {
		name = "proc"
	}
	fmt.Printf("dashboard (%s%s): units on screen after %.2fs (its header: %s), whole (host-wide pass in) after %.2fs; idle %.2fs cpu over %v (%.2f%% of a core); peak RSS %s\n",
		name, label, onScreen.Seconds(), firstSays, whole.Seconds(), cpu, window, 100*cpu/window.Seconds(), hwm)
	return nil
}

func command(ctx context.Context, env, argv []string) *exec.Cmd {
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(os.Environ(), env...)
	return c
}

// timed runs argv under /usr/bin/time and returns its wall seconds and
// peak RSS in KiB; past timeout (0: none) it is killed and reported.
func timed(ctx context.Context, timeout time.Duration, env, argv []string) (wall, rss, cpu float64, _ error) {
	f, err := os.CreateTemp("", "million-time-")
	if err != nil {
		return 0, 0, 0, err
	}
	f.Close()
	defer os.Remove(f.Name())
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c := command(ctx, env, append([]string{"/usr/bin/time", "-f", "%e %M %U %S", "-o", f.Name()}, argv...))
	c.Stdout, c.Stderr = nil, nil
	// Past the limit the whole group goes: /usr/bin/time and the tool
	// it runs (killing time alone would leave the tool running).
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	err = c.Run()
	if ctx.Err() != nil {
		return 0, 0, 0, fmt.Errorf("did not finish within %v", timeout)
	}
	b, rerr := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var user, sys float64
	if _, serr := fmt.Sscan(lines[len(lines)-1], &wall, &rss, &user, &sys); rerr != nil || serr != nil {
		return 0, 0, 0, errors.Join(err, rerr, serr)
	}
	return wall, rss, user + sys, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// ticks is utime+stime of pid in clock ticks.
func ticks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + s, errors.Join(err1, err2)
}

// status returns one line's value of /proc/PID/status.
func status(pid int, key string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
