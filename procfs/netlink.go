package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// NetlinkInfo is what the kernel says of a netlink socket in
// /proc/PID/net/netlink.
type NetlinkInfo struct {
	// Protocol is the netlink protocol (NETLINK_ROUTE 0, NETLINK_AUDIT 9,
	// NETLINK_KOBJECT_UEVENT 15, ...).
	Protocol int
	// Groups is the socket's multicast group mask (its first 32 groups),
	// what systemd binds a Listen=Netlink socket's group number to.
	Groups uint32
}

// netlinkProtocols are systemd's names of the netlink protocols (its
// netlink_family table, as ListenNetlink= takes them and Listen prints
// them) with the kernel's numbers.
var netlinkProtocols = map[string]int{
	"route": 0, "firewall": 3, "inet-diag": 4, "nflog": 5, "xfrm": 6, "selinux": 7,
	"iscsi": 8, "audit": 9, "fib-lookup": 10, "connector": 11, "netfilter": 12,
	"ip6-fw": 13, "dnrtmsg": 14, "kobject-uevent": 15, "generic": 16,
	"scsitransport": 18, "ecryptfs": 19, "rdma": 20, "crypto": 21,
}

// ParseNetlinkAddress parses a Listen=Netlink address as systemd prints it,
// "FAMILY [GROUP]" ("kobject-uevent 1", "audit 1", "route 0"); FAMILY may
// also be a number.
func ParseNetlinkAddress(addr string) (NetlinkInfo, error) {
	f := bytes.Fields([]byte(addr))
	if len(f) == 0 || len(f) > 2 {
		return NetlinkInfo{}, fmt.Errorf("netlink address %q: want FAMILY [GROUP]", addr)
	}
	proto, ok := netlinkProtocols[string(f[0])]
	if !ok {
		n, err := strconv.Atoi(string(f[0]))
		if err != nil || n < 0 {
			return NetlinkInfo{}, fmt.Errorf("netlink address %q: unknown family %q", addr, f[0])
		}
		proto = n
	}
	var group uint64
	if len(f) == 2 {
		g, err := strconv.ParseUint(string(f[1]), 10, 32)
		if err != nil {
			return NetlinkInfo{}, fmt.Errorf("netlink address %q: group: %w", addr, err)
		}
		group = g
	}
	return NetlinkInfo{Protocol: proto, Groups: uint32(group)}, nil
}

// parseProcNetNetlink parses /proc/net/netlink ("sk Eth Pid Groups Rmem
// Wmem Dump Locks Drops Inode"), calling fn for each socket with an inode.
func parseProcNetNetlink(b []byte, fn func(inode uint64, info NetlinkInfo)) error {
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if i == 0 || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 10 {
			return fmt.Errorf("line %d: %d fields", i+1, len(f))
		}
		proto, err1 := strconv.Atoi(string(f[1]))
		groups, err2 := strconv.ParseUint(string(f[3]), 16, 32)
		inode, err3 := strconv.ParseUint(string(f[len(f)-1]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("line %d: %q", i+1, line)
		}
		if inode != 0 {
			fn(inode, NetlinkInfo{Protocol: proto, Groups: uint32(groups)})
		}
	}
	return nil
}
