package sandbox

import (
	"os"
	"path/filepath"
	"strings"
)

// OptionsFor returns Options for a systemd binary. For a binary inside a tree
// extracted from Debian packages (ROOT/lib/systemd/systemd, as
// demo/scripts/fetch-systemd-254.sh makes), it also sets LibDir to the tree's
// libsystemd-shared directory and Systemctl to the tree's systemctl, so the
// manager and the systemctl that talks to it are of one version.
func OptionsFor(fdtop, systemd string) Options {
	o := Options{Fdtop: fdtop, Systemd: systemd}
	if systemd == "" || systemd == DefaultSystemd {
		return o
	}
	root := strings.TrimSuffix(systemd, "/lib/systemd/systemd")
	if root == systemd {
		return o
	}
	libs, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/systemd/libsystemd-shared-*.so"))
	if len(libs) > 0 {
		o.LibDir = filepath.Dir(libs[0])
	}
	if fi, err := os.Stat(filepath.Join(root, "bin/systemctl")); err == nil && !fi.IsDir() {
		o.Systemctl = filepath.Join(root, "bin/systemctl")
	}
	return o
}

// Cached254 returns the systemd 254 binary that fetch-systemd-254.sh put in
// its default cache ($FDTOP_CACHE or ~/.cache/fdtop), or "" if it is absent.
// FDTOP_SYSTEMD_254 overrides the lookup with an explicit path.
func Cached254() string {
	if p := os.Getenv("FDTOP_SYSTEMD_254"); p != "" {
		return p
	}
	cache := os.Getenv("FDTOP_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "fdtop")
	}
	root := filepath.Join(cache, "systemd-254", "root")
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		return ""
	}
	return filepath.Join(root, "lib", "systemd", "systemd")
}
