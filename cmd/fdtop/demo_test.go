package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/internal/syncbuf"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// startDemoProcess runs `fdtop demo --dashboard=false` and waits until it
// reports the manager and the first traffic counters.
func startDemoProcess(t *testing.T, args ...string) (*exec.Cmd, *syncbuf.Buffer, string) {
	t.Helper()
	sandboxtest.Require(t)
	bin := sandboxtest.Fdtop(t)
	cmd := exec.Command(bin, append([]string{"demo", "--dashboard=false"}, args...)...)
	pr, pw := io.Pipe()
	out := &syncbuf.Buffer{}
	cmd.Stdout = io.MultiWriter(pw, out)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		sandbox.ReapStale()
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fdtop demo exited early:\n%s", out.String())
			}
			if strings.Contains(l, "handoff    pid") && strings.Contains(l, "connected 4/4") {
				go func() {
					for range lines {
					}
				}()
				dirs, _ := filepath.Glob(fmt.Sprintf("%s/fdtop-sandbox-%d-*", os.TempDir(), cmd.Process.Pid))
				if len(dirs) != 1 {
					t.Fatalf("sandbox dir of pid %d: %v", cmd.Process.Pid, dirs)
				}
				return cmd, out, filepath.Base(dirs[0])
			}
		case <-deadline:
			t.Fatalf("fdtop demo did not get going:\n%s", out.String())
		}
	}
}

// sandboxPIDs lists the processes in a sandbox's cgroup subtree.
func sandboxPIDs(t *testing.T, tag string) []int {
	t.Helper()
	files, _ := filepath.Glob("/sys/fs/cgroup/unified/" + tag + "/*/cgroup.procs")
	more, _ := filepath.Glob("/sys/fs/cgroup/unified/" + tag + "/*/*/cgroup.procs")
	if len(files) == 0 {
		files, _ = filepath.Glob("/sys/fs/cgroup/" + tag + "/*/cgroup.procs")
		more, _ = filepath.Glob("/sys/fs/cgroup/" + tag + "/*/*/cgroup.procs")
	}
	var pids []int
	for _, f := range append(files, more...) {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func assertGone(t *testing.T, tag string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if sandbox.Alive(pid) {
			t.Errorf("pid %d survived", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), tag)); !os.IsNotExist(err) {
		t.Errorf("temp dir %s survived (%v)", tag, err)
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/" + tag); len(m) > 0 {
		t.Errorf("cgroups survived: %v", m)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(tag)) {
		t.Errorf("a mount of %s is visible on the host", tag)
	}
}

// TestDemoCtrlC: Ctrl-C stops every process the demo started, by PID, and
// removes its temp dir and cgroups.
func TestDemoCtrlC(t *testing.T) {
	cmd, out, tag := startDemoProcess(t)
	pids := sandboxPIDs(t, tag)
	if len(pids) < 4 {
		t.Fatalf("sandbox %s has pids %v, want the manager and three services", tag, pids)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Fatalf("fdtop demo after Ctrl-C: %v (exit %d, want 130)\n%s", err, code, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("fdtop demo did not stop after Ctrl-C:\n%s", out.String())
	}
	assertGone(t, tag, pids)
}

// TestDemoKilled: when fdtop is SIGKILLed, the manager dies with it
// (parent-death signal) and the next sandbox start reaps the services left
// in the cgroup subtree and the temp dir.
func TestDemoKilled(t *testing.T) {
	cmd, _, tag := startDemoProcess(t)
	pids := sandboxPIDs(t, tag)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	sandbox.ReapStale()
	assertGone(t, tag, pids)
}
