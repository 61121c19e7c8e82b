package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Message layouts of linux/inet_diag.h, linux/unix_diag.h and linux/sock_diag.h.
const (
	nlHdrLen         = unix.NLMSG_HDRLEN
	inetDiagReqLen   = 56 // inet_diag_req_v2
	inetDiagMsgLen   = 72 // inet_diag_msg
	unixDiagReqLen   = 24 // unix_diag_req
	unixDiagMsgLen   = 16 // unix_diag_msg
	sockDiagByFamily = unix.SOCK_DIAG_BY_FAMILY

	udiagShowName  = 0x01
	udiagShowPeer  = 0x04
	udiagShowRQLen = 0x10

	unixDiagName  = 0
	unixDiagPeer  = 2
	unixDiagRQLen = 4

	// diagBatch bounds exact lookups per sendmsg, so replies fit the
	// receive buffer.
	diagBatch = 256
)

// inetStates are the TCP states dumped: all but TIME-WAIT and the two
// SYN-RECV states, which belong to no descriptor (inode 0).
const inetStates = 0xffffffff &^ (1<<StateTimeWait | 1<<StateSynRecv | 1<<StateNewSynRecv)

// errDumpInterrupted is returned when the kernel flagged a dump with
// NLM_F_DUMP_INTR: the table changed during the dump and the data, which is
// kept, may be inconsistent.
var errDumpInterrupted = errors.New("sock_diag dump interrupted")

// nlMsg is one netlink message: header fields and payload.
type nlMsg struct {
	Type    uint16
	Flags   uint16
	Seq     uint32
	Payload []byte
}

// parseNetlinkMessages splits a buffer of netlink messages, calling fn for each.
func parseNetlinkMessages(b []byte, fn func(nlMsg) error) error {
	for len(b) >= nlHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlHdrLen || l > len(b) {
			return fmt.Errorf("netlink message length %d of %d bytes", l, len(b))
		}
		m := nlMsg{
			Type:    binary.NativeEndian.Uint16(b[4:6]),
			Flags:   binary.NativeEndian.Uint16(b[6:8]),
			Seq:     binary.NativeEndian.Uint32(b[8:12]),
			Payload: b[nlHdrLen:l],
		}
		if err := fn(m); err != nil {
			return err
		}
		al := (l + 3) &^ 3
		if al > len(b) {
			al = len(b)
		}
		b = b[al:]
	}
	return nil
}

// parseNetlinkError returns the errno of an NLMSG_ERROR payload (0 for an ACK).
func parseNetlinkError(p []byte) (unix.Errno, error) {
	if len(p) < 4 {
		return 0, errors.New("short netlink error message")
	}
	code := int32(binary.NativeEndian.Uint32(p[0:4]))
	if code > 0 {
		return 0, fmt.Errorf("netlink error code %d", code)
	}
	return unix.Errno(-code), nil
}

// parseInetDiagMsg decodes an inet_diag_msg (attributes are ignored).
func parseInetDiagMsg(p []byte, proto Proto) (Socket, error) {
	if len(p) < inetDiagMsgLen {
		return Socket{}, fmt.Errorf("inet_diag_msg: %d bytes", len(p))
	}
	fam := Family(p[0])
	s := Socket{Family: fam, Proto: proto, State: SockState(p[1]), Type: TypeStream}
	if proto == ProtoUDP {
		s.Type = TypeDgram
	}
	sport := binary.BigEndian.Uint16(p[4:6])
	dport := binary.BigEndian.Uint16(p[6:8])
	switch fam {
	case FamilyInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[24:28])), dport)
	case FamilyInet6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(p[24:40])), dport)
	default:
		return Socket{}, fmt.Errorf("inet_diag_msg: family %d", fam)
	}
	s.Cookie = uint64(binary.NativeEndian.Uint32(p[44:48])) | uint64(binary.NativeEndian.Uint32(p[48:52]))<<32
	s.RecvQ = binary.NativeEndian.Uint32(p[56:60])
	s.SendQ = binary.NativeEndian.Uint32(p[60:64])
	s.UID = binary.NativeEndian.Uint32(p[64:68])
	s.Inode = uint64(binary.NativeEndian.Uint32(p[68:72]))
	return s, nil
}

// parseUnixDiagMsg decodes a unix_diag_msg with its NAME, PEER and RQLEN attributes.
func parseUnixDiagMsg(p []byte) (Socket, error) {
	if len(p) < unixDiagMsgLen {
		return Socket{}, fmt.Errorf("unix_diag_msg: %d bytes", len(p))
	}
	if p[0] != unix.AF_UNIX {
		return Socket{}, fmt.Errorf("unix_diag_msg: family %d", p[0])
	}
	s := Socket{Family: FamilyUnix, Type: SockType(p[1]), State: SockState(p[2])}
	s.Inode = uint64(binary.NativeEndian.Uint32(p[4:8]))
	s.Cookie = uint64(binary.NativeEndian.Uint32(p[8:12])) | uint64(binary.NativeEndian.Uint32(p[12:16]))<<32
	attrs := p[unixDiagMsgLen:]
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) & 0x3fff
		if l < 4 || l > len(attrs) {
			return Socket{}, fmt.Errorf("unix_diag attribute length %d of %d bytes", l, len(attrs))
		}
		v := attrs[4:l]
		switch typ {
		case unixDiagName:
			if len(v) > 0 && v[0] == 0 {
				s.Abstract = true
				v = v[1:]
			} else if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i] // a path name: sun_path up to its NUL
			}
			s.Path = string(v)
		case unixDiagPeer:
			if len(v) >= 4 {
				s.PeerInode = uint64(binary.NativeEndian.Uint32(v))
			}
		case unixDiagRQLen:
			if len(v) >= 8 {
				s.RecvQ = binary.NativeEndian.Uint32(v[0:4])
				s.SendQ = binary.NativeEndian.Uint32(v[4:8])
			}
		}
		al := (l + 3) &^ 3
		if al > len(attrs) {
			al = len(attrs)
		}
		attrs = attrs[al:]
	}
	return s, nil
}

// appendNlHdr appends a netlink header for a payload of n bytes.
func appendNlHdr(b []byte, n int, flags uint16, seq uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(nlHdrLen+n))
	b = binary.NativeEndian.AppendUint16(b, sockDiagByFamily)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	return binary.NativeEndian.AppendUint32(b, 0)
}

// appendInetReq appends an inet_diag_req_v2. With a zero s it is a dump
// request; otherwise an exact lookup of s by its addresses and cookie.
func appendInetReq(b []byte, family Family, proto Proto, states uint32, s *Socket) []byte {
	b = append(b, byte(family), byte(proto), 0, 0)
	b = binary.NativeEndian.AppendUint32(b, states)
	var id [48]byte
	if s != nil {
		binary.BigEndian.PutUint16(id[0:2], s.Local.Port())
		binary.BigEndian.PutUint16(id[2:4], s.Remote.Port())
		la, ra := s.Local.Addr(), s.Remote.Addr()
		if family == FamilyInet {
			copy(id[4:8], addrBytes4(la))
			copy(id[20:24], addrBytes4(ra))
		} else {
			copy(id[4:20], addrBytes16(la))
			copy(id[20:36], addrBytes16(ra))
		}
		binary.NativeEndian.PutUint32(id[40:44], uint32(s.Cookie))
		binary.NativeEndian.PutUint32(id[44:48], uint32(s.Cookie>>32))
	} else {
		binary.NativeEndian.PutUint32(id[40:44], ^uint32(0)) // INET_DIAG_NOCOOKIE
		binary.NativeEndian.PutUint32(id[44:48], ^uint32(0))
	}
	return append(b, id[:]...)
}

// addrBytes4 is a's four bytes, or zeros for an address that is not IPv4
// (the zero Addr of a socket whose peer is unknown; As4 would panic).
func addrBytes4(a netip.Addr) []byte {
	if !a.Is4() && !a.Is4In6() {
		return make([]byte, 4)
	}
	b := a.As4()
	return b[:]
}

// addrBytes16 is a's sixteen bytes, or zeros for the zero Addr.
func addrBytes16(a netip.Addr) []byte {
	if !a.IsValid() {
		return make([]byte, 16)
	}
	b := a.As16()
	return b[:]
}

// appendUnixReq appends a unix_diag_req: a dump if ino is 0, else an exact lookup.
func appendUnixReq(b []byte, ino uint32) []byte {
	return appendUnixStatesReq(b, ino, 0xffffffff)
}

// appendUnixStatesReq appends a unix_diag_req for the sockets in the given
// states (a mask of 1<<SockState: the kernel skips the others before
// describing them).
func appendUnixStatesReq(b []byte, ino, states uint32) []byte {
	b = append(b, unix.AF_UNIX, 0, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, states)
	b = binary.NativeEndian.AppendUint32(b, ino)
	b = binary.NativeEndian.AppendUint32(b, udiagShowName|udiagShowPeer|udiagShowRQLen)
	return binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(b, ^uint32(0)), ^uint32(0))
}

// diagConn is a NETLINK_SOCK_DIAG socket, bound to the network namespace it
// was created in.
type diagConn struct {
	fd  int
	seq uint32
	buf []byte
	req []byte
}

// openDiag opens a sock_diag socket in the caller's network namespace.
func openDiag() (*diagConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind sock_diag socket: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	return &diagConn{fd: fd, buf: make([]byte, 64<<10), seq: uint32(os.Getpid()) << 8}, nil
}

// openDiagIn opens a sock_diag socket in the network namespace of nsPath
// (e.g. /proc/PID/ns/net). It enters the namespace on a locked OS thread that
// is never unlocked, so the thread exits with its goroutine and no other
// goroutine ever runs in the foreign namespace.
func openDiagIn(nsPath string) (*diagConn, error) {
	ch := make(chan diagResult, 1)
	go openDiagInThread(nsPath, ch)
	r := <-ch
	return r.c, r.err
}

type diagResult struct {
	c   *diagConn
	err error
}

// openDiagInThread locks its goroutine to a thread, enters nsPath there and
// opens a sock_diag socket. It never enters a namespace on the main thread:
// Go does not end the main thread when a goroutine exits locked to it (it
// parks it, still in the namespace entered), and /proc/self (hence
// /proc/net) describes the main thread, so every later scan would read and
// label the foreign namespace as the process's own. On the main thread it
// holds the thread while a nested call runs on another one, then releases
// the main thread unchanged.
func openDiagInThread(nsPath string, ch chan<- diagResult) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan diagResult, 1)
		// This thread is locked to us: the nested goroutine runs elsewhere.
		go openDiagInThread(nsPath, inner)
		r := <-inner
		runtime.UnlockOSThread()
		ch <- r
		return
	}
	// No UnlockOSThread: the thread dies with this goroutine.
	nsfd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ch <- diagResult{err: fmt.Errorf("open %s: %w", nsPath, err)}
		return
	}
	defer unix.Close(nsfd)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		ch <- diagResult{err: fmt.Errorf("setns %s: %w", nsPath, err)}
		return
	}
	c, err := openDiag()
	ch <- diagResult{c, err}
}

func (c *diagConn) Close() error { return unix.Close(c.fd) }

func (c *diagConn) send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

func (c *diagConn) recv() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c.buf[:n], nil
	}
}

// dump sends one dump request and calls fn with each reply payload until
// NLMSG_DONE. It returns errDumpInterrupted (after reading the whole dump)
// if the kernel flagged it as interrupted.
func (c *diagConn) dump(req []byte, seq uint32, fn func([]byte) error) error {
	if err := c.send(req); err != nil {
		return fmt.Errorf("send sock_diag request: %w", err)
	}
	intr := false
	for {
		b, err := c.recv()
		if err != nil {
			return fmt.Errorf("receive sock_diag reply: %w", err)
		}
		done := false
		var fnErr error
		err = parseNetlinkMessages(b, func(m nlMsg) error {
			if m.Seq != seq {
				return nil // a late reply to an earlier request
			}
			if m.Flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch m.Type {
			case unix.NLMSG_DONE:
				done = true
				if len(m.Payload) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Payload)); code < 0 {
						return fmt.Errorf("sock_diag dump: %w", unix.Errno(-code))
					}
				}
			case unix.NLMSG_ERROR:
				errno, err := parseNetlinkError(m.Payload)
				if err != nil {
					return err
				}
				done = true
				if errno != 0 {
					return fmt.Errorf("sock_diag dump: %w", errno)
				}
			case sockDiagByFamily:
				if fnErr == nil {
					fnErr = fn(m.Payload)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			if fnErr != nil {
				return fnErr
			}
			if intr {
				return errDumpInterrupted
			}
			return nil
		}
	}
}

// dumpInet dumps one inet table (family × protocol).
func (c *diagConn) dumpInet(family Family, proto Proto, fn func(Socket)) error {
	states := uint32(inetStates)
	if proto == ProtoUDP {
		states = 0xffffffff
	}
	return c.dumpInetStates(family, proto, states, nil, fn)
}

// dumpInetStates dumps the sockets of one inet table (family × protocol)
// in the given states (a mask of 1<<SockState) that the bytecode
// attribute bc keeps (every one for nil), and only those with a
// descriptor's inode.
func (c *diagConn) dumpInetStates(family Family, proto Proto, states uint32, bc []byte, fn func(Socket)) error {
	c.seq++
	c.req = appendInetReq(appendNlHdr(c.req[:0], inetDiagReqLen+len(bc), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.seq), family, proto, states, nil)
	c.req = append(c.req, bc...)
	return c.dump(c.req, c.seq, func(p []byte) error {
		s, err := parseInetDiagMsg(p, proto)
		if err != nil {
			return err
		}
		if s.Inode != 0 {
			fn(s)
		}
		return nil
	})
}

// dumpUnix dumps the unix socket table.
func (c *diagConn) dumpUnix(fn func(Socket)) error {
	return c.dumpUnixStates(0xffffffff, fn)
}

// dumpUnixStates dumps the unix sockets in the given states (a mask of
// 1<<SockState).
func (c *diagConn) dumpUnixStates(states uint32, fn func(Socket)) error {
	c.seq++
	c.req = appendUnixStatesReq(appendNlHdr(c.req[:0], unixDiagReqLen, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, c.seq), 0, states)
	return c.dump(c.req, c.seq, func(p []byte) error {
		s, err := parseUnixDiagMsg(p)
		if err != nil {
			return err
		}
		fn(s)
		return nil
	})
}

// exact sends lookups in batches (one sendmsg per batch, each request with
// NLM_F_ACK) and calls fn with every socket found. build appends request i.
// Lookups that fail (ENOENT: no such socket; ESTALE: cookie mismatch) are
// skipped.
func (c *diagConn) exact(n int, build func(b []byte, i int, seq uint32) []byte, parse func(i int, p []byte) error) error {
	for start := 0; start < n; start += diagBatch {
		end := min(start+diagBatch, n)
		base := c.seq + 1
		c.seq += uint32(end - start)
		c.req = c.req[:0]
		for i := start; i < end; i++ {
			c.req = build(c.req, i, base+uint32(i-start))
		}
		if err := c.send(c.req); err != nil {
			return fmt.Errorf("send sock_diag lookups: %w", err)
		}
		pending := end - start
		for pending > 0 {
			b, err := c.recv()
			if err != nil {
				return fmt.Errorf("receive sock_diag lookups: %w", err)
			}
			err = parseNetlinkMessages(b, func(m nlMsg) error {
				if m.Seq < base || m.Seq >= base+uint32(end-start) {
					return nil
				}
				i := start + int(m.Seq-base)
				switch m.Type {
				case unix.NLMSG_ERROR:
					pending--
					if _, err := parseNetlinkError(m.Payload); err != nil {
						return err
					}
				case sockDiagByFamily:
					return parse(i, m.Payload)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// lookupUnix looks up unix sockets by inode.
func (c *diagConn) lookupUnix(inodes []uint64, fn func(Socket)) error {
	return c.exact(len(inodes), func(b []byte, i int, seq uint32) []byte {
		return appendUnixReq(appendNlHdr(b, unixDiagReqLen, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq), uint32(inodes[i]))
	}, func(i int, p []byte) error {
		s, err := parseUnixDiagMsg(p)
		if err != nil {
			return err
		}
		fn(s)
		return nil
	})
}

// lookupInet refreshes known inet sockets by address and cookie.
func (c *diagConn) lookupInet(known []Socket, fn func(Socket)) error {
	return c.exact(len(known), func(b []byte, i int, seq uint32) []byte {
		s := &known[i]
		return appendInetReq(appendNlHdr(b, inetDiagReqLen, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq), s.Family, s.Proto, 0xffffffff, s)
	}, func(i int, p []byte) error {
		s, err := parseInetDiagMsg(p, known[i].Proto)
		if err != nil {
			return err
		}
		if s.Inode == known[i].Inode {
			fn(s)
		}
		return nil
	})
}
