// Package procfs is the kernel side of fdtop: which process holds which file
// descriptor, what each descriptor is, and, for sockets, the connection behind it.
//
// An FS is rooted at a directory: "/proc" in production, a committed fixture tree
// in tests. Reading (readX) is kept apart from pure parsing (parseX), and socket
// details come from NETLINK_SOCK_DIAG with a /proc/net fallback. Processes and
// descriptors that vanish mid-scan are skipped (see IsGone); processes that cannot
// be read are counted, never fatal.
package procfs
