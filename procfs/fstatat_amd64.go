package procfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatatZ is fstatat(2) following links, on a NUL-terminated name.
func fstatatZ(dirfd int, nameZ *byte, st *unix.Stat_t) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(nameZ)),
			uintptr(unsafe.Pointer(st)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
