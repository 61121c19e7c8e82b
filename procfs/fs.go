package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// FS reads processes, descriptors and sockets from a proc filesystem rooted at
// a directory. The zero value is not usable; build one with New. Copies share
// one socket cache and are safe for concurrent use.
type FS struct {
	root string
	// live reports whether root is the kernel's procfs, so that sock_diag
	// (which always describes the live kernel) may be used.
	live bool
	// hier is the cgroup hierarchy the manager uses (WithHierarchy; New
	// detects it for the live procfs).
	hier  Hierarchy
	cache *socketCache
	fdt   *fdTables
	hp    *holderPass
}

// New returns an FS rooted at root, usually "/proc". A root that is not a
// mounted procfs (a fixture tree) is read as plain files, and its sockets come
// from root/net/* and root/PID/net/* instead of netlink.
func New(root string) (FS, error) {
	st, err := os.Stat(root)
	if err != nil {
		return FS{}, fmt.Errorf("procfs root %s: %w", root, err)
	}
	if !st.IsDir() {
		return FS{}, fmt.Errorf("procfs root %s: not a directory", root)
	}
	var sfs unix.Statfs_t
	live := false
	if err := unix.Statfs(root, &sfs); err == nil && sfs.Type == unix.PROC_SUPER_MAGIC {
		live = true
	}
	hier := HierarchyUnknown
	if live {
		// What this mount namespace has at /sys/fs/cgroup is what the
		// manager of this system uses; unknown (left to the units'
		// ControlGroup, see Scan.UseHierarchy) when it cannot be told.
		hier, _ = DetectHierarchy("/sys/fs/cgroup")
	}
	return FS{root: filepath.Clean(root), live: live, hier: hier, cache: newSocketCache(), fdt: newFDTables(), hp: newHolderPass(Holders{Proc: os.Getenv(HoldersEnv) == HoldersProc})}, nil
}

// WithHierarchy returns a copy of p that reads processes' units from the
// cgroup hierarchy h (a fixture tree's, or one decided from a unit's
// ControlGroup).
func (p FS) WithHierarchy(h Hierarchy) FS {
	p.hier = h
	return p
}

// Hierarchy is the cgroup hierarchy processes' units are read from;
// HierarchyUnknown when it could not be told.
func (p FS) Hierarchy() Hierarchy { return p.hier }

// Root returns the directory the FS reads from.
func (p FS) Root() string { return p.root }

// Live reports whether the FS reads the kernel's procfs (and so may use netlink).
func (p FS) Live() bool { return p.live }

func (p FS) path(elem ...string) string {
	return filepath.Join(append([]string{p.root}, elem...)...)
}

// IsGone reports whether err means that a process or descriptor disappeared
// while it was being read (ENOENT, ESRCH): such an entry is skipped, not an error.
func IsGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// IsPermission reports whether err means that the caller may not read an entry
// (EACCES, EPERM): such a process is counted as unreadable, never fatal.
func IsPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// bufPool holds read buffers for small /proc files.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readSmall reads a whole file with open/read/close, reusing buf. It returns
// the bytes read, which alias buf.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			// Grow by hand and clear the old buffer: environ blocks pass
			// through here and must not linger in freed memory.
			nb := make([]byte, len(buf), 2*cap(buf)+4096)
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) > 64<<20 {
			return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("file too large")}
		}
	}
}
