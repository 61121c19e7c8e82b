package systemtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// Main is TestMain for packages that use a container. The container's
// launcher is this test binary run again (it joins the cgroups, mounts the
// overlay and becomes nspawn), so Main runs the launcher when asked to;
// otherwise it runs the tests with sandboxtest.Main, which closes every
// container when they end or are interrupted.
//
//	func TestMain(m *testing.M) { systemtest.Main(m) }
func Main(m *testing.M) {
	if spec := os.Getenv(launcherEnv); spec != "" {
		os.Exit(launch(spec, os.Stderr))
	}
	sandboxtest.AtExit(CloseAll)
	sandboxtest.Main(m)
}

// prerequisites are the host files a container test needs (globs), with
// the Debian package that has each. The container sees the host's packages.
var prerequisites = []struct{ path, pkg string }{
	{"/usr/bin/systemd-nspawn", "systemd-container"},
	{"/usr/bin/nsenter", "util-linux"},
	{"/usr/lib/systemd/systemd", "systemd"},
	{"/usr/lib/systemd/systemd-logind", "systemd"},
	{"/usr/lib/*/security/pam_systemd.so", "libpam-systemd"},
	{"/usr/bin/dbus-daemon", "dbus"},
	{"/usr/lib/polkit-1/polkitd", "polkitd"},
	{"/usr/sbin/sshd", "openssh-server"},
	{"/usr/sbin/useradd", "passwd"},
}

// Require checks what a container needs: root and the programs above.
// Under CI=true a missing one fails the test, saying what to install.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		sandboxtest.Unavailable(t, "system container tests need root (mount namespace, cgroups, nspawn)")
	}
	for _, p := range prerequisites {
		if m, _ := filepath.Glob(p.path); len(m) == 0 {
			sandboxtest.Unavailable(t, "%s not found: apt-get install %s", p.path, p.pkg)
		}
	}
}

// System is one system the tests boot: this host's own (Debian 12,
// systemd 252, on its hybrid cgroup hierarchy) or a Debian tree built by
// demo/scripts/fetch-debian-root.sh, named by an environment variable
// (.ci/test sets it), booted with cgroup v2 only.
type System struct {
	// Name names the subtests: "bookworm", "trixie", "sid".
	Name string
	// RootEnv is the environment variable holding the tree's path;
	// empty for this host's own /.
	RootEnv string
	// Unified boots it with cgroup v2 only (Options.Unified).
	Unified bool
}

// Systems are the systems the parametrized tests run on: this host's
// bookworm (252), trixie (257) and sid (262 when checked).
var Systems = []System{
	{Name: "bookworm"},
	{Name: "trixie", RootEnv: "FDTOP_DEBIAN_TRIXIE", Unified: true},
	{Name: "sid", RootEnv: "FDTOP_DEBIAN_SID", Unified: true},
}

// Bookworm is this host's own system, the one Shared boots.
var Bookworm = Systems[0]

type sharedBoot struct {
	once sync.Once
	c    *Container
	err  error
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*sharedBoot{}
)

// Shared returns the test binary's container of this host's own system,
// booting it on first use; see SharedOf.
func Shared(t testing.TB) *Container {
	t.Helper()
	return SharedOf(t, Bookworm)
}

// SharedOf returns the test binary's one container of system s, booting
// it on first use; it stays up for every test and is closed when Main
// ends. A failed boot fails every test that asks for it, with the same
// error. A tree that is not there is a missing prerequisite (under
// CI=true a failure saying how to build it).
func SharedOf(t testing.TB, s System) *Container {
	t.Helper()
	Require(t)
	opts := Options{Fdtop: sandboxtest.Fdtop(t), Unified: s.Unified}
	if s.RootEnv != "" {
		root := os.Getenv(s.RootEnv)
		if root == "" {
			sandboxtest.Unavailable(t, "$%s is not set: the %s tree (%s=$(demo/scripts/fetch-debian-root.sh %s | tail -1))", s.RootEnv, s.Name, s.RootEnv, s.Name)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err != nil {
			sandboxtest.Unavailable(t, "$%s=%s has no systemd: rebuild it with demo/scripts/fetch-debian-root.sh %s --rebuild", s.RootEnv, root, s.Name)
		}
		opts.Root = root
	}
	sharedMu.Lock()
	b := shared[s.Name]
	if b == nil {
		b = &sharedBoot{}
		shared[s.Name] = b
	}
	sharedMu.Unlock()
	b.once.Do(func() {
		b.c, b.err = Start(context.Background(), opts)
	})
	if b.err != nil {
		t.Fatalf("boot the %s system container: %v", s.Name, b.err)
	}
	return b.c
}

// ForEach runs f as a subtest named after each system, on its shared
// container.
func ForEach(t *testing.T, f func(t *testing.T, c *Container)) {
	t.Helper()
	for _, s := range Systems {
		t.Run(s.Name, func(t *testing.T) {
			f(t, SharedOf(t, s))
		})
	}
}
