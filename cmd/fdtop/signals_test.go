package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// exitWithin is how long fdtop may take to end after a termination signal,
// terminal restored and (the demo) sandbox torn down.
const exitWithin = time.Second

// TestSignalsEndEveryMode sends SIGTERM (20), SIGINT (20) and SIGHUP (10)
// at random delays (0-2 s, from start-up to steady state) into the real
// binary in a tmux terminal, running the dashboard, a replay and the demo
// in turn. Each must end within exitWithin with 128+signal, print no
// error, leave the terminal restored (main screen, cursor shown, mouse
// off, `stty -a` in cooked mode with echo), and the demo must leave no
// process, cgroup, mount or temp dir of its sandbox.
func TestSignalsEndEveryMode(t *testing.T) {
	tm := newTmux(t)
	bin := sandboxtest.Fdtop(t)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 100*time.Millisecond)
	rec := writeRecording(t, 20000)

	seed := time.Now().UnixNano()
	t.Logf("delays from seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	type trial struct {
		sig   syscall.Signal
		mode  string
		delay time.Duration
	}
	var trials []trial
	modes := []string{"dashboard", "replay", "demo"}
	for _, s := range []struct {
		sig syscall.Signal
		n   int
	}{{syscall.SIGTERM, 20}, {syscall.SIGINT, 20}, {syscall.SIGHUP, 10}} {
		for i := range s.n {
			trials = append(trials, trial{s.sig, modes[i%len(modes)], time.Duration(rng.Int64N(int64(2 * time.Second)))})
		}
	}

	var mu sync.Mutex
	worst := map[string]time.Duration{}
	sem := make(chan struct{}, 5) // a few at once: the demo's start-up is the slow part
	var wg sync.WaitGroup
	for i, tr := range trials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%02d-%s-%s-%dms", i, strings.ToUpper(sigName(tr.sig)), tr.mode, tr.delay.Milliseconds())
			t.Run(name, func(t *testing.T) {
				var args []string
				switch tr.mode {
				case "dashboard":
					args = []string{"--user", "--address", sb.Address, "demo-*"}
				case "replay":
					args = []string{"replay", "--speed", "4", rec}
				case "demo":
					args = []string{"demo", "--startup-delay", "100ms"}
				}
				took := signalTrial(t, tm, bin, sb.Env(), args, tr.sig, tr.delay, tr.mode == "demo")
				mu.Lock()
				worst[tr.mode] = max(worst[tr.mode], took)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	t.Logf("slowest exit after the signal: %v", worst)
}

// sigName names a signal the way kill(1) does, without SIG.
func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "term"
	case syscall.SIGINT:
		return "int"
	case syscall.SIGHUP:
		return "hup"
	}
	return strconv.Itoa(int(s))
}

// signalTrial runs fdtop with args in a shell in a new tmux session, sends
// sig delay after fdtop started, and checks how it ended. It returns how
// long fdtop took to exit after the signal.
func signalTrial(t *testing.T, tm *tmuxServer, bin string, env, args []string, sig syscall.Signal, delay time.Duration, demo bool) time.Duration {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + a + "'"
	}
	// The shell stays: tmux 3.3a sometimes drops the last lines and the
	// cursor mode of a pane that dies right after writing them.
	script := fmt.Sprintf("'%s' %s; echo EXIT=$?; stty -a; echo END; exec sleep 600", bin, strings.Join(quoted, " "))
	term := tm.start(t, "/bin/sh", env, "-c", script)
	shell := term.panePID(t)
	pid := waitChild(t, shell)
	time.Sleep(delay) // the trial's input: how far into its life fdtop is hit
	if err := syscall.Kill(pid, sig); err != nil {
		// fdtop ended before it was hit: say what it printed.
		t.Fatalf("kill %d: %v (fdtop ended before the signal); screen:\n%s", pid, err, term.capture(t))
	}
	sent := time.Now()
	for exited(pid) == false {
		if time.Since(sent) > 10*time.Second {
			t.Fatalf("fdtop (pid %d) still running 10 s after SIG%s (stuck); screen:\n%s", pid, strings.ToUpper(sigName(sig)), term.capture(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(sent)
	if took > exitWithin {
		t.Errorf("fdtop took %v to end after SIG%s, want at most %v", took, strings.ToUpper(sigName(sig)), exitWithin)
	}
	screen := term.waitFor(t, "the shell's report", func(s string) bool { return strings.Contains(s, "END") })
	if want := fmt.Sprintf("EXIT=%d", 128+int(sig)); !strings.Contains(screen, want) {
		t.Errorf("want %s; screen:\n%s", want, screen)
	}
	for _, bad := range []string{"program was killed", "interrupted", "context canceled", "fdtop:", "fdtop demo:"} {
		if strings.Contains(screen, bad) {
			t.Errorf("fdtop printed %q after the signal; screen:\n%s", bad, screen)
		}
	}
	checkTerminalRestored(t, term, screen)
	if demo {
		checkNoSandboxLeft(t, pid)
	}
	return took
}

// checkTerminalRestored checks tmux's view of the pane (main screen, cursor
// shown, no mouse tracking) and the `stty -a` printed on screen (cooked
// mode: canonical input, echo, signals, output processing).
func checkTerminalRestored(t *testing.T, term *terminal, screen string) {
	t.Helper()
	flags := term.format(t, "#{alternate_on} #{cursor_flag} #{mouse_any_flag}")
	if flags != "0 1 0" {
		t.Errorf("terminal not restored: alternate screen, cursor shown, mouse = %q, want \"0 1 0\"; screen:\n%s", flags, screen)
	}
	words := map[string]bool{}
	for _, w := range strings.Fields(strings.ReplaceAll(screen, ";", " ")) {
		words[w] = true
	}
	for _, mode := range []string{"icanon", "echo", "isig", "icrnl", "opost", "onlcr", "iexten"} {
		if !words[mode] || words["-"+mode] {
			t.Errorf("stty -a after fdtop: %s not on; screen:\n%s", mode, screen)
		}
	}
}

// checkNoSandboxLeft checks that the demo run by fdtop pid left no temp
// dir, cgroup, process or mount of its sandboxes (named
// fdtop-sandbox-PID-N).
func checkNoSandboxLeft(t *testing.T, pid int) {
	t.Helper()
	tag := fmt.Sprintf("fdtop-sandbox-%d-", pid)
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tag+"*")); len(dirs) > 0 {
		t.Errorf("temp dirs left: %v", dirs)
	}
	var cgroups []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), tag) {
			cgroups = append(cgroups, path)
			return filepath.SkipDir
		}
		if strings.Count(strings.TrimPrefix(path, "/sys/fs/cgroup"), "/") >= 4 {
			return filepath.SkipDir
		}
		return nil
	})
	if len(cgroups) > 0 {
		t.Errorf("cgroups left: %v", cgroups)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), tag) {
			continue
		}
		// A zombie is dead, waiting for its (re)parent to reap it.
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if st := processState(pid); !exited(pid) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			t.Errorf("process %d (%s, state %s) left in the sandbox's cgroup", pid, strings.TrimSpace(string(comm)), st)
		}
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), tag) {
		t.Errorf("a mount of %s* is visible on the host", tag)
	}
}

// TestSuspendResume: Ctrl-Z in the dashboard gives the terminal back to
// the shell (main screen, cooked mode) and stops fdtop; `fg` brings it
// back redrawn, its keys working without Enter. An external SIGTSTP does
// the same, and so do two Ctrl-Z at once or SIGTSTPs until it stopped:
// one fg brings it back. q then ends it with status 0.
func TestSuspendResume(t *testing.T) {
	tm := newTmux(t)
	bin := sandboxtest.Fdtop(t)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 100*time.Millisecond)
	term := tm.start(t, "/bin/bash", append(sb.Env(), "PS1=$ "), "--norc", "--noprofile", "-i")
	term.waitFor(t, "the shell's prompt", func(s string) bool { return strings.Contains(s, "$") })
	term.send(t, fmt.Sprintf("'%s' --user --address '%s' 'demo-*'", bin, sb.Address), "Enter")
	dashboard := func(s string) bool { return rowWith(s, "demo-handoff.service") != "" && strings.Contains(s, "Units") }
	term.waitFor(t, "the dashboard", dashboard)
	pid := waitChild(t, term.panePID(t))

	suspendAndResume := func(t *testing.T, how string, suspend func()) {
		suspend()
		screen := term.waitFor(t, "the shell reporting fdtop stopped", func(s string) bool {
			return strings.Contains(s, "Stopped") && processState(pid) == "T"
		})
		if flags := term.format(t, "#{alternate_on} #{cursor_flag} #{mouse_any_flag}"); flags != "0 1 0" {
			t.Errorf("%s: terminal not given back: alternate screen, cursor, mouse = %q; screen:\n%s", how, flags, screen)
		}
		term.send(t, "clear; stty -a; echo STTY-DONE", "Enter")
		screen = term.waitFor(t, "stty's report", func(s string) bool { return hasLine(s, "STTY-DONE") })
		checkTerminalRestored(t, term, screen)

		term.send(t, "fg", "Enter")
		term.waitFor(t, "the dashboard redrawn after fg", dashboard)
		// Mouse tracking comes back by a message after the repaint: wait
		// for it rather than read the flags once.
		var flags string
		term.waitFor(t, "the alternate screen and mouse tracking after fg", func(string) bool {
			flags = term.format(t, "#{alternate_on} #{mouse_any_flag}")
			return flags == "1 1" || exited(pid)
		})
		if flags != "1 1" {
			t.Errorf("%s: after fg, alternate screen and mouse = %q, want \"1 1\"", how, flags)
		}
		term.send(t, "?") // no Enter: raw mode again
		term.waitFor(t, "the help, opened by ? alone", func(s string) bool { return strings.Contains(s, "Help ·") })
		term.send(t, "?")
		term.waitFor(t, "the dashboard again", dashboard)
	}
	t.Run("ctrl-z", func(t *testing.T) {
		suspendAndResume(t, "Ctrl-Z", func() { term.send(t, "C-z") })
	})
	t.Run("sigtstp", func(t *testing.T) {
		suspendAndResume(t, "SIGTSTP", func() {
			if err := syscall.Kill(pid, syscall.SIGTSTP); err != nil {
				t.Fatal(err)
			}
		})
	})
	// What asks to suspend while a suspension runs is dropped, as SIGCONT
	// discards pending stop signals: after one fg the dashboard is back
	// (its keys work), not stopped again.
	t.Run("ctrl-z twice", func(t *testing.T) {
		suspendAndResume(t, "Ctrl-Z Ctrl-Z", func() {
			// One send-keys, one write: fdtop reads both at once.
			if out, err := term.s.command("send-keys", "-t", term.name, "C-z", "C-z").CombinedOutput(); err != nil {
				t.Fatalf("tmux send-keys: %v: %s", err, out)
			}
		})
	})
	t.Run("sigtstp until stopped", func(t *testing.T) {
		suspendAndResume(t, "SIGTSTP until stopped", func() {
			// A SIGTSTP every millisecond (the input's pace, not a wait)
			// until fdtop is stopped: some arrive while it gives the
			// terminal back, after the first was handled.
			for n := 0; processState(pid) != "T"; n++ {
				if n == 10000 {
					t.Fatalf("fdtop not stopped after %d SIGTSTPs; screen:\n%s", n, term.capture(t))
				}
				if err := syscall.Kill(pid, syscall.SIGTSTP); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	})
	term.send(t, "q")
	waitExit(t, term, pid, "q")
	term.send(t, "echo EXIT=$?", "Enter")
	term.waitFor(t, "fdtop's exit status 0", func(s string) bool { return strings.Contains(s, "EXIT=0") })
}

// TestSuspendedThenKilled: `kill %1` on a suspended fdtop (SIGTERM, then
// SIGCONT in the background) leaves it stopped, the terminal the shell's;
// `fg` ends it at once with 143 and the terminal in cooked mode.
func TestSuspendedThenKilled(t *testing.T) {
	tm := newTmux(t)
	bin := sandboxtest.Fdtop(t)
	rec := writeRecording(t, 1000)
	term := tm.start(t, "/bin/bash", []string{"PS1=$ "}, "--norc", "--noprofile", "-i")
	term.waitFor(t, "the shell's prompt", func(s string) bool { return strings.Contains(s, "$") })
	term.send(t, fmt.Sprintf("'%s' replay '%s'", bin, rec), "Enter")
	term.waitFor(t, "the replay", func(s string) bool { return strings.Contains(s, "fdtop replay ·") })
	pid := waitChild(t, term.panePID(t))
	term.send(t, "C-z")
	term.waitFor(t, "fdtop stopped", func(s string) bool { return strings.Contains(s, "Stopped") && processState(pid) == "T" })
	term.send(t, "kill %1", "Enter")
	// kill %1 sends SIGTERM and SIGCONT: fdtop runs until it stops itself
	// again. Once the shell prompts after the kill, fdtop stopped is that
	// second stop; `jobs` typed earlier could list it running.
	term.waitFor(t, "the prompt after kill %1, fdtop stopped again", func(s string) bool {
		return promptAfter(s, "$ kill %1") && processState(pid) == "T"
	})
	term.send(t, "jobs", "Enter")
	term.waitFor(t, "jobs listing fdtop stopped after kill %1", func(s string) bool {
		return strings.Count(s, "Stopped") >= 2 && processState(pid) == "T"
	})
	term.send(t, "fg", "Enter")
	waitExit(t, term, pid, "fg")
	term.send(t, "X=$?; clear; echo EXIT=$X; stty -a; echo STTY-DONE", "Enter")
	screen := term.waitFor(t, "the exit status and stty", func(s string) bool { return hasLine(s, "STTY-DONE") })
	if !strings.Contains(screen, "EXIT=143") {
		t.Errorf("want EXIT=143 after kill %%1 and fg; screen:\n%s", screen)
	}
	checkTerminalRestored(t, term, screen)
}

// hasLine reports whether the screen has a line that is text alone: the
// output of `echo text`, not the command line that typed it.
func hasLine(screen, text string) bool {
	for _, l := range strings.Split(screen, "\n") {
		if strings.TrimRight(l, " ") == text {
			return true
		}
	}
	return false
}

// promptAfter reports whether the shell prompted ("$") on a line after the
// last line that is command: the command ran.
func promptAfter(screen, command string) bool {
	lines := strings.Split(screen, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimRight(lines[i], " ") == command {
			for _, l := range lines[i+1:] {
				if strings.HasPrefix(l, "$") {
					return true
				}
			}
			return false
		}
	}
	return false
}

// waitExit waits for fdtop (pid) to end after what the test did, and fails
// with the screen when it has not 10 s later.
func waitExit(t *testing.T, term *terminal, pid int, after string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !exited(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fdtop (pid %d) still running 10 s after %s; screen:\n%s", pid, after, term.capture(t))
		}
	}
}

// writeRecording writes a recording of n events, 100 ms apart.
func writeRecording(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	enc := json.NewEncoder(f)
	for i := range n {
		ev := inspect.Event{Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Unit: "demo-handoff.service",
			Type: inspect.EventState, Message: fmt.Sprintf("event %d", i), ActiveState: "active", SubState: "running"}
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// panePID returns the PID of the program the session started.
func (term *terminal) panePID(t *testing.T) int {
	t.Helper()
	pid, err := strconv.Atoi(term.format(t, "#{pane_pid}"))
	if err != nil {
		t.Fatalf("pane pid: %v", err)
	}
	return pid
}

// format returns a tmux format expanded for the session's pane.
func (term *terminal) format(t *testing.T, f string) string {
	t.Helper()
	out, err := term.s.command("display-message", "-p", "-t", term.name, f).Output()
	if err != nil {
		t.Fatalf("tmux display-message %q: %v", f, err)
	}
	return strings.TrimSpace(string(out))
}

// waitChild waits for the first child of pid and returns it.
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			if c, err := strconv.Atoi(f[0]); err == nil {
				return c
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no child of pid %d", pid)
	return 0
}

// processState returns the state letter of pid ("" if gone).
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// exited reports whether pid has ended (gone, or a zombie not yet reaped).
func exited(pid int) bool {
	st := processState(pid)
	return st == "" || st == "Z" || st == "X"
}
