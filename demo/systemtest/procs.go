package systemtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// inNamespaces lists the processes in the container's PID namespace or
// holding one of its mount namespaces (the launcher's, PID 1's).
func inNamespaces(st state) []int {
	want := map[string]bool{}
	for _, ns := range []string{st.LauncherNS, st.LeaderMnt, st.LeaderPID} {
		if ns != "" {
			want[ns] = true
		}
	}
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
