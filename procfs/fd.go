package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FDKind classifies what a descriptor refers to.
type FDKind uint8

// Descriptor kinds.
const (
	KindOther    FDKind = iota // anything not listed below (namespace files, unknown links)
	KindSocket                 // socket:[INODE]
	KindPipe                   // pipe:[INODE]
	KindFIFO                   // named pipe opened by path
	KindFile                   // regular file
	KindDir                    // directory
	KindDevice                 // character or block device
	KindMemfd                  // memfd_create(2) file, Name is the memfd name
	KindEventfd                // anon_inode:[eventfd]
	KindTimerfd                // anon_inode:[timerfd]
	KindSignalfd               // anon_inode:[signalfd]
	KindEpoll                  // anon_inode:[eventpoll]
	KindInotify                // anon_inode:inotify
	KindPidfd                  // anon_inode:[pidfd] or pidfd:[INODE]
	KindAnon                   // any other anon_inode (fanotify, io_uring, bpf, ...)
	KindDeleted                // a file deleted after it was opened
)

var kindNames = [...]string{
	KindOther: "other", KindSocket: "socket", KindPipe: "pipe", KindFIFO: "fifo",
	KindFile: "file", KindDir: "dir", KindDevice: "device", KindMemfd: "memfd",
	KindEventfd: "eventfd", KindTimerfd: "timerfd", KindSignalfd: "signalfd",
	KindEpoll: "epoll", KindInotify: "inotify", KindPidfd: "pidfd", KindAnon: "anon",
	KindDeleted: "deleted",
}

// String returns the kind's short lower-case name, e.g. "socket".
func (k FDKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "FDKind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText encodes the kind as its name.
func (k FDKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// FD is one open descriptor of a process.
type FD struct {
	// Num is the descriptor number.
	Num int
	// Kind is what the descriptor refers to.
	Kind FDKind
	// Target is the raw /proc/PID/fd/N link text.
	Target string
	// Inode is the socket or pipe inode (from the link), or the file's inode
	// for path targets when it could be read; 0 otherwise.
	Inode uint64
	// Name is the path of a file, FIFO, directory, device or deleted file
	// (without " (deleted)"), the memfd name, or the anon inode type.
	Name string
	// Info is the fdinfo (flags, position), read only on request.
	Info *FDInfo
}

// FDInfo is the content of /proc/PID/fdinfo/N that fdtop uses.
type FDInfo struct {
	// Pos is the file offset.
	Pos int64
	// Flags are the open(2) flags (O_RDWR, O_NONBLOCK, O_CLOEXEC, ...).
	Flags uint32
	// MntID is the mount id of the file.
	MntID int
	// Ino is the inode number, when the kernel reports it (≥ 5.14).
	Ino uint64
}

// parseFDTarget classifies a descriptor from its link text and, for path
// targets, the file mode from stat (0 if unknown). It returns kind, inode
// (for socket: and pipe: links) and name.
func parseFDTarget(target []byte, mode uint32) (FDKind, uint64, string) {
	switch {
	case bytes.HasPrefix(target, []byte("socket:[")):
		if ino, ok := bracketInode(target[len("socket:"):]); ok {
			return KindSocket, ino, ""
		}
	case bytes.HasPrefix(target, []byte("pipe:[")):
		if ino, ok := bracketInode(target[len("pipe:"):]); ok {
			return KindPipe, ino, ""
		}
	case bytes.HasPrefix(target, []byte("anon_inode:")):
		name := target[len("anon_inode:"):]
		name = bytes.TrimSuffix(bytes.TrimPrefix(name, []byte("[")), []byte("]"))
		switch string(name) {
		case "eventfd":
			return KindEventfd, 0, "eventfd"
		case "timerfd":
			return KindTimerfd, 0, "timerfd"
		case "signalfd":
			return KindSignalfd, 0, "signalfd"
		case "eventpoll":
			return KindEpoll, 0, "eventpoll"
		case "inotify":
			return KindInotify, 0, "inotify"
		case "pidfd":
			return KindPidfd, 0, "pidfd"
		}
		return KindAnon, 0, string(name)
	case bytes.HasPrefix(target, []byte("pidfd:[")):
		ino, _ := bracketInode(target[len("pidfd:"):])
		return KindPidfd, ino, "pidfd"
	case bytes.HasPrefix(target, []byte("/memfd:")):
		name := bytes.TrimSuffix(target[len("/memfd:"):], []byte(" (deleted)"))
		return KindMemfd, 0, string(name)
	case len(target) > 0 && target[0] == '/':
		if bytes.HasSuffix(target, []byte(" (deleted)")) {
			return KindDeleted, 0, string(bytes.TrimSuffix(target, []byte(" (deleted)")))
		}
		name := string(target)
		switch mode & unix.S_IFMT {
		case unix.S_IFIFO:
			return KindFIFO, 0, name
		case unix.S_IFDIR:
			return KindDir, 0, name
		case unix.S_IFCHR, unix.S_IFBLK:
			return KindDevice, 0, name
		case unix.S_IFSOCK:
			return KindSocket, 0, name
		case unix.S_IFREG:
			return KindFile, 0, name
		}
		if mode == 0 && strings.HasPrefix(name, "/dev/") {
			return KindDevice, 0, name
		}
		return KindFile, 0, name
	}
	return KindOther, 0, ""
}

// bracketInode parses "[123]".
func bracketInode(b []byte) (uint64, bool) {
	if len(b) < 3 || b[0] != '[' || b[len(b)-1] != ']' {
		return 0, false
	}
	var n uint64
	for _, c := range b[1 : len(b)-1] {
		if c < '0' || c > '9' || n > (1<<64-1)/10-1 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseFDInfo parses /proc/PID/fdinfo/N.
func parseFDInfo(b []byte) (FDInfo, error) {
	var fi FDInfo
	var seenPos, seenFlags bool
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "pos":
			fi.Pos, err = strconv.ParseInt(val, 10, 64)
			seenPos = true
		case "flags":
			var v uint64
			v, err = strconv.ParseUint(val, 8, 32)
			fi.Flags = uint32(v)
			seenFlags = true
		case "mnt_id":
			fi.MntID, err = strconv.Atoi(val)
		case "ino":
			fi.Ino, err = strconv.ParseUint(val, 10, 64)
		}
		if err != nil {
			return FDInfo{}, fmt.Errorf("fdinfo %s: %w", key, err)
		}
	}
	if !seenPos || !seenFlags {
		return FDInfo{}, errors.New("fdinfo: no pos or flags")
	}
	return fi, nil
}

// forEachDirent calls fn for each entry of a getdents64 buffer except "." and
// "..". name aliases buf and is followed by a NUL byte in buf.
func forEachDirent(buf []byte, fn func(name []byte, typ byte)) {
	for len(buf) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < 19 || reclen > len(buf) {
			return
		}
		typ := buf[18]
		name := buf[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
			fn(name, typ)
		}
		buf = buf[reclen:]
	}
}

// readlinkatZ is readlinkat(2) on a NUL-terminated name (such as a name in a
// getdents64 buffer), so that nothing is allocated per call.
func readlinkatZ(dirfd int, nameZ *byte, buf []byte) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(nameZ)),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// FDs reads the descriptors of one process, with fdinfo if withInfo.
func (p FS) FDs(pid int, withInfo bool) ([]FD, error) {
	r := newProcReader(p)
	dirfd, err := unix.Open(p.path(strconv.Itoa(pid)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p.path(strconv.Itoa(pid)), err)
	}
	defer unix.Close(dirfd)
	return r.readFDs(pid, dirfd, withInfo, nil)
}

// SocketInode returns the inode of the socket that descriptor fd of pid
// refers to now, 0 when it is not a socket: one readlink, to tell whether a
// connection is still where it was last read. The error wraps the
// readlink's (IsGone when the process or descriptor is gone).
func (p FS) SocketInode(pid, fd int) (uint64, error) {
	path := p.path(strconv.Itoa(pid), "fd", strconv.Itoa(fd))
	var buf [64]byte
	n, err := unix.Readlink(path, buf[:])
	if err != nil {
		return 0, fmt.Errorf("readlink %s: %w", path, err)
	}
	if kind, ino, _ := parseFDTarget(buf[:n], 0); kind == KindSocket {
		return ino, nil
	}
	return 0, nil
}

// SocketInodes returns the inodes of the sockets pid holds now (one
// readlink per descriptor), to tell whether a process's sockets changed
// since it was last read when its descriptor count moved.
func (p FS) SocketInodes(pid int) (map[uint64]bool, error) {
	fds, err := p.FDs(pid, false)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, f := range fds {
		if f.Kind == KindSocket && f.Inode != 0 {
			out[f.Inode] = true
		}
	}
	return out, nil
}

// FDInfo reads /proc/PID/fdinfo/N.
func (p FS) FDInfo(pid, fd int) (FDInfo, error) {
	path := p.path(strconv.Itoa(pid), "fdinfo", strconv.Itoa(fd))
	b, err := readSmall(path, make([]byte, 0, 1024))
	if err != nil {
		return FDInfo{}, fmt.Errorf("read fdinfo %d of pid %d: %w", fd, pid, err)
	}
	fi, err := parseFDInfo(b)
	if err != nil {
		return FDInfo{}, fmt.Errorf("parse fdinfo %d of pid %d: %w", fd, pid, err)
	}
	return fi, nil
}
