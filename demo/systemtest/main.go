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

var shared struct {
	once sync.Once
	c    *Container
	err  error
}

// Shared returns the test binary's one container, booting it on first use;
// it stays up for every test and is closed when Main ends. A failed boot
// fails every test that asks for it, with the same error.
func Shared(t testing.TB) *Container {
	t.Helper()
	Require(t)
	fdtop := sandboxtest.Fdtop(t)
	shared.once.Do(func() {
		shared.c, shared.err = Start(context.Background(), Options{Fdtop: fdtop})
	})
	if shared.err != nil {
		t.Fatalf("boot the system container: %v", shared.err)
	}
	return shared.c
}
