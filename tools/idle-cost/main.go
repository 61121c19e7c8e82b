// Command idle-cost measures what fdtop costs while nothing happens: the
// CPU of fdtop and of the manager it watches (utime+stime from
// /proc/PID/stat over a window), the D-Bus calls fdtop made in that window
// by method (dbusclient counts them; fdtop writes them to the file
// FDTOP_DEBUG_CALLS names), and the messages the manager sends (strace -c
// on sendmsg, in a second window of its own so the tracing does not weigh
// on the CPU figures). Run it through tools/idle-cost.sh, as root.
//
// -units 0 measures `fdtop demo` as a person runs it (its dashboard in
// tmux; the figure includes the demo's traffic generators, which run in
// the same process), then the generators alone (`fdtop demo
// --dashboard=false`) and a dashboard of its own on their manager. -units
// N starts a sandbox manager with N units (half sockets listening on unix
// paths, half their services), holds -procs×-fds descriptors with
// tools/loadgen, and measures the dashboard (in tmux) and `fdtop watch` on
// it (-modes picks one).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/tools/loadgen"
)

func main() {
	bin := flag.String("fdtop", "", "the fdtop binary to measure")
	units := flag.Int("units", 0, "units of the sandbox manager (0: measure fdtop demo)")
	procs := flag.Int("procs", 1000, "loadgen processes (with -units)")
	fds := flag.Int("fds", 100, "descriptors per loadgen process (with -units)")
	window := flag.Duration("window", 30*time.Second, "each measuring window")
	settle := flag.Duration("settle", 10*time.Second, "wait after start before measuring")
	modes := flag.String("modes", "dashboard,watch", "what to measure on the sandbox (with -units): dashboard, watch, exporter (comma-separated)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "idle-cost: -fdtop is required")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*bin)
	if err == nil {
		*bin = abs
	}
	if *units == 0 {
		err = measureDemo(*bin, *window, *settle)
	} else {
		err = measureSandbox(*bin, *units, *procs, *fds, *window, *settle, strings.Split(*modes, ","))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle-cost:", err)
		os.Exit(1)
	}
}

// ticks is utime+stime of pid (all its threads) in clock ticks (USER_HZ, 100 a second).
func ticks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + st, nil
}

// cpu measures the CPU seconds each pid uses over window.
func cpu(window time.Duration, pids ...int) ([]float64, error) {
	before := make([]int64, len(pids))
	for i, p := range pids {
		t, err := ticks(p)
		if err != nil {
			return nil, err
		}
		before[i] = t
	}
	time.Sleep(window)
	out := make([]float64, len(pids))
	for i, p := range pids {
		t, err := ticks(p)
		if err != nil {
			return nil, err
		}
		out[i] = float64(t-before[i]) / 100
	}
	return out, nil
}

var straceCalls = regexp.MustCompile(`^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?sendmsg\s*$`)

// sendmsgs counts the sendmsg calls of pid (and its threads) over window.
func sendmsgs(pid int, window time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	cmd := exec.CommandContext(ctx, "strace", "-c", "-f", "-e", "trace=sendmsg", "-p", strconv.Itoa(pid))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, _ := cmd.CombinedOutput() // ended by the interrupt
	for _, line := range strings.Split(string(out), "\n") {
		if m := straceCalls.FindStringSubmatch(line); m != nil {
			return strconv.Atoi(m[1])
		}
	}
	rest := ""
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "strace: Process ") {
			rest += line
		}
	}
	if strings.Contains(rest, "total") || len(strings.TrimSpace(rest)) == 0 {
		return 0, nil // no sendmsg at all
	}
	return 0, fmt.Errorf("strace: unexpected output: %s", out)
}

// callsFile is where the fdtop being measured keeps its D-Bus read calls
// by method (FDTOP_DEBUG_CALLS), replaced every second while they change.
type callsFile string

func (f callsFile) read() (map[string]int64, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // an fdtop that does not count them (an older REF)
	}
	if err != nil {
		return nil, fmt.Errorf("read the D-Bus call counts: %w", err)
	}
	var n map[string]int64
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("decode the D-Bus call counts %s: %w", f, err)
	}
	return n, nil
}

// report measures fdtop and the manager and prints one line, then the
// D-Bus calls fdtop made in the same window, by method, per minute.
func report(name string, fdtop, manager int, calls callsFile, window time.Duration) error {
	before, err := calls.read()
	if err != nil {
		return err
	}
	secs, err := cpu(window, fdtop, manager)
	if err != nil {
		return err
	}
	time.Sleep(1500 * time.Millisecond) // the counts file is written every second
	after, err := calls.read()
	if err != nil {
		return err
	}
	n, err := sendmsgs(manager, window)
	if err != nil {
		return err
	}
	w := window.Seconds()
	fmt.Printf("%-28s fdtop %6.2fs cpu (%5.2f%% of a core)  manager %6.2fs cpu (%5.2f%%)  manager sendmsg %5.0f/min  [window %v]\n",
		name, secs[0], 100*secs[0]/w, secs[1], 100*secs[1]/w, float64(n)*60/w, window)
	printCalls(before, after, window)
	return nil
}

// printCalls prints the calls made between two counts, per minute of window.
func printCalls(before, after map[string]int64, window time.Duration) {
	if after == nil {
		fmt.Println("    D-Bus calls by fdtop: unknown (this fdtop does not count them)")
		return
	}
	var names []string
	var total int64
	for m, n := range after {
		if n > before[m] {
			names = append(names, m)
			total += n - before[m]
		}
	}
	sort.Slice(names, func(i, j int) bool { return after[names[i]]-before[names[i]] > after[names[j]]-before[names[j]] })
	perMin := func(n int64) float64 { return float64(n) * 60 / window.Seconds() }
	fmt.Printf("    D-Bus calls by fdtop: %.0f/min", perMin(total))
	for _, m := range names {
		fmt.Printf("  %s %.0f", m, perMin(after[m]-before[m]))
	}
	fmt.Println()
}

// quiet waits settle, then until fdtop (pid) has made no D-Bus call (and,
// with cpuToo, used at most 7 ticks of CPU) for quietFor: its start-up and
// the first doctor run are not idle. quietFor is longer than the
// dashboard's doctor tick (10 s), so the doctor's first run, due at the
// first tick after the first picture, cannot start after it. It waits
// quietMax at most and says how long it waited.
func quiet(pid int, calls callsFile, settle time.Duration, cpuToo bool) error {
	const quietFor, quietMax = 12 * time.Second, 2 * time.Minute
	time.Sleep(settle)
	start := time.Now()
	for {
		c0, err := calls.read()
		if err != nil {
			return err
		}
		t0, err := ticks(pid)
		if err != nil {
			return err
		}
		time.Sleep(quietFor)
		c1, err := calls.read()
		if err != nil {
			return err
		}
		t1, err := ticks(pid)
		if err != nil {
			return err
		}
		if maps.Equal(c0, c1) && (!cpuToo || t1-t0 <= 7) {
			fmt.Printf("    (settled %v after start-up + %v)\n", settle, time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(start) > quietMax {
			fmt.Printf("    (never quiet for %v within %v: measuring anyway)\n", quietFor, quietMax)
			return nil
		}
	}
}

// tmux runs tmux with args.
func tmux(args ...string) (string, error) {
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// inTmux starts cmd in a detached tmux session and waits until its screen
// shows want; it returns the pane's pid and a stop function.
func inTmux(session, cmd, want string) (int, func(), error) {
	if _, err := tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd); err != nil {
		return 0, nil, err
	}
	stop := func() { _, _ = tmux("kill-session", "-t", session) }
	pidS, err := tmux("display-message", "-p", "-t", session, "#{pane_pid}")
	if err != nil {
		stop()
		return 0, nil, err
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil {
		stop()
		return 0, nil, fmt.Errorf("pane pid %q: %w", pidS, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		screen, err := tmux("capture-pane", "-p", "-t", session)
		if err == nil && strings.Contains(screen, want) {
			return pid, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return 0, nil, fmt.Errorf("%q never showed %q; screen:\n%s", cmd, want, screen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// descendant finds a process under pid whose comm is comm.
func descendant(pid int, comm string) (int, error) {
	kids := func(p int) []int {
		var out []int
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, t.Name()))
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
		}
		return out
	}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if p != pid && strings.TrimSpace(string(b)) == comm {
			return p, nil
		}
		queue = append(queue, kids(p)...)
	}
	return 0, fmt.Errorf("no %s under pid %d", comm, pid)
}

// measureDemo measures `fdtop demo` as a person runs it (its dashboard
// in tmux: fdtop's figure includes the demo's traffic generators, which
// run in the same process), then the dashboard alone: `fdtop demo
// --dashboard=false` runs the sandbox and the generators, and a dashboard
// started on its manager (`fdtop --address … demo-* demo-plain.service`)
// is measured by itself.
func measureDemo(bin string, window, settle time.Duration) error {
	dir, err := os.MkdirTemp("", "idlecost-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	calls := callsFile(filepath.Join(dir, "calls.json"))
	session := fmt.Sprintf("idlecost-demo-%d", os.Getpid())
	pid, stop, err := inTmux(session, "env FDTOP_DEBUG_CALLS="+string(calls)+" "+bin+" demo", "demo-plain")
	if err != nil {
		return err
	}
	mgr, err := descendant(pid, "systemd")
	if err == nil {
		if err = quiet(pid, calls, settle, false); err == nil {
			err = report("demo (dashboard+traffic)", pid, mgr, calls, window)
		}
	}
	stop()
	if err != nil {
		return err
	}

	// The generators alone, and a dashboard of its own on their manager.
	demoCmd := exec.Command(bin, "demo", "--dashboard=false")
	out, err := demoCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := demoCmd.Start(); err != nil {
		return err
	}
	defer func() { _ = demoCmd.Process.Signal(os.Interrupt); _ = demoCmd.Wait() }()
	address := ""
	sc := bufio.NewScanner(out)
	for address == "" && sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if a, ok := strings.CutPrefix(f, "DBUS_SESSION_BUS_ADDRESS="); ok {
				address = a
			}
		}
	}
	if address == "" {
		return errors.New("fdtop demo --dashboard=false never printed its manager's address")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	mgr, err = descendant(demoCmd.Process.Pid, "systemd")
	if err != nil {
		return err
	}
	calls = callsFile(filepath.Join(dir, "calls-dashboard.json"))
	session += "-d"
	pid, stop, err = inTmux(session, "env FDTOP_DEBUG_CALLS="+string(calls)+" "+bin+" --address "+address+" demo-* demo-plain.service", "demo-plain")
	if err != nil {
		return err
	}
	defer stop()
	if err := quiet(pid, calls, settle, true); err != nil {
		return err
	}
	gen, err := cpu(window, demoCmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("%-28s %6.2fs cpu (%5.2f%% of a core)  [window %v]\n", "demo traffic, no dashboard", gen[0], 100*gen[0]/window.Seconds(), window)
	return report("demo: dashboard alone", pid, mgr, calls, window)
}

func measureSandbox(bin string, units, procs, fds int, window, settle time.Duration, modes []string) error {
	ctx := context.Background()
	sb, err := sandbox.Start(ctx, sandbox.Options{Fdtop: bin})
	if err != nil {
		return err
	}
	defer sb.Close()
	for i := 0; i < units/2; i++ {
		name := fmt.Sprintf("idle-%04d", i)
		if err := sb.WriteUnit(name+".socket", fmt.Sprintf("[Socket]\nListenStream=%%t/idle-%04d.sock\n", i)); err != nil {
			return err
		}
		if err := sb.WriteUnit(name+".service", "[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
			return err
		}
	}
	if out, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("daemon-reload: %w: %s", err, out)
	}
	sockets := make([]string, 0, units/2)
	for i := 0; i < units/2; i++ {
		sockets = append(sockets, fmt.Sprintf("idle-%04d.socket", i))
	}
	if out, err := sb.Systemctl(ctx, append([]string{"start"}, sockets...)...); err != nil {
		first, _, _ := strings.Cut(out, "\n")
		return fmt.Errorf("start the %d sockets: %s", len(sockets), first)
	}
	if out, err := sb.Systemctl(ctx, "list-units", "--no-legend", "idle-*.socket"); err != nil {
		return fmt.Errorf("list the sockets: %w", err)
	} else if n := countLines(out); n != units/2 {
		return fmt.Errorf("%d of %d sockets loaded", n, units/2)
	}
	load, err := loadgen.Start(procs, fds, 30*time.Minute)
	if err != nil {
		return err
	}
	defer load.Stop()
	fmt.Printf("sandbox: systemd %s, %d units, loadgen %d×%d descriptors\n", sb.Version, units, procs, fds)
	time.Sleep(settle) // the manager settles after the start
	alone, err := cpu(window, sb.PID)
	if err != nil {
		return err
	}
	fmt.Printf("%-28s manager %6.2fs cpu (%5.2f%%)  [window %v]\n", "no fdtop", alone[0], 100*alone[0]/window.Seconds(), window)

	if slices.Contains(modes, "dashboard") {
		calls := callsFile(filepath.Join(sb.Dir, "idle-cost-calls.json"))
		session := fmt.Sprintf("idlecost-%d", os.Getpid())
		env := "env FDTOP_DEBUG_CALLS=" + string(calls)
		if p := os.Getenv("FDTOP_CPUPROFILE"); p != "" { // a CPU profile of the idle dashboard
			env += " FDTOP_CPUPROFILE=" + p + " FDTOP_CPUPROFILE_AFTER=" + os.Getenv("FDTOP_CPUPROFILE_AFTER")
		}
		pid, stop, err := inTmux(session, env+" "+bin+" --address "+sb.Address, "idle-0000")
		if err != nil {
			return err
		}
		if err = quiet(pid, calls, settle, true); err == nil {
			err = report(fmt.Sprintf("dashboard, %d units", units), pid, sb.PID, calls, window)
		}
		stop()
		if err != nil {
			return err
		}
	}
	if slices.Contains(modes, "exporter") {
		if err := measureExporter(bin, sb, units, window, settle); err != nil {
			return err
		}
	}
	if !slices.Contains(modes, "watch") {
		return nil
	}

	calls := callsFile(filepath.Join(sb.Dir, "idle-cost-calls-watch.json"))
	w := exec.Command(bin, "watch", "--address", sb.Address)
	w.Env = append(os.Environ(), "FDTOP_DEBUG_CALLS="+string(calls))
	w.Stdout, w.Stderr = nil, nil
	if err := w.Start(); err != nil {
		return err
	}
	defer func() { _ = w.Process.Signal(os.Interrupt); _ = w.Wait() }()
	if err := quiet(w.Process.Pid, calls, settle, true); err != nil {
		return err
	}
	return report(fmt.Sprintf("watch, %d units", units), w.Process.Pid, sb.PID, calls, window)
}

// measureExporter measures `fdtop exporter` on the sandbox: idle, then
// scrapes of /metrics one after another (wall time of each, and fdtop's
// CPU per scrape).
func measureExporter(bin string, sb *sandbox.Sandbox, units int, window, settle time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	calls := callsFile(filepath.Join(sb.Dir, "idle-cost-calls-exporter.json"))
	cmd := exec.Command(bin, "exporter", "--address", sb.Address, "--listen", addr)
	cmd.Env = append(os.Environ(), "FDTOP_DEBUG_CALLS="+string(calls))
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	url := "http://" + addr + "/metrics"
	scrape := func() (string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		body, err := scrape()
		if err == nil && strings.Contains(body, "\nfdtop_up 1\n") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fdtop exporter on %s: no fdtop_up 1 in 2 minutes", addr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := quiet(cmd.Process.Pid, calls, settle, true); err != nil {
		return err
	}
	if err := report(fmt.Sprintf("exporter, %d units", units), cmd.Process.Pid, sb.PID, calls, window); err != nil {
		return err
	}
	const n = 20
	var walls []time.Duration
	t0, err := ticks(cmd.Process.Pid)
	if err != nil {
		return err
	}
	size := 0
	for i := 0; i < n; i++ {
		start := time.Now()
		body, err := scrape()
		if err != nil {
			return err
		}
		walls = append(walls, time.Since(start))
		size = len(body)
	}
	t1, err := ticks(cmd.Process.Pid)
	if err != nil {
		return err
	}
	slices.Sort(walls)
	fmt.Printf("%-28s %d scrapes of %d bytes: wall median %v, max %v; fdtop cpu %.1f ms a scrape\n", "exporter scrape", n, size,
		walls[n/2].Round(time.Millisecond), walls[n-1].Round(time.Millisecond), float64(t1-t0)*10/n)
	return nil
}

func countLines(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n
}
