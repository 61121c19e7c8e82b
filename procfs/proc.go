package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of /proc/PID/stat start times: USER_HZ is 100 on every
// Linux architecture as seen from user space.
const userHZ = 100

// Process is one process (thread group) as read from /proc/PID.
type Process struct {
	// PID is the process id (thread group id).
	PID int
	// PPID is the parent's process id.
	PPID int
	// Comm is the kernel's short command name (/proc/PID/stat).
	Comm string
	// Cmdline is the argument vector; empty for kernel threads and zombies.
	Cmdline []string
	// UID is the effective user id, as the owner of /proc/PID (root for
	// non-dumpable processes, e.g. after a setuid exec).
	UID uint32
	// StartTime is when the process started, in clock ticks since boot.
	StartTime uint64
	// Kernel reports a kernel thread.
	Kernel bool
	// Cgroup is the raw systemd cgroup path: the line of the hierarchy the
	// manager uses (see Hierarchy; FS.Hierarchy decides).
	Cgroup string
	// Cgroups are both lines systemd may track units in, so that the
	// choice can be made again (Scan.UseHierarchy).
	Cgroups CgroupLines
	// Unit is the systemd unit of the system manager the process belongs to,
	// e.g. "nginx.service" or "user@1000.service"; empty if none.
	Unit string
	// UserUnit is the unit of a user manager (user@UID.service) the process
	// belongs to, e.g. "app.service"; empty if none.
	UserUnit string
	// NetNS is the inode of the process's network namespace; 0 if unknown.
	NetNS uint64
	// FDs are the process's descriptors, sorted by number; filled by scans.
	FDs []FD
	// Handoff is the socket-activation environment (LISTEN_*) if the process
	// has one; filled by scans.
	Handoff *HandoffEnv
	// Denied reports that the descriptors could not be read for lack of
	// permission: FDs is empty because it was not seen.
	Denied bool
	// EnvDenied reports that the environment could not be read for lack
	// of permission (a process whose descriptors are readable can still
	// deny it, e.g. PID 1 of a container): Handoff is nil because it was
	// not seen.
	EnvDenied bool
}

// StartedAt converts StartTime to wall time given the boot time (see FS.BootTime).
func (p Process) StartedAt(boot time.Time) time.Time {
	return boot.Add(time.Duration(p.StartTime) * time.Second / userHZ)
}

// procStat holds the fields of /proc/PID/stat fdtop uses.
type procStat struct {
	PID       int
	Comm      string
	PPID      int
	Flags     uint64
	StartTime uint64
}

const pfKthread = 0x00200000

// parseStat parses /proc/PID/stat. The comm field may contain spaces and
// parentheses: it ends at the last ')'.
func parseStat(b []byte) (procStat, error) {
	var s procStat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, errors.New("stat: no comm field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("stat: pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : closing])
	// Fields after comm: 3 state, 4 ppid, ..., 9 flags, ..., 22 starttime.
	rest := b[closing+1:]
	field := 2
	for len(rest) > 0 {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		tok := bytes.TrimRight(rest[:end], "\n")
		rest = rest[end:]
		field++
		switch field {
		case 4:
			v, err := strconv.Atoi(string(tok))
			if err != nil {
				return s, fmt.Errorf("stat: ppid: %w", err)
			}
			s.PPID = v
		case 9:
			v, err := strconv.ParseUint(string(tok), 10, 64)
			if err != nil {
				return s, fmt.Errorf("stat: flags: %w", err)
			}
			s.Flags = v
		case 22:
			v, err := strconv.ParseUint(string(tok), 10, 64)
			if err != nil {
				return s, fmt.Errorf("stat: starttime: %w", err)
			}
			s.StartTime = v
			return s, nil
		}
	}
	return s, errors.New("stat: too few fields")
}

// parseStatusUID returns the real uid from /proc/PID/status.
func parseStatusUID(b []byte) (uint32, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0, errors.New("status: empty Uid line")
			}
			v, err := strconv.ParseUint(string(f[0]), 10, 32)
			if err != nil {
				return 0, fmt.Errorf("status: uid: %w", err)
			}
			return uint32(v), nil
		}
	}
	return 0, errors.New("status: no Uid line")
}

// parseCmdline splits /proc/PID/cmdline at NUL bytes.
func parseCmdline(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// parseCgroup returns the lines of /proc/PID/cgroup systemd may track
// units in: the v1 "name=systemd" one and the v2 "0::" one, whatever their
// order.
func parseCgroup(b []byte) CgroupLines {
	var l CgroupLines
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrl, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if ctrl == "name=systemd" {
			l.Named = path
		}
		if id == "0" && ctrl == "" {
			l.Unified = path
		}
	}
	return l
}

// setCgroup fills Cgroups, Cgroup, Unit and UserUnit for hierarchy h.
func (p *Process) setCgroup(l CgroupLines, h Hierarchy) {
	p.Cgroups = l
	p.Cgroup = l.Path(h)
	p.Unit, p.UserUnit = unitFromCgroup(p.Cgroup)
}

var unitSuffixes = []string{".service", ".scope", ".socket", ".mount", ".swap", ".device", ".target", ".timer", ".path", ".automount"}

func isUnitName(s string) bool {
	for _, suf := range unitSuffixes {
		if len(s) > len(suf) && strings.HasSuffix(s, suf) {
			return true
		}
	}
	return false
}

// unitFromCgroup maps a systemd cgroup path to the system unit and, under a
// user manager (user@UID.service), the user unit. Slices are skipped; the
// first unit below them wins, so sub-cgroups of delegated units map to the unit.
func unitFromCgroup(path string) (unit, userUnit string) {
	comps := strings.Split(strings.Trim(path, "/"), "/")
	i := 0
	for ; i < len(comps); i++ {
		if isUnitName(comps[i]) {
			unit = comps[i]
			break
		}
	}
	if unit == "" || !strings.HasPrefix(unit, "user@") || !strings.HasSuffix(unit, ".service") {
		return unit, ""
	}
	for i++; i < len(comps); i++ {
		if isUnitName(comps[i]) {
			return unit, comps[i]
		}
	}
	return unit, ""
}

// parseNSLink parses a namespace link such as "net:[4026531840]" and returns the inode.
func parseNSLink(b []byte) (uint64, error) {
	open := bytes.IndexByte(b, '[')
	if open < 0 || len(b) == 0 || b[len(b)-1] != ']' {
		return 0, fmt.Errorf("namespace link %q: no [inode]", b)
	}
	v, err := strconv.ParseUint(string(b[open+1:len(b)-1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("namespace link %q: %w", b, err)
	}
	return v, nil
}

// PIDs lists the process ids under the root, in directory order.
func (p FS) PIDs() ([]int, error) {
	dfd, err := unix.Open(p.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.root, err)
	}
	defer unix.Close(dfd)
	var pids []int
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(dfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p.root, err)
		}
		if n <= 0 {
			break
		}
		forEachDirent(buf[:n], func(name []byte, typ byte) {
			if pid, ok := atoiBytes(name); ok {
				pids = append(pids, pid)
			}
		})
	}
	return pids, nil
}

// Process reads one process's identity (no descriptors, no environment).
// A process that does not exist gives an error for which IsGone is true.
func (p FS) Process(pid int) (Process, error) {
	r := newProcReader(p)
	proc, gone, err := r.readProcess(pid)
	if err != nil {
		return Process{}, err
	}
	if gone {
		return Process{}, fmt.Errorf("read process %d: %w", pid, unix.ESRCH)
	}
	unix.Close(proc.dirfd)
	return proc.Process, nil
}

// BootTime reads the boot time (btime in root/stat), for Process.StartedAt.
func (p FS) BootTime() (time.Time, error) {
	path := p.path("stat")
	b, err := readSmall(path, make([]byte, 0, 8192))
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	t, err := parseBootTime(b)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return t, nil
}

// parseBootTime returns the btime line of /proc/stat.
func parseBootTime(b []byte) (time.Time, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("btime: %w", err)
			}
			return time.Unix(v, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime line")
}

// FDCount returns the number of open descriptors of pid from the size of its
// fd directory, which kernels since 6.2 report: a cheap change hint. It
// returns ok=false when the kernel (or a fixture) does not report it.
func (p FS) FDCount(pid int) (n int, ok bool, err error) {
	var st unix.Stat_t
	path := p.path(strconv.Itoa(pid), "fd")
	if err := unix.Stat(path, &st); err != nil {
		return 0, false, fmt.Errorf("stat %s: %w", path, err)
	}
	if !p.live || st.Size == 0 {
		return 0, false, nil
	}
	return int(st.Size), true, nil
}

func atoiBytes(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
