package procfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hybridInContainer is /proc/PID/cgroup of dbus.service's main process in a
// systemd 262 container given cgroup v2 on a hybrid host: the host's v1
// hierarchies are still listed, name=systemd at "/", above the 0:: line
// the container's manager uses (issue 19).
const hybridInContainer = `12:pids:/
11:memory:/
9:name=systemd:/
1:cpu,cpuacct:/
0::/system.slice/dbus.service
`

// hybridHost is the same process on a hybrid host's own manager (252):
// name=systemd and 0:: carry the same path.
const hybridHost = `9:name=systemd:/system.slice/dbus.service
0::/system.slice/dbus.service
`

// legacyAfterUnified has the lines in the other order: the hierarchy, not
// the order, decides.
const legacyAfterUnified = `0::/
1:name=systemd:/system.slice/dbus.service
`

// TestCgroupHierarchy: a process's unit comes from the line of the
// hierarchy the manager uses, whatever the order of the lines.
func TestCgroupHierarchy(t *testing.T) {
	tests := []struct {
		name, cgroup string
		hier         Hierarchy
		want         string
	}{
		{"v2 container on a hybrid host", hybridInContainer, HierarchyUnified, "dbus.service"},
		{"hybrid host", hybridHost, HierarchyNamed, "dbus.service"},
		{"hybrid host, unified line", hybridHost, HierarchyUnified, "dbus.service"},
		{"legacy, named line last", legacyAfterUnified, HierarchyNamed, "dbus.service"},
		{"pure v2", "0::/system.slice/dbus.service\n", HierarchyUnified, "dbus.service"},
		{"pure v2, unknown", "0::/system.slice/dbus.service\n", HierarchyUnknown, "dbus.service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "100")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string]string{
				"stat":    "100 (dbus-daemon) S 1 100 100 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 12345 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
				"cmdline": "/usr/bin/dbus-daemon\x00",
				"cgroup":  tt.cgroup,
				"environ": "",
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range []string{"ns", "fd", "fdinfo"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("net:[4026531840]", filepath.Join(dir, "ns/net")); err != nil {
				t.Fatal(err)
			}
			fs, err := New(root)
			if err != nil {
				t.Fatal(err)
			}
			fs = fs.WithHierarchy(tt.hier)
			p, err := fs.Process(100)
			if err != nil {
				t.Fatal(err)
			}
			diff(t, tt.want, p.Unit)
			s, err := fs.ScanPIDs(context.Background(), []int{100}, ScanOptions{NoSockets: true})
			if err != nil {
				t.Fatal(err)
			}
			sp, ok := s.Process(100)
			if !ok {
				t.Fatalf("pid 100 not scanned: %v", s.Errors)
			}
			diff(t, [2]any{tt.want, tt.hier}, [2]any{sp.Unit, s.Hierarchy})
		})
	}
}

// TestHierarchyOf: a unit's ControlGroup picks the line of its process
// that is in it; when neither or both are, the lines do not tell.
func TestHierarchyOf(t *testing.T) {
	tests := []struct {
		name, cg string
		lines    CgroupLines
		want     Hierarchy
	}{
		{"v2 container on a hybrid host", "/system.slice/dbus.service", parseCgroup([]byte(hybridInContainer)), HierarchyUnified},
		{"legacy", "/system.slice/dbus.service", parseCgroup([]byte(legacyAfterUnified)), HierarchyNamed},
		{"hybrid host: both", "/system.slice/dbus.service", parseCgroup([]byte(hybridHost)), HierarchyUnknown},
		{"delegated subgroup", "/system.slice/docker.service", CgroupLines{Named: "/", Unified: "/system.slice/docker.service/sub"}, HierarchyUnified},
		{"prefix is not a parent", "/system.slice/a.service", CgroupLines{Unified: "/system.slice/a.services"}, HierarchyUnknown},
		{"no ControlGroup", "", parseCgroup([]byte(hybridInContainer)), HierarchyUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff(t, tt.want, HierarchyOf(tt.cg, tt.lines))
		})
	}
}

// TestDetectHierarchy: this host's /sys/fs/cgroup tells, and agrees with
// PID 1's own lines: under the detected hierarchy its line is init.scope
// or the root (PID 1 of a container sits at its root).
func TestDetectHierarchy(t *testing.T) {
	h, err := DetectHierarchy("/sys/fs/cgroup")
	if err != nil {
		t.Fatalf("detect: %v", err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	l := parseCgroup(b)
	switch h {
	case HierarchyUnified:
		if l.Unified == "" {
			t.Errorf("cgroup2 at /sys/fs/cgroup but no 0:: line in %q", b)
		}
	case HierarchyNamed:
		if l.Named == "" {
			t.Errorf("v1 hierarchies at /sys/fs/cgroup but no name=systemd line in %q", b)
		}
	}
	t.Logf("/sys/fs/cgroup: %s; own lines %+v", h, l)
	if _, err := DetectHierarchy(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither cgroup2") {
		t.Errorf("a plain directory: %v, want an error saying neither", err)
	}
	live, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	diff(t, h, live.Hierarchy())
}

// TestParseProcNetNetlink: /proc/net/netlink as Linux 6.1 prints it.
func TestParseProcNetNetlink(t *testing.T) {
	const in = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
ffff9b5e40a3c000 0   1          00000000 0        0        0     2        0        17845
ffff9b5e40a3d800 9   0          00000001 0        0        0     2        0        22001
ffff9b5e40a3e000 15  372        00000002 0        0        0     2        0        22002
`
	got := map[uint64]NetlinkInfo{}
	if err := parseProcNetNetlink([]byte(in), func(ino uint64, info NetlinkInfo) { got[ino] = info }); err != nil {
		t.Fatal(err)
	}
	diff(t, map[uint64]NetlinkInfo{17845: {0, 0}, 22001: {9, 1}, 22002: {15, 2}}, got)
	if err := parseProcNetNetlink([]byte("h\nx y\n"), func(uint64, NetlinkInfo) {}); err == nil {
		t.Error("a short line: no error")
	}
}
