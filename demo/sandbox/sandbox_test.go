package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestSandboxLifecycle starts a manager of each version, checks that it is
// isolated (cgroup subtree, clean environment, private runtime dir) and that
// Close leaves no process, cgroup or directory behind.
func TestSandboxLifecycle(t *testing.T) {
	t.Setenv("FDTOP_CALLER_CANARY", "must-not-leak")
	for _, v := range sandboxtest.Versions() {
		t.Run("systemd"+v.Name, func(t *testing.T) {
			sandboxtest.Require(t)
			if v.Systemd == "" && v.Name == "254" {
				sandboxtest.Unavailable(t, "systemd 254 not in the cache: run demo/scripts/fetch-systemd-254.sh")
			}
			opts := sandbox.OptionsFor(sandboxtest.Fdtop(t), v.Systemd)
			sb, err := sandbox.Start(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					sb.Close()
				}
			}()
			if !strings.HasPrefix(sb.Version, v.Name) {
				t.Errorf("Version = %q, want %s.x", sb.Version, v.Name)
			}
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", sb.PID))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(env, []byte("FDTOP_CALLER_CANARY")) {
				t.Error("the caller's environment leaked into the manager")
			}
			if !bytes.Contains(env, []byte("XDG_RUNTIME_DIR="+sb.RuntimeDir)) {
				t.Error("manager has no private XDG_RUNTIME_DIR")
			}
			cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sb.PID))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
				if strings.Contains(line, "name=systemd:") || strings.HasPrefix(line, "0::") {
					if !strings.Contains(line, "/"+sb.Tag+"/") {
						t.Errorf("manager cgroup line %q is not under the sandbox's subtree %s", line, sb.Tag)
					}
				}
			}
			if _, err := sb.Systemctl(context.Background(), "show", "--property=Version"); err != nil {
				t.Error(err)
			}
			// A unit round trip: write, reload, start, and see its process.
			if err := sb.WriteUnit("sleeper.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.Systemctl(context.Background(), "daemon-reload"); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.Systemctl(context.Background(), "start", "sleeper.service"); err != nil {
				t.Fatal(err)
			}
			pids := sb.PIDs()
			if len(pids) < 2 {
				t.Fatalf("PIDs() = %v, want the manager and the sleeper", pids)
			}
			closed = true
			if err := sb.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for _, pid := range pids {
				if sandbox.Alive(pid) {
					t.Errorf("pid %d survived Close", pid)
				}
			}
			if _, err := os.Stat(sb.Dir); !os.IsNotExist(err) {
				t.Errorf("temp dir %s survived Close (%v)", sb.Dir, err)
			}
			matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + sb.Tag)
			more, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + sb.Tag)
			if len(matches)+len(more) > 0 {
				t.Errorf("cgroups survived Close: %v %v", matches, more)
			}
		})
	}
}

// TestParallelSandboxes runs several managers at once: each has its own
// app.slice inside its own subtree.
func TestParallelSandboxes(t *testing.T) {
	sandboxtest.Require(t)
	const n = 3
	var wg sync.WaitGroup
	sbs := make([]*sandbox.Sandbox, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sbs[i], errs[i] = sandbox.Start(context.Background(), sandbox.OptionsFor(sandboxtest.Fdtop(t), ""))
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("sandbox %d: %v", i, errs[i])
		}
		defer sbs[i].Close()
	}
	for i, sb := range sbs {
		if err := sb.WriteUnit("sleeper.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(context.Background(), "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(context.Background(), "start", "sleeper.service"); err != nil {
			t.Fatalf("sandbox %d: %v", i, err)
		}
		out, err := sb.Systemctl(context.Background(), "show", "-P", "ControlGroup", "sleeper.service")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "/"+sb.Tag+"/app.slice/sleeper.service") {
			t.Errorf("sandbox %d: sleeper's cgroup %q is not in its own subtree", i, strings.TrimSpace(out))
		}
	}
}

// TestStartErrors covers clear errors for bad options.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		opts sandbox.Options
		want string
	}{
		{"no fdtop", sandbox.Options{}, "Fdtop"},
		{"missing systemd", sandbox.Options{Fdtop: "/bin/true", Systemd: "/nonexistent/systemd"}, "systemd binary"},
		{"systemd is a directory", sandbox.Options{Fdtop: "/bin/true", Systemd: os.TempDir()}, "is not an executable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Geteuid() != 0 && tt.name != "no fdtop" {
				t.Skip("needs root to get past the root check")
			}
			_, err := sandbox.Start(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestStartManagerDies: a manager that exits at startup (a missing
// library, say) fails Start with what it printed, not just its exit code.
func TestStartManagerDies(t *testing.T) {
	sandboxtest.Require(t)
	fake := filepath.Join(t.TempDir(), "systemd")
	script := "#!/bin/sh\necho 'error while loading shared libraries: libsystemd-shared-254.so' >&2\nexit 127\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Fdtop: sandboxtest.Fdtop(t), Systemd: fake})
	if err == nil {
		sb.Close()
		t.Fatal("Start succeeded with a manager that exits at once")
	}
	for _, want := range []string{"manager exited", "exit status 127", "libsystemd-shared-254.so"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error %q does not say %q", err, want)
		}
	}
}
