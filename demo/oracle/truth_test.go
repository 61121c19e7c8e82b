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

	"github.com/fdtop/fdtop/demo/sandbox"
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
func ssTCP(ports ...int) (map[uint64]ssSocket, error) {
	out, err := exec.Command("ss", "-tanpeH").Output()
	if err != nil {
		return nil, fmt.Errorf("ss -tanpeH: %w", err)
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

// fdInode is the inode of a process's descriptor (0: not readable).
func fdInode(pid, fd int) uint64 {
	var st syscall.Stat_t
	if syscall.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &st) != nil {
		return 0
	}
	return st.Ino
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

// show reads properties of a unit with systemctl show.
func show(ctx context.Context, sb *sandbox.Sandbox, unit string, props ...string) (map[string]string, error) {
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := sb.Systemctl(ctx, args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m, nil
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
