package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hierarchy is one mounted cgroup hierarchy (v1 controller, v1 name=systemd,
// or the v2 unified tree) and the cgroup this process sits in within it.
type hierarchy struct {
	mount   string // where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory
	self    string // this process's cgroup in it, e.g. /process_api/abc
	cpuset  bool   // v1 cpuset: children need cpuset.cpus and cpuset.mems set
	unified bool   // cgroup v2
}

// dir returns the directory of the sandbox subtree tag in h.
func (h hierarchy) dir(tag string) string {
	return filepath.Join(h.mount, h.self, tag)
}

// hierarchies lists the cgroup hierarchies mounted on this host together with
// this process's place in each.
func hierarchies() ([]hierarchy, error) {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	cgroupFile, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return parseHierarchies(mountinfo, cgroupFile), nil
}

// parseHierarchies joins /proc/self/mountinfo with /proc/self/cgroup.
func parseHierarchies(mountinfo, cgroupFile []byte) []hierarchy {
	// controller set ("memory", "name=systemd", "" for v2) -> own path
	own := map[string]string{}
	for _, line := range strings.Split(string(cgroupFile), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		own[parts[1]] = parts[2]
	}
	var out []hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 || len(fields) < 5 {
			continue
		}
		fstype, opts, mnt := fields[sep+1], fields[sep+3], fields[4]
		if seen[mnt] {
			continue
		}
		switch fstype {
		case "cgroup2":
			if p, ok := own[""]; ok {
				out = append(out, hierarchy{mount: mnt, self: p, unified: true})
				seen[mnt] = true
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(opts, ",") {
				switch o {
				case "rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime", "clone_children", "xattr":
					continue
				}
				if strings.HasPrefix(o, "release_agent=") {
					continue
				}
				ctrls = append(ctrls, o)
			}
			key := strings.Join(ctrls, ",")
			p, ok := own[key]
			if !ok {
				// /proc/self/cgroup orders co-mounted controllers its own way.
				sort.Strings(ctrls)
				for k, v := range own {
					ks := strings.Split(k, ",")
					sort.Strings(ks)
					if strings.Join(ks, ",") == strings.Join(ctrls, ",") {
						p, ok = v, true
					}
				}
			}
			if !ok {
				continue
			}
			out = append(out, hierarchy{mount: mnt, self: p, cpuset: key == "cpuset"})
			seen[mnt] = true
		}
	}
	return out
}

// createSubtree makes <tag>/<leaf> in every hierarchy and returns the leaf's
// cgroup.procs files the manager must join. Hierarchies that refuse a new
// cgroup (read-only mounts, some v1 controllers) are left out, except the
// ones systemd tracks units with (v2 and name=systemd), which are required.
func createSubtree(hs []hierarchy, tag, leaf string) ([]string, error) {
	var procs []string
	for _, h := range hs {
		scope := filepath.Join(h.dir(tag), leaf)
		if err := os.MkdirAll(scope, 0o755); err != nil {
			if h.unified || strings.HasSuffix(h.mount, "/systemd") {
				return procs, fmt.Errorf("create cgroup %s: %w", scope, err)
			}
			continue
		}
		if h.cpuset {
			dirs := []string{h.dir(tag)}
			if scope != h.dir(tag) {
				dirs = append(dirs, scope)
			}
			if err := inheritCpuset(filepath.Join(h.mount, h.self), dirs...); err != nil {
				continue
			}
		}
		procs = append(procs, filepath.Join(scope, "cgroup.procs"))
	}
	return procs, nil
}

// inheritCpuset copies cpuset.cpus and cpuset.mems down a new v1 cpuset path:
// a v1 cpuset cgroup with empty sets refuses tasks.
func inheritCpuset(parent string, dirs ...string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		v, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		for _, d := range dirs {
			if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// subtreePIDs lists every process in tag's subtree over all hierarchies.
func subtreePIDs(hs []hierarchy, tag string) []int {
	set := map[int]bool{}
	for _, h := range hs {
		root := h.dir(tag)
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					set[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(set))
	for pid := range set {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// killSubtree SIGKILLs every process in tag's subtree until none is left or
// the deadline passes; it returns the PIDs it found at the start and the ones
// still alive at the end.
func killSubtree(hs []hierarchy, tag string, within time.Duration) (found, left []int) {
	deadline := time.Now().Add(within)
	all := map[int]bool{}
	for {
		pids := subtreePIDs(hs, tag)
		for _, pid := range pids {
			all[pid] = true
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for pid := range all {
		found = append(found, pid)
	}
	sort.Ints(found)
	for _, pid := range found {
		if Alive(pid) {
			left = append(left, pid)
		}
	}
	return found, left
}

// Alive reports whether pid names a process that has not exited (zombies
// count as exited).
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// removeSubtree removes tag's cgroup directories, deepest first.
func removeSubtree(hs []hierarchy, tag string) error {
	var errs []error
	for _, h := range hs {
		root := h.dir(tag)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for try := 0; try < 200; try++ {
				// A just-killed process may still be leaving the cgroup
				// (on cgroup v1 until its zombie is reaped): up to 2 s.
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Cgroups is a cgroup subtree named Tag below this process's own cgroup in
// every mounted hierarchy (v1 controllers, v1 name=systemd, v2): what a
// sandbox, or the system container of demo/systemtest, runs in, so that
// every process it starts can be found, killed and its cgroups removed.
type Cgroups struct {
	// Tag is the subtree's directory name in every hierarchy.
	Tag string
	hs  []hierarchy
}

// OwnCgroups returns the subtree tag below this process's cgroups; nothing
// is created until Create.
func OwnCgroups(tag string) (*Cgroups, error) {
	hs, err := hierarchies()
	if err != nil {
		return nil, err
	}
	return &Cgroups{Tag: tag, hs: hs}, nil
}

// Create makes <Tag>/<leaf> in every hierarchy (leaf "" is the subtree's
// root) and returns the cgroup.procs files a process writes its PID to.
func (c *Cgroups) Create(leaf string) ([]string, error) {
	return createSubtree(c.hs, c.Tag, leaf)
}

// PIDs lists every process in the subtree, over all hierarchies.
func (c *Cgroups) PIDs() []int { return subtreePIDs(c.hs, c.Tag) }

// Kill SIGKILLs every process in the subtree until none is left or within
// has passed; it returns the PIDs found and the ones still alive at the end.
func (c *Cgroups) Kill(within time.Duration) (found, left []int) {
	return killSubtree(c.hs, c.Tag, within)
}

// Remove removes the subtree's directories, deepest first.
func (c *Cgroups) Remove() error { return removeSubtree(c.hs, c.Tag) }

// Dirs lists the subtree's root directories that still exist.
func (c *Cgroups) Dirs() []string {
	var out []string
	for _, h := range c.hs {
		if _, err := os.Stat(h.dir(c.Tag)); err == nil {
			out = append(out, h.dir(c.Tag))
		}
	}
	return out
}
