package systemtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/fdtop/fdtop/demo/sandbox"
)

// descendants lists the children, grandchildren, … of pid (from
// /proc/PID/task/*/children), nearest first.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// nsPIDs returns the innermost PID of pid (the last NSpid field of its
// status), "" when unreadable.
func nsPIDs(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 { // not in a nested PID namespace
				return ""
			}
			return f[len(f)-1]
		}
	}
	return ""
}

// nsLink reads /proc/PID/ns/KIND, e.g. "mnt:[4026532000]"; "" when gone.
func nsLink(pid int, kind string) string {
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return ""
	}
	return l
}

// provenNamespaces returns the recorded namespaces (st) that are still the
// container's. A namespace's inode number is reused as soon as the namespace
// is freed: the next mount or PID namespace anyone creates (a sandbox
// manager's of another test package, say) gets it. So a recorded number names
// the container's namespace only while some process of the container's
// cgroup subtree is in it; otherwise sweeping by it would kill strangers.
func provenNamespaces(st state, cg *sandbox.Cgroups) map[string]bool {
	want := recorded(st)
	held := map[string]bool{}
	if cg != nil {
		for _, pid := range cg.PIDs() {
			held[nsLink(pid, "mnt")] = true
			held[nsLink(pid, "pid")] = true
		}
	}
	for ns := range want {
		if !held[ns] {
			delete(want, ns)
		}
	}
	return want
}

// recorded is the set of namespaces st records.
func recorded(st state) map[string]bool {
	want := map[string]bool{}
	for _, ns := range []string{st.LauncherNS, st.LeaderMnt, st.LeaderPID} {
		if ns != "" {
			want[ns] = true
		}
	}
	return want
}

// inNamespaces lists the processes in one of the namespaces want (mount or
// PID namespaces, as nsLink spells them).
func inNamespaces(want map[string]bool) []int {
	if len(want) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if want[nsLink(pid, "pid")] || want[nsLink(pid, "mnt")] {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// pinHeld opens each namespace of want that a process of the cgroup
// subtree is in and held does not have yet, and adds it to held: from then
// on its number cannot be reused, even once the subtree is empty.
func pinHeld(want map[string]bool, cg *sandbox.Cgroups, held map[string]*os.File) {
	if cg == nil {
		return
	}
	for _, pid := range cg.PIDs() {
		for _, kind := range []string{"mnt", "pid"} {
			ns := nsLink(pid, kind)
			if !want[ns] || held[ns] != nil {
				continue
			}
			if f, err := openNamespace(pid, kind, ns); err == nil {
				held[ns] = f
			}
		}
	}
}

// openNamespace opens /proc/PID/ns/KIND and checks that it is want (e.g.
// "mnt:[4026532000]"): pid may have left it, or died, since it was read.
func openNamespace(pid int, kind, want string) (*os.File, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return nil, fmt.Errorf("pin namespace: %w", err)
	}
	var sb syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &sb); err != nil {
		f.Close()
		return nil, fmt.Errorf("pin namespace %s: %w", f.Name(), err)
	}
	if got := fmt.Sprintf("%s:[%d]", kind, sb.Ino); got != want {
		f.Close()
		return nil, fmt.Errorf("pin namespace %s: it is %s, not %s", f.Name(), got, want)
	}
	return f, nil
}
