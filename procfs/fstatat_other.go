//go:build !amd64

package procfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatatZ is fstatat(2) following links, on a NUL-terminated name.
func fstatatZ(dirfd int, nameZ *byte, st *unix.Stat_t) error {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(nameZ), n)) != 0 {
		n++
	}
	return unix.Fstatat(dirfd, string(unsafe.Slice(nameZ, n)), st, 0)
}
