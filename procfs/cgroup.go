package procfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Hierarchy is the cgroup hierarchy a system manager tracks its units in,
// which decides which line of /proc/PID/cgroup names a process's unit.
type Hierarchy int

const (
	// HierarchyUnknown: not decided; the "name=systemd" line is read when
	// there is one, else the "0::" line.
	HierarchyUnknown Hierarchy = iota
	// HierarchyUnified: cgroup v2 is mounted at /sys/fs/cgroup (a pure v2
	// host, or a container given v2 on any host): the "0::" line. A
	// process may still list the host's v1 hierarchies, e.g.
	// "9:name=systemd:/" above "0::/system.slice/dbus.service".
	HierarchyUnified
	// HierarchyNamed: /sys/fs/cgroup is a tmpfs of v1 hierarchies (legacy
	// or hybrid): systemd's own v1 hierarchy, the "name=systemd" line.
	HierarchyNamed
)

// String names the hierarchy as JSON and notes do: "unified", "named", "".
func (h Hierarchy) String() string {
	switch h {
	case HierarchyUnified:
		return "unified"
	case HierarchyNamed:
		return "named"
	}
	return ""
}

// CgroupLines are the two lines of /proc/PID/cgroup that systemd can track
// units in; either may be empty.
type CgroupLines struct {
	// Named is the path of the v1 "name=systemd" line.
	Named string
	// Unified is the path of the v2 "0::" line.
	Unified string
}

// Path returns the line the manager uses under h (see HierarchyUnknown).
func (l CgroupLines) Path(h Hierarchy) string {
	switch h {
	case HierarchyUnified:
		return l.Unified
	case HierarchyNamed:
		return l.Named
	}
	if l.Named != "" {
		return l.Named
	}
	return l.Unified
}

// DetectHierarchy decides from the file system mounted at dir (normally
// /sys/fs/cgroup, as the manager sees it): cgroup2 is HierarchyUnified; a
// tmpfs with a "systemd" v1 hierarchy below is HierarchyNamed.
func DetectHierarchy(dir string) (Hierarchy, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return HierarchyUnknown, fmt.Errorf("statfs %s: %w", dir, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return HierarchyUnified, nil
	case unix.TMPFS_MAGIC:
		var sub unix.Statfs_t
		if err := unix.Statfs(dir+"/systemd", &sub); err == nil && sub.Type == unix.CGROUP_SUPER_MAGIC {
			return HierarchyNamed, nil
		}
		return HierarchyUnknown, fmt.Errorf("%s is a tmpfs without a name=systemd hierarchy at %s/systemd", dir, dir)
	}
	return HierarchyUnknown, fmt.Errorf("%s: file system type %#x is neither cgroup2 nor a tmpfs of v1 hierarchies", dir, st.Type)
}

// HierarchyOf decides from a unit's ControlGroup (as its manager reports
// it) and the lines of a process the manager says is in that unit: the
// hierarchy whose line is that cgroup or below it. It is HierarchyUnknown
// when neither line or both match (then the lines do not tell).
func HierarchyOf(controlGroup string, l CgroupLines) Hierarchy {
	if controlGroup == "" {
		return HierarchyUnknown
	}
	under := func(p string) bool {
		return p != "" && (p == controlGroup || strings.HasPrefix(p, strings.TrimSuffix(controlGroup, "/")+"/"))
	}
	n, u := under(l.Named), under(l.Unified)
	switch {
	case u && !n:
		return HierarchyUnified
	case n && !u:
		return HierarchyNamed
	}
	return HierarchyUnknown
}
