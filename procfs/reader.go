package procfs

import (
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// procReader reads processes with buffers reused across calls; one per worker.
type procReader struct {
	fs      FS
	small   []byte // stat, status, cgroup, cmdline, fdinfo
	dents   []byte // getdents64 buffer
	link    []byte // readlink buffer
	nameBuf []byte // NUL-terminated names
	// noPathStat: readFDs does not stat path targets (a link text
	// starting with "/") for their mode and inode: files, FIFOs and
	// memfds are then files without an inode.
	noPathStat bool
}

func newProcReader(p FS) *procReader {
	return &procReader{
		fs:      p,
		small:   make([]byte, 0, 8192),
		dents:   make([]byte, 64<<10),
		link:    make([]byte, 4096),
		nameBuf: make([]byte, 0, 64),
	}
}

// openProcess is a process with its /proc/PID directory open, so that every
// later read refers to the same process even if the pid is reused.
type openProcess struct {
	Process
	dirfd int
}

// readAt reads a small file relative to dirfd into r.small.
func (r *procReader) readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := r.small[:0]
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			r.small = buf[:0]
			return nil, err
		}
		if n <= 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	r.small = buf[:0]
	return buf, nil
}

// readProcess opens /proc/PID and reads its identity. The caller closes dirfd.
// gone reports a process that vanished (err is then nil).
func (r *procReader) readProcess(pid int) (proc openProcess, gone bool, err error) {
	ps := strconv.Itoa(pid)
	dir := r.fs.path(ps)
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if IsGone(err) {
			return proc, true, nil
		}
		return proc, false, fmt.Errorf("open %s: %w", dir, err)
	}
	proc.dirfd = dirfd
	fail := func(what string, err error) (openProcess, bool, error) {
		unix.Close(dirfd)
		if IsGone(err) {
			return openProcess{}, true, nil
		}
		return openProcess{}, false, fmt.Errorf("%s of pid %d: %w", what, pid, err)
	}
	b, err := r.readAt(dirfd, "stat")
	if err != nil {
		return fail("read stat", err)
	}
	st, err := parseStat(b)
	if err != nil {
		return fail("parse stat", err)
	}
	proc.PID, proc.PPID, proc.Comm, proc.StartTime = pid, st.PPID, st.Comm, st.StartTime
	proc.Kernel = st.Flags&pfKthread != 0
	// The owner of /proc/PID is the effective uid (root for non-dumpable
	// processes): one fstat instead of generating /proc/PID/status.
	var dst unix.Stat_t
	if err := unix.Fstat(dirfd, &dst); err != nil {
		return fail("stat", err)
	}
	proc.UID = dst.Uid
	if proc.Kernel {
		return proc, false, nil
	}
	if b, err = r.readAt(dirfd, "cmdline"); err != nil {
		return fail("read cmdline", err)
	}
	proc.Cmdline = parseCmdline(b)
	if b, err = r.readAt(dirfd, "cgroup"); err == nil {
		proc.setCgroup(parseCgroup(b), r.fs.hier)
	} else if IsGone(err) {
		return fail("read cgroup", err)
	}
	// ns/net needs ptrace access: without it NetNS stays 0 (unknown).
	if n, err := unix.Readlinkat(dirfd, "ns/net", r.link); err == nil {
		proc.NetNS, _ = parseNSLink(r.link[:n])
	} else if IsGone(err) {
		return fail("read ns/net", err)
	}
	return proc, false, nil
}

// readHandoff reads the LISTEN_* variables through dirfd; the buffer is cleared.
func (r *procReader) readHandoff(pid, dirfd int) (*HandoffEnv, error) {
	b, err := r.readAt(dirfd, "environ")
	defer clear(r.small[:cap(r.small)])
	if err != nil {
		return nil, err
	}
	return parseHandoffEnv(b, pid), nil
}

// readFDs lists the descriptors of the process whose /proc/PID is open at
// dirfd, appending to dst. Descriptors closed mid-walk are skipped.
func (r *procReader) readFDs(pid, dirfd int, withInfo bool, dst []FD) ([]FD, error) {
	fdDir, err := unix.Openat(dirfd, "fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dst, err
	}
	defer unix.Close(fdDir)
	infoDir := -1
	if withInfo {
		if infoDir, err = unix.Openat(dirfd, "fdinfo", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return dst, err
		}
		defer unix.Close(infoDir)
	}
	start := len(dst)
	var walkErr error
	for eof := false; !eof; {
		n, err := unix.Getdents(fdDir, r.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return dst, err
		}
		if n <= 0 {
			break
		}
		// procfs fills the buffer until it is full: with room to spare for
		// another entry, the directory is exhausted (saves a getdents call).
		eof = n < len(r.dents)-512
		if dst == nil {
			count := 0
			forEachDirent(r.dents[:n], func([]byte, byte) { count++ })
			dst = make([]FD, 0, count)
		}
		forEachDirent(r.dents[:n], func(name []byte, _ byte) {
			if walkErr != nil {
				return
			}
			num, ok := atoiBytes(name)
			if !ok {
				return
			}
			// name is NUL-terminated inside the dirent record, so &name[0]
			// can be passed to the kernel as is.
			ln, err := readlinkatZ(fdDir, &name[0], r.link)
			if err != nil {
				if !IsGone(err) {
					walkErr = fmt.Errorf("readlink fd %d of pid %d: %w", num, pid, err)
				}
				return
			}
			target := r.link[:ln]
			var mode uint32
			var ino uint64
			// Paths and memfds are stat'ed for their inode: memfds are
			// what fd stores hold, joined by inode with the manager's.
			if len(target) > 0 && target[0] == '/' && !r.noPathStat {
				var st unix.Stat_t
				if err := fstatatZ(fdDir, &name[0], &st); err == nil {
					mode, ino = st.Mode, st.Ino
				}
			}
			kind, linkIno, fname := parseFDTarget(target, mode)
			if linkIno != 0 {
				ino = linkIno
			}
			fd := FD{Num: num, Kind: kind, Target: internTarget(kind, target), Inode: ino, Name: fname}
			if withInfo {
				if b, err := r.readAt(infoDir, string(name)); err == nil {
					if fi, err := parseFDInfo(b); err == nil {
						fd.Info = &fi
					}
				} else if !IsGone(err) {
					walkErr = fmt.Errorf("read fdinfo %d of pid %d: %w", num, pid, err)
					return
				}
			}
			dst = append(dst, fd)
		})
		if walkErr != nil {
			return dst, walkErr
		}
	}
	slices.SortFunc(dst[start:], func(a, b FD) int { return a.Num - b.Num })
	return dst, nil
}

// Common anon-inode targets are shared rather than allocated per descriptor.
var internedTargets = map[string]string{}

func init() {
	for _, s := range []string{"anon_inode:[eventfd]", "anon_inode:[timerfd]", "anon_inode:[signalfd]",
		"anon_inode:[eventpoll]", "anon_inode:inotify", "anon_inode:[pidfd]", "/dev/null", "/dev/pts/0"} {
		internedTargets[s] = s
	}
}

func internTarget(kind FDKind, b []byte) string {
	if s, ok := internedTargets[string(b)]; ok {
		return s
	}
	return string(b)
}
