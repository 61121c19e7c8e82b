//go:build oracle

package oracle

// Ground truth, read without any of fdtop's code: ss for the kernel's
// sockets, a few lines of /proc reading of its own, systemctl show for the
// manager, and the demo servers' logs.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// ssSocket is one TCP socket as ss shows it.
type ssSocket struct {
	state, local, peer string
	inode              uint64
	holders            [][2]int // pid, fd
}

var ssUsers = regexp.MustCompile(`pid=(\d+),fd=(\d+)`)

// ssTCP lists the TCP sockets on the given ports (local or peer), from
// `ss -tanpeH`.
// With procs, each socket's holders too (ss -p reads every process: slow
// on a busy host).
func ssTCP(procs bool, ports ...int) (map[uint64]ssSocket, error) {
	flags := "-taneH"
	if procs {
		flags = "-tanpeH"
	}
	args := []string{flags}
	if len(ports) > 0 {
		// Filtered in the kernel: a busy host's other sockets cost
		// nothing to skip (without it, ss took seconds beside a load of
		// 750k sockets).
		expr := []string{"("}
		for i, p := range ports {
			if i > 0 {
				expr = append(expr, "or")
			}
			expr = append(expr, "sport", "=", ":"+strconv.Itoa(p), "or", "dport", "=", ":"+strconv.Itoa(p))
		}
		args = append(args, append(expr, ")")...)
	}
	out, err := exec.Command("ss", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("ss %s: %w", flags, err)
	}
	want := map[string]bool{}
	for _, p := range ports {
		want[":"+strconv.Itoa(p)] = true
	}
	socks := map[uint64]ssSocket{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		s := ssSocket{state: f[0], local: f[3], peer: f[4]}
		if !want[s.local[strings.LastIndex(s.local, ":"):]] && !want[s.peer[strings.LastIndex(s.peer, ":"):]] {
			continue
		}
		for _, tok := range f[5:] {
			switch {
			case strings.HasPrefix(tok, "users:"):
				for _, m := range ssUsers.FindAllStringSubmatch(tok, -1) {
					pid, _ := strconv.Atoi(m[1])
					fd, _ := strconv.Atoi(m[2])
					s.holders = append(s.holders, [2]int{pid, fd})
				}
			case strings.HasPrefix(tok, "ino:"):
				s.inode, _ = strconv.ParseUint(strings.TrimPrefix(tok, "ino:"), 10, 64)
			}
		}
		if s.inode != 0 {
			socks[s.inode] = s
		}
	}
	return socks, nil
}

// listenerInode is the inode of the socket listening on 127.0.0.1:port (0:
// none).
func listenerInode(socks map[uint64]ssSocket, port int) uint64 {
	for _, s := range socks {
		if s.state == "LISTEN" && s.local == "127.0.0.1:"+strconv.Itoa(port) {
			return s.inode
		}
	}
	return 0
}

// listenFDNames reads LISTEN_FDNAMES from a process's environment (nil,
// false when it cannot be read: gone).
func listenFDNames(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, false
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("LISTEN_FDNAMES=")); ok {
			return strings.Split(string(v), ":"), true
		}
	}
	return []string{}, true
}

// processInodes lists the inodes of every descriptor a process holds.
func processInodes(pid int) map[uint64]bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(dir, e.Name()), &st) == nil {
			out[st.Ino] = true
		}
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// storeOp is one fd store operation a demo server logged.
type storeOp struct {
	pid   int
	op    string // store, got, remove
	name  string
	inode uint64
}

var logOp = regexp.MustCompile(`msg=fdstore pid=(\d+) op=(\w+) name=(\S+)(?: inode=(\d+))?`)

// storeLog reads the fd store operations from a service's log.
func storeLog(path string) []storeOp {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []storeOp
	for _, m := range logOp.FindAllStringSubmatch(string(b), -1) {
		op := storeOp{pid: atoi(m[1]), op: m[2], name: m[3]}
		op.inode, _ = strconv.ParseUint(m[4], 10, 64)
		out = append(out, op)
	}
	return out
}

// extrasHandled counts the SIGUSR1/SIGUSR2 the handoff servers handled.
func extrasHandled(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "msg=extras ")
}

// manager asks the sandbox's manager over its private socket with plain
// godbus calls (none of fdtop's dbusclient), far cheaper than systemctl.
type manager struct{ conn *dbus.Conn }

func dialManager(address string) (*manager, error) {
	conn, err := dbus.Dial(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("auth %s: %w", address, err)
	}
	return &manager{conn: conn}, nil
}

// unitPath is a unit's object path (systemd's escaping of its name).
func unitPath(name string) dbus.ObjectPath {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

// props reads properties of a unit's interface (Unit or Service).
func (m *manager) props(ctx context.Context, unit, iface string) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	obj := m.conn.Object("org.freedesktop.systemd1", unitPath(unit))
	err := obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, "org.freedesktop.systemd1."+iface).Store(&out)
	if err != nil {
		return nil, fmt.Errorf("properties of %s: %w", unit, err)
	}
	return out, nil
}

// unitState is what the oracle reads of a service.
type unitState struct {
	active              string
	job                 uint32
	mainPID             int
	store               int
	startMono, exitMono uint64
	nRestarts           uint32
}

func (m *manager) service(ctx context.Context, unit string) (unitState, error) {
	var st unitState
	u, err := m.props(ctx, unit, "Unit")
	if err != nil {
		return st, err
	}
	s, err := m.props(ctx, unit, "Service")
	if err != nil {
		return st, err
	}
	st.active, _ = u["ActiveState"].Value().(string)
	if j, ok := u["Job"].Value().([]any); ok && len(j) == 2 {
		st.job, _ = j[0].(uint32)
	}
	pid, _ := s["MainPID"].Value().(uint32)
	n, _ := s["NFileDescriptorStore"].Value().(uint32)
	st.mainPID, st.store = int(pid), int(n)
	st.startMono, _ = s["ExecMainStartTimestampMonotonic"].Value().(uint64)
	st.exitMono, _ = s["ExecMainExitTimestampMonotonic"].Value().(uint64)
	st.nRestarts, _ = s["NRestarts"].Value().(uint32)
	return st, nil
}

// callTimeout bounds each call to the manager: a call whose reply is lost
// (its connection closed under it by a daemon-reexec) fails, and the
// caller dials again, instead of waiting for ever (seen once: 13 minutes).
const callTimeout = 5 * time.Second

// jobs counts the manager's jobs.
func (m *manager) jobs(ctx context.Context) (int, error) {
	var out []struct {
		ID                uint32
		Unit, Type, St    string
		JobPath, UnitPath dbus.ObjectPath
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := m.conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx, "org.freedesktop.systemd1.Manager.ListJobs", 0).Store(&out)
	if err != nil {
		return 0, fmt.Errorf("list jobs: %w", err)
	}
	return len(out), nil
}

// start starts a unit (a plain StartUnit call, not waiting for the job).
func (m *manager) start(ctx context.Context, unit string) error {
	var job dbus.ObjectPath
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := m.conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx, "org.freedesktop.systemd1.Manager.StartUnit", 0, unit, "replace").Store(&job)
	if err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	return nil
}

// instance is an Accept=yes instance as the manager lists it.
type instance struct {
	active  string
	mainPID int
}

// instances lists the loaded units matching pattern with their state and
// main PID (ListUnitsByPatterns, then MainPID of each).
func (m *manager) instances(ctx context.Context, pattern string) (map[string]instance, error) {
	var units []struct {
		Name, Description, Load, Active, Sub, Following string
		Path                                            dbus.ObjectPath
		JobID                                           uint32
		JobType                                         string
		JobPath                                         dbus.ObjectPath
	}
	err := m.conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").CallWithContext(ctx, "org.freedesktop.systemd1.Manager.ListUnitsByPatterns", 0, []string{}, []string{pattern}).Store(&units)
	if err != nil {
		return nil, fmt.Errorf("list units %s: %w", pattern, err)
	}
	out := map[string]instance{}
	for _, u := range units {
		if u.Active == "inactive" || u.Active == "failed" {
			continue
		}
		in := instance{active: u.Active}
		if v, err := m.prop(ctx, u.Name, "Service", "MainPID"); err == nil {
			pid, _ := v.Value().(uint32)
			in.mainPID = int(pid)
		}
		out[u.Name] = in
	}
	return out, nil
}

// prop reads one property of a unit.
func (m *manager) prop(ctx context.Context, unit, iface, name string) (dbus.Variant, error) {
	var v dbus.Variant
	obj := m.conn.Object("org.freedesktop.systemd1", unitPath(unit))
	err := obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1."+iface, name).Store(&v)
	if err != nil {
		return v, fmt.Errorf("%s of %s: %w", name, unit, err)
	}
	return v, nil
}

// socketCounters are a socket unit's counters as the manager keeps them.
type socketCounters struct{ nAccepted, nConnections, nRefused uint32 }

func (m *manager) socketCounters(ctx context.Context, unit string) (socketCounters, error) {
	var c socketCounters
	p, err := m.props(ctx, unit, "Socket")
	if err != nil {
		return c, err
	}
	c.nAccepted, _ = p["NAccepted"].Value().(uint32)
	c.nConnections, _ = p["NConnections"].Value().(uint32)
	c.nRefused, _ = p["NRefused"].Value().(uint32)
	return c, nil
}

// unitInfo is what the oracle reads of any unit for the join and doctor
// checks.
type unitInfo struct {
	active, result string
	triggers       []string
	mainPID        int
	listen         []string // socket units: the addresses (Listen)
}

func (m *manager) unitInfo(ctx context.Context, unit string) (unitInfo, error) {
	var ui unitInfo
	u, err := m.props(ctx, unit, "Unit")
	if err != nil {
		return ui, err
	}
	ui.active, _ = u["ActiveState"].Value().(string)
	ui.triggers, _ = u["Triggers"].Value().([]string)
	switch {
	case strings.HasSuffix(unit, ".service"):
		s, err := m.props(ctx, unit, "Service")
		if err != nil {
			return ui, err
		}
		pid, _ := s["MainPID"].Value().(uint32)
		ui.mainPID = int(pid)
		ui.result, _ = s["Result"].Value().(string)
	case strings.HasSuffix(unit, ".socket"):
		s, err := m.props(ctx, unit, "Socket")
		if err != nil {
			return ui, err
		}
		ui.result, _ = s["Result"].Value().(string)
		var listen []struct{ Type, Address string }
		if v, ok := s["Listen"]; ok {
			_ = v.Store(&listen)
		}
		for _, l := range listen {
			ui.listen = append(ui.listen, l.Address)
		}
	}
	return ui, nil
}

// cgroupUnit is the unit a process runs in, from the last unit name in its
// cgroup v2 path ("" when it cannot be read).
func cgroupUnit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	unit := ""
	for _, line := range strings.Split(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			if i := strings.Index(line, ":name=systemd:"); i >= 0 {
				path = line[i+len(":name=systemd:"):]
			} else {
				continue
			}
		}
		for _, c := range strings.Split(path, "/") {
			if strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope") {
				unit = c
			}
		}
		if ok {
			break
		}
	}
	return unit
}

// ssListener is a listening socket as ss shows it: its inode and the
// processes holding it.
type ssListener struct {
	inode   uint64
	holders [][2]int
}

// ssListeners lists the listening TCP and unix stream sockets by local
// address (127.0.0.1:port, or the path), from `ss -ltneH` and `ss -lxH`,
// with their holders among pids (read from /proc: ss -p reads every
// process of the host, a second or more on a busy one).
func ssListeners(pids []int) (map[string]ssListener, error) {
	holders := socketHolders(pids)
	out := map[string]ssListener{}
	for _, flags := range []string{"-ltneH", "-lxH"} {
		b, err := exec.Command("ss", flags).Output()
		if err != nil {
			return nil, fmt.Errorf("ss %s: %w", flags, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			var l ssListener
			var local string
			if flags == "-lxH" {
				// Netid State Recv-Q Send-Q Local Inode Peer PeerInode users:
				if len(f) < 6 || f[0] != "u_str" {
					continue
				}
				local = f[4]
				l.inode, _ = strconv.ParseUint(f[5], 10, 64)
			} else {
				// State Recv-Q Send-Q Local Peer users: ino:
				if len(f) < 5 {
					continue
				}
				local = f[3]
				for _, tok := range f[5:] {
					if v, ok := strings.CutPrefix(tok, "ino:"); ok {
						l.inode, _ = strconv.ParseUint(v, 10, 64)
					}
				}
			}
			for _, tok := range f {
				if strings.HasPrefix(tok, "users:") {
					for _, m := range ssUsers.FindAllStringSubmatch(tok, -1) {
						pid, _ := strconv.Atoi(m[1])
						fd, _ := strconv.Atoi(m[2])
						l.holders = append(l.holders, [2]int{pid, fd})
					}
				}
			}
			if l.inode != 0 {
				l.holders = holders[l.inode]
				out[local] = l
			}
		}
	}
	return out, nil
}

// pids are the sandbox's processes, the manager among them.
func (r *run) pids() []int {
	ps := r.sb.PIDs()
	if !slices.Contains(ps, r.sb.PID) {
		ps = append(ps, r.sb.PID)
	}
	return ps
}

// socketHolders maps the inode of every socket the processes hold to the
// (pid, fd) holding it, read from /proc/PID/fd.
func socketHolders(pids []int) map[uint64][][2]int {
	out := map[uint64][][2]int{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // gone
		}
		for _, e := range ents {
			link, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			v, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64)
			if err != nil {
				continue
			}
			fd, _ := strconv.Atoi(e.Name())
			out[ino] = append(out[ino], [2]int{pid, fd})
		}
	}
	return out
}
