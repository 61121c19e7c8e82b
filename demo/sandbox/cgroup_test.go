package sandbox

import (
	"reflect"
	"testing"
)

func TestParseHierarchies(t *testing.T) {
	mountinfo := `23 1 0:21 / /sys rw - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
36 31 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/net rw,relatime - cgroup cgroup rw,net_prio,net_cls
garbage line
`
	cgroup := `10:net_cls,net_prio:/
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
1:cpu:/
0::/
`
	got := parseHierarchies([]byte(mountinfo), []byte(cgroup))
	want := []hierarchy{
		{mount: "/sys/fs/cgroup/cpu", self: "/"},
		{mount: "/sys/fs/cgroup/cpuset", self: "/", cpuset: true},
		{mount: "/sys/fs/cgroup/memory", self: "/process_api/abc"},
		{mount: "/sys/fs/cgroup/systemd", self: "/"},
		{mount: "/sys/fs/cgroup/unified", self: "/", unified: true},
		{mount: "/sys/fs/cgroup/net", self: "/"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseHierarchies:\n got %+v\nwant %+v", got, want)
	}
	if d := want[2].dir("fdtop-sandbox-1-2"); d != "/sys/fs/cgroup/memory/process_api/abc/fdtop-sandbox-1-2" {
		t.Errorf("dir = %s", d)
	}
}

func TestParseHierarchiesPureV2(t *testing.T) {
	got := parseHierarchies(
		[]byte("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"),
		[]byte("0::/user.slice/user-1000.slice/session-2.scope\n"),
	)
	want := []hierarchy{{mount: "/sys/fs/cgroup", self: "/user.slice/user-1000.slice/session-2.scope", unified: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
