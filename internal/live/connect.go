package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/procfs"
	"golang.org/x/sys/unix"
)

// Manager names the manager to talk to and the kernel to read, as the
// command line's --user, --system, --all, --address and --proc do.
type Manager struct {
	User    bool
	System  bool
	All     bool
	Address string
	Proc    string
	// WarmHolders starts loading and running the BPF holder pass before
	// the manager is dialled (procfs.FS.WarmHolders), for a command whose
	// first snapshot is a host-wide one (snapshot, doctor, watch).
	WarmHolders bool
}

func (m Manager) scope() string {
	if m.User {
		return "user"
	}
	return "system"
}

// Connect opens the manager and the kernel, with a one-line error that
// says what to do when no manager answers.
func Connect(ctx context.Context, m Manager, patterns []string) (*dbusclient.Client, *inspect.Builder, error) {
	fs, err := openProc(m.Proc)
	if err != nil {
		return nil, nil, err
	}
	if m.WarmHolders {
		fs.WarmHolders()
	}
	opts := dbusclient.Options{Scope: dbusclient.System, Address: m.Address}
	if m.User {
		opts.Scope = dbusclient.User
	}
	timeout := 10 * time.Second
	hint := ""
	if m.Address != "" {
		hint = ownerOnlyHint(m.Address)
	}
	if hint != "" {
		// It will most likely refuse us: do not retry for long.
		timeout = time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := dbusclient.Connect(cctx, opts)
	if err != nil {
		if hint != "" {
			return nil, nil, fmt.Errorf("the manager at %s refused the connection (%v): %s", m.Address, err, hint)
		}
		if errors.Is(err, dbusclient.ErrConnectionReset) {
			// It is there, but restarting or going away: say that.
			where := "the " + m.scope() + " manager"
			if m.Address != "" {
				where = "the manager at " + m.Address
			}
			return nil, nil, fmt.Errorf("%s did not stay connected: %v", where, err)
		}
		if m.Address != "" {
			return nil, nil, fmt.Errorf("no systemd manager answers at %s: %v", m.Address, err)
		}
		if m.User {
			return nil, nil, fmt.Errorf("no user manager answers (is 'systemd --user' running for this user? XDG_RUNTIME_DIR set?); try 'fdtop demo' for a private one: %v", err)
		}
		return nil, nil, fmt.Errorf("no system manager answers (systemd is not PID 1 here?); try 'fdtop --user', or 'fdtop demo' for a private manager: %v", err)
	}
	if p := os.Getenv("FDTOP_DEBUG_CALLS"); p != "" {
		go writeCallCounts(ctx, client, p) // tools/idle-cost: D-Bus calls by method
	}
	scope := m.scope()
	if m.Address != "" {
		// An explicit address is labelled by what answers there, not by
		// --user/--system (which only pick the usual places).
		if s := client.ManagerScope(); s != "" {
			scope = s
		}
	}
	b := &inspect.Builder{Systemd: client, Kernel: fs, Scope: scope, Patterns: patterns, All: m.All}
	for _, p := range patterns {
		if strings.HasSuffix(p, ".service") && !strings.ContainsAny(p, "*?[") {
			b.ExtraServices = append(b.ExtraServices, p) // named explicitly: show it
		}
	}
	return client, b, nil
}

// openProc opens the procfs at dir, refusing a directory that is not one:
// fdtop would otherwise find no process there and show no holders.
func openProc(dir string) (procfs.FS, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return procfs.FS{}, clierr.Usage(fmt.Sprintf("--proc %s: %v", dir, err))
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return procfs.FS{}, clierr.Usage(fmt.Sprintf("--proc %s: not a procfs (filesystem type %#x; mount one with 'mount -t proc proc %s')", dir, st.Type, dir))
	}
	fs, err := procfs.New(dir)
	if err != nil {
		return procfs.FS{}, fmt.Errorf("open %s: %w", dir, err)
	}
	return fs, nil
}

// ownerOnlyHint explains a connection that a manager's private socket
// refused because fdtop does not run as the socket's owner (systemd admits
// only its own uid there): it points at the system bus and at --user.
// It is "" when that is not the case.
func ownerOnlyHint(address string) string {
	path, ok := strings.CutPrefix(address, "unix:path=")
	if !ok || !strings.HasSuffix(path, "/systemd/private") {
		return ""
	}
	if i := strings.IndexByte(path, ','); i >= 0 {
		path = path[:i]
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	uid := os.Geteuid()
	if uid == 0 || int(st.Uid) == uid {
		return ""
	}
	return fmt.Sprintf("a manager's private socket admits only its owner (uid %d) and fdtop runs as uid %d; "+
		"leave out --address to reach the system manager over the system bus, or use --user for your own manager", st.Uid, uid)
}

// writeCallCounts keeps path holding the client's read calls by method as
// one JSON object (replaced every second while they change), until ctx
// ends: tools/idle-cost reads it before and after its window.
func writeCallCounts(ctx context.Context, client *dbusclient.Client, path string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last map[string]int64
	for {
		if n := client.CallCounts(); last == nil || !maps.Equal(n, last) {
			last = n
			if last == nil {
				last = map[string]int64{}
			}
			if b, err := json.Marshal(last); err == nil {
				tmp := path + ".tmp"
				if os.WriteFile(tmp, b, 0o644) == nil {
					_ = os.Rename(tmp, path)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
