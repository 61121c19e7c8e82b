package dbusclient

import (
	"strings"

	"github.com/fdtop/fdtop/internal/cescape"
)

// UnixName returns the name the kernel reports for a unix socket listener:
// its path, or its abstract name without the leading "@" (abstract set).
// systemd prints both C-escaped ("/run/\303\274.sock" for /run/ü.sock,
// "back\\slash", "@name\000with-nul"); UnixName decodes them to the exact
// bytes, which may hold NULs and need not be UTF-8. ok is false for other
// listeners (inet, netlink, FIFOs, whose path systemd prints unescaped) and
// for an address that does not decode.
func (l Listener) UnixName() (name string, abstract, ok bool) {
	switch l.Type {
	case "Stream", "Datagram", "SequentialPacket":
	default:
		return "", false, false
	}
	addr, abstract := strings.CutPrefix(l.Address, "@")
	if !abstract && !strings.HasPrefix(addr, "/") {
		return "", false, false
	}
	name, err := cescape.Unescape(addr)
	if err != nil {
		return "", false, false
	}
	return name, abstract, true
}
