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
