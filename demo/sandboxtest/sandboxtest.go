// Package sandboxtest runs integration tests against real private systemd
// managers: it builds the fdtop binary once per test binary, starts a
// sandbox per systemd version (252 from the distribution, 254 from the
// cache fetch-systemd-254.sh fills) and tears everything down afterwards.
//
// Under CI=true a missing prerequisite (not root, no systemd, no 254 in the
// cache) fails the test with a clear message; elsewhere it skips.
package sandboxtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/fdtop/fdtop/demo/sandbox"
)

// Version is one systemd to test against.
type Version struct {
	// Name is the subtest name: "252" or "254".
	Name string
	// Systemd is the binary; "" means the distribution's.
	Systemd string
}

// Versions returns the systemd versions every integration test runs against.
func Versions() []Version {
	return []Version{
		{Name: "252", Systemd: ""},
		{Name: "254", Systemd: sandbox.Cached254()},
	}
}

// InCI reports whether integration tests must not skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable fails the test under CI and skips it elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("integration prerequisite missing (CI=true, so this fails instead of skipping): %s", msg)
	}
	t.Skipf("integration prerequisite missing: %s", msg)
}

// Main is TestMain for packages with integration tests: it closes every
// sandbox on SIGINT/SIGTERM and removes the built binary at the end.
//
//	func TestMain(m *testing.M) { sandboxtest.Main(m) }
//
// Started as InstallHostile's service, the test binary is that service
// instead.
func Main(m *testing.M) {
	if os.Getenv(hostileEnv) != "" {
		os.Exit(hostileService())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		atExit()
		fmt.Fprintf(os.Stderr, "sandboxtest: %v: sandboxes closed\n", s)
		os.Exit(130)
	}()
	code := m.Run()
	atExit()
	os.Exit(code)
}

var (
	exitMu    sync.Mutex
	exitHooks []func()
)

// AtExit registers fn to run when Main ends or is interrupted, before the
// sandboxes are closed and the built binary removed (demo/systemtest closes
// its containers this way).
func AtExit(fn func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitHooks = append(exitHooks, fn)
}

func atExit() {
	exitMu.Lock()
	hooks := exitHooks
	exitHooks = nil
	exitMu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	sandbox.CloseAll()
	cleanupBuild()
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func cleanupBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Fdtop returns the path of an fdtop binary built from this checkout, built
// once per test binary, static (CGO_ENABLED=0).
func Fdtop(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// go test puts its own GOROOT/bin first on the test's PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("find the go command to build fdtop: %w", err)
			return
		}
		buildDir, err = os.MkdirTemp("", "fdtop-bin-")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(buildDir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, "fdtop")
		cmd := exec.Command(goBin, "build", "-o", buildBin, "github.com/fdtop/fdtop/cmd/fdtop")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as a release is (and as --push wants)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build fdtop: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("sandboxtest: %v", buildErr)
	}
	return buildBin
}

// Require checks what every sandbox needs: root and the distribution's systemd.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "sandbox tests need root (mount namespace, cgroups)")
	}
	if _, err := os.Stat(sandbox.DefaultSystemd); err != nil {
		Unavailable(t, "%s not found: apt-get install systemd", sandbox.DefaultSystemd)
	}
}

// Start starts a sandbox on systemd version v and closes it when the test
// ends, failing the test if the teardown leaves anything behind.
func Start(t testing.TB, v Version) *sandbox.Sandbox {
	t.Helper()
	Require(t)
	if v.Name == "254" && v.Systemd == "" {
		Unavailable(t, "systemd 254 not in the cache: run demo/scripts/fetch-systemd-254.sh")
	}
	opts := sandbox.OptionsFor(Fdtop(t), v.Systemd)
	opts.Log = &logWriter{t: t}
	sb, err := sandbox.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start sandbox (systemd %s): %v", v.Name, err)
	}
	t.Cleanup(func() {
		pids := sb.PIDs()
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox teardown: %v", err)
		}
		for _, pid := range pids {
			if sandbox.Alive(pid) {
				t.Errorf("sandbox teardown left pid %d running", pid)
			}
		}
	})
	return sb
}

// Each runs fn as a subtest on a fresh sandbox of every systemd version.
func Each(t *testing.T, fn func(t *testing.T, sb *sandbox.Sandbox)) {
	t.Helper()
	for _, v := range Versions() {
		t.Run("systemd"+v.Name, func(t *testing.T) {
			sb := Start(t, v)
			fn(t, sb)
		})
	}
}

// logWriter sends the manager's log to the test log, and nowhere once the
// test has finished (the manager may still print while it stops).
type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if os.Getenv("FDTOP_SANDBOX_LOG") != "" && !w.done {
		w.t.Logf("manager: %s", p)
	}
	return len(p), nil
}
