package procfs

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func diff[T any](t *testing.T, want, got T) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("mismatch (-want +got):\n- %#v\n+ %#v", want, got)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{"plain", "42 (bash) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n",
			procStat{PID: 42, Comm: "bash", PPID: 1, Flags: 4194560, StartTime: 777}, false},
		{"comm with parens and spaces", "7 (a) b (c)) R 3 7 7 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0",
			procStat{PID: 7, Comm: "a) b (c)", PPID: 3, Flags: 2129984, StartTime: 9}, false},
		{"truncated", "7 (x) R 3 7", procStat{}, true},
		{"no comm", "7 x R 3", procStat{}, true},
		{"bad pid", "x (y) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 1", procStat{}, true},
		{"empty", "", procStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				diff(t, tt.want, got)
			}
		})
	}
}

func TestParseStatusUID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint32
		wantErr bool
	}{
		{"uid", "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\n", 1000, false},
		{"missing", "Name:\tx\n", 0, true},
		{"bad", "Uid:\tx\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusUID([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %d, %v; want %d, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"args", "/bin/x\x00-a\x00b c\x00", []string{"/bin/x", "-a", "b c"}},
		{"rewritten", "nginx: master process", []string{"nginx: master process"}},
		{"empty arg", "a\x00\x00b\x00", []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { diff(t, tt.want, parseCmdline([]byte(tt.in))) })
	}
}

func TestParseCgroupAndUnit(t *testing.T) {
	tests := []struct {
		name           string
		in             string
		path, unit, uu string
	}{
		{"v2 service", "0::/system.slice/nginx.service\n", "/system.slice/nginx.service", "nginx.service", ""},
		{"hybrid prefers name=systemd", "12:name=systemd:/system.slice/a.service\n4:memory:/x\n0::/system.slice/b.service\n",
			"/system.slice/a.service", "a.service", ""},
		{"init scope", "0::/init.scope\n", "/init.scope", "init.scope", ""},
		{"user unit", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/web.service\n",
			"/user.slice/user-1000.slice/user@1000.service/app.slice/web.service", "user@1000.service", "web.service"},
		{"user manager itself", "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
			"/user.slice/user-1000.slice/user@1000.service/init.scope", "user@1000.service", "init.scope"},
		{"session scope", "0::/user.slice/user-0.slice/session-3.scope\n", "/user.slice/user-0.slice/session-3.scope", "session-3.scope", ""},
		{"delegated subgroup", "0::/system.slice/docker.service/sub/x\n", "/system.slice/docker.service/sub/x", "docker.service", ""},
		{"root", "0::/\n", "/", "", ""},
		{"escaped", `0::/system.slice/system-getty.slice/getty@tty1.service` + "\n",
			"/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", ""},
		{"garbage", "nonsense\n::\n", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := parseCgroup([]byte(tt.in)).Path(HierarchyUnknown)
			unit, uu := unitFromCgroup(path)
			diff(t, [3]string{tt.path, tt.unit, tt.uu}, [3]string{path, unit, uu})
		})
	}
}

func TestParseNSLink(t *testing.T) {
	if got, err := parseNSLink([]byte("net:[4026531840]")); err != nil || got != 4026531840 {
		t.Fatalf("got %d, %v", got, err)
	}
	for _, bad := range []string{"", "net:", "net:[x]", "net:[1"} {
		if _, err := parseNSLink([]byte(bad)); err == nil {
			t.Errorf("parseNSLink(%q): no error", bad)
		}
	}
}

func TestParseBootTime(t *testing.T) {
	got, err := parseBootTime([]byte("cpu 1 2\nbtime 1700000000\n"))
	if err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseBootTime([]byte("cpu 1\n")); err == nil {
		t.Fatal("no error without btime")
	}
}

func TestParseFDTarget(t *testing.T) {
	tests := []struct {
		target string
		mode   uint32
		kind   FDKind
		ino    uint64
		name   string
	}{
		{"socket:[12345]", 0, KindSocket, 12345, ""},
		{"pipe:[77]", 0, KindPipe, 77, ""},
		{"/tmp/fifo", unix.S_IFIFO | 0o600, KindFIFO, 0, "/tmp/fifo"},
		{"/etc/passwd", unix.S_IFREG | 0o644, KindFile, 0, "/etc/passwd"},
		{"/var", unix.S_IFDIR | 0o755, KindDir, 0, "/var"},
		{"/dev/null", unix.S_IFCHR | 0o666, KindDevice, 0, "/dev/null"},
		{"/dev/sda", unix.S_IFBLK | 0o660, KindDevice, 0, "/dev/sda"},
		{"/dev/pts/3", 0, KindDevice, 0, "/dev/pts/3"},
		{"/memfd:hstate (deleted)", 0, KindMemfd, 0, "hstate"},
		{"/memfd:with space (deleted)", 0, KindMemfd, 0, "with space"},
		{"anon_inode:[eventfd]", 0, KindEventfd, 0, "eventfd"},
		{"anon_inode:[timerfd]", 0, KindTimerfd, 0, "timerfd"},
		{"anon_inode:[signalfd]", 0, KindSignalfd, 0, "signalfd"},
		{"anon_inode:[eventpoll]", 0, KindEpoll, 0, "eventpoll"},
		{"anon_inode:inotify", 0, KindInotify, 0, "inotify"},
		{"anon_inode:[pidfd]", 0, KindPidfd, 0, "pidfd"},
		{"pidfd:[9001]", 0, KindPidfd, 9001, "pidfd"},
		{"anon_inode:[io_uring]", 0, KindAnon, 0, "io_uring"},
		{"anon_inode:bpf-map", 0, KindAnon, 0, "bpf-map"},
		{"/var/log/x.log (deleted)", 0, KindDeleted, 0, "/var/log/x.log"},
		{"net:[4026531840]", 0, KindOther, 0, ""},
		{"socket:[notanumber]", 0, KindOther, 0, ""},
		{"", 0, KindOther, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			kind, ino, name := parseFDTarget([]byte(tt.target), tt.mode)
			if kind != tt.kind || ino != tt.ino || name != tt.name {
				t.Errorf("got (%v, %d, %q), want (%v, %d, %q)", kind, ino, name, tt.kind, tt.ino, tt.name)
			}
		})
	}
}

func TestParseFDInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    FDInfo
		wantErr bool
	}{
		{"file", "pos:\t42\nflags:\t0100002\nmnt_id:\t25\nino:\t1234\n", FDInfo{Pos: 42, Flags: 0o100002, MntID: 25, Ino: 1234}, false},
		{"eventfd extras", "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\neventfd-count:                0\neventfd-id: 2\n", FDInfo{Flags: 2, MntID: 15, Ino: 1057}, false},
		{"old kernel", "pos:\t0\nflags:\t02000000\n", FDInfo{Flags: 0o2000000}, false},
		{"bad flags", "pos:\t0\nflags:\t9\n", FDInfo{}, true},
		{"empty", "", FDInfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFDInfo([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			diff(t, tt.want, got)
		})
	}
}

func TestParseHandoffEnv(t *testing.T) {
	tests := []struct {
		name string
		in   string
		pid  int
		want *HandoffEnv
	}{
		{"none", "PATH=/bin\x00HOME=/\x00", 5, nil},
		{"named", "A=1\x00LISTEN_PID=5\x00LISTEN_FDS=2\x00LISTEN_FDNAMES=web.socket:stored\x00LISTEN_PIDFDID=99\x00SECRET=x\x00", 5,
			&HandoffEnv{ListenPID: 5, ListenFDs: 2, Names: []string{"web.socket", "stored"}, PidFDID: 99,
				Passed: []PassedFD{{3, "web.socket"}, {4, "stored"}}, ForThisProcess: true}},
		{"inherited, unnamed", "LISTEN_PID=4\x00LISTEN_FDS=1\x00", 5,
			&HandoffEnv{ListenPID: 4, ListenFDs: 1, Passed: []PassedFD{{3, ""}}}},
		{"fewer names than fds", "LISTEN_PID=5\x00LISTEN_FDS=2\x00LISTEN_FDNAMES=a\x00", 5,
			&HandoffEnv{ListenPID: 5, ListenFDs: 2, Names: []string{"a"}, Passed: []PassedFD{{3, "a"}, {4, ""}}, ForThisProcess: true}},
		{"absurd count ignored", "LISTEN_PID=5\x00LISTEN_FDS=99999999\x00", 5,
			&HandoffEnv{ListenPID: 5, Passed: []PassedFD{}, ForThisProcess: true}},
		{"no trailing NUL", "LISTEN_FDS=1", 0, &HandoffEnv{ListenFDs: 1, Passed: []PassedFD{{3, ""}}}},
		{"lookalike", "XLISTEN_PID=5\x00LISTEN_PIDX=3\x00", 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { diff(t, tt.want, parseHandoffEnv([]byte(tt.in), tt.pid)) })
	}
}

func TestParseHexAddrPort(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0000", "0.0.0.0:0"},
		{"00000000000000000000000001000000:0050", "[::1]:80"},
		{"0000000000000000FFFF00000100007F:01BB", "[::ffff:127.0.0.1]:443"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseHexAddrPort([]byte(tt.in))
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "1:2", "0100007F", "0100007G:0050", "0100007F:10000"} {
		if _, err := parseHexAddrPort([]byte(bad)); err == nil {
			t.Errorf("parseHexAddrPort(%q): no error", bad)
		}
	}
}

func TestParseProcNetInet(t *testing.T) {
	in := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 5001 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:1F90 0100007F:C350 01 00000010:00000000 00:00000000 00000000   998        0 5002 1 0\n" +
		"   2: 0100007F:1F91 0100007F:C351 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n"
	var got []Socket
	if err := parseProcNetInet([]byte(in), FamilyInet, ProtoTCP, func(s Socket) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Inode: 5001, Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateListen,
			Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), RecvQ: 3},
		{Inode: 5002, Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished,
			Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("127.0.0.1:50000"), SendQ: 16, UID: 998},
	}
	diff(t, want, got)
	if err := parseProcNetInet([]byte("hdr\n 0: short\n"), FamilyInet, ProtoTCP, func(Socket) {}); err == nil {
		t.Error("short line: no error")
	}
}

func TestParseProcNetUnix(t *testing.T) {
	in := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 6001 /run/demo.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 6002\n" +
		"0000000000000000: 00000002 00000000 00010000 0005 01 6004 @fdtop@abs\nname\n" +
		"0000000000000000: 00000002 00000000 00000000 0002 01 6005 /run/dgram.sock\n"
	var got []Socket
	if err := parseProcNetUnix([]byte(in), func(s Socket) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Inode: 6001, Family: FamilyUnix, Type: TypeStream, State: StateListen, Path: "/run/demo.sock"},
		{Inode: 6002, Family: FamilyUnix, Type: TypeStream, State: StateEstablished},
		{Inode: 6004, Family: FamilyUnix, Type: TypeSeqPacket, State: StateListen, Path: "fdtop@abs\nname", Abstract: true},
		{Inode: 6005, Family: FamilyUnix, Type: TypeDgram, State: StateClose, Path: "/run/dgram.sock"},
	}
	diff(t, want, got)
}

// inetDiagMsg builds an inet_diag_msg for tests and fuzz seeds.
func inetDiagMsg(family byte, state byte, local, remote netip.AddrPort, rq, wq, uid, ino uint32, cookie uint64) []byte {
	b := make([]byte, inetDiagMsgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:], local.Port())
	binary.BigEndian.PutUint16(b[6:], remote.Port())
	if family == unix.AF_INET {
		l, r := local.Addr().As4(), remote.Addr().As4()
		copy(b[8:], l[:])
		copy(b[24:], r[:])
	} else {
		l, r := local.Addr().As16(), remote.Addr().As16()
		copy(b[8:], l[:])
		copy(b[24:], r[:])
	}
	binary.NativeEndian.PutUint32(b[44:], uint32(cookie))
	binary.NativeEndian.PutUint32(b[48:], uint32(cookie>>32))
	binary.NativeEndian.PutUint32(b[56:], rq)
	binary.NativeEndian.PutUint32(b[60:], wq)
	binary.NativeEndian.PutUint32(b[64:], uid)
	binary.NativeEndian.PutUint32(b[68:], ino)
	return b
}

// unixDiagMsg builds a unix_diag_msg with NAME, PEER and RQLEN attributes.
func unixDiagMsg(typ, state byte, ino uint32, name []byte, peer uint32, rq, wq uint32) []byte {
	b := make([]byte, unixDiagMsgLen)
	b[0], b[1], b[2] = unix.AF_UNIX, typ, state
	binary.NativeEndian.PutUint32(b[4:], ino)
	attr := func(typ uint16, v []byte) {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	if name != nil {
		attr(unixDiagName, name)
	}
	attr(unixDiagPeer, binary.NativeEndian.AppendUint32(nil, peer))
	attr(unixDiagRQLen, binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, rq), wq))
	return b
}

func TestParseInetDiagMsg(t *testing.T) {
	l4, r4 := netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("10.0.0.2:50000")
	l6 := netip.MustParseAddrPort("[::1]:443")
	tests := []struct {
		name    string
		in      []byte
		proto   Proto
		want    Socket
		wantErr bool
	}{
		{"tcp4 listener", inetDiagMsg(unix.AF_INET, 10, l4, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 5, 128, 0, 77, 3), ProtoTCP,
			Socket{Inode: 77, Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateListen, Local: l4,
				Remote: netip.MustParseAddrPort("0.0.0.0:0"), RecvQ: 5, SendQ: 128, Cookie: 3}, false},
		{"tcp4 established", inetDiagMsg(unix.AF_INET, 1, l4, r4, 0, 10, 1000, 78, 1<<40), ProtoTCP,
			Socket{Inode: 78, Family: FamilyInet, Proto: ProtoTCP, Type: TypeStream, State: StateEstablished, Local: l4, Remote: r4,
				SendQ: 10, UID: 1000, Cookie: 1 << 40}, false},
		{"udp6", inetDiagMsg(unix.AF_INET6, 7, l6, netip.MustParseAddrPort("[::]:0"), 0, 0, 0, 79, 0), ProtoUDP,
			Socket{Inode: 79, Family: FamilyInet6, Proto: ProtoUDP, Type: TypeDgram, State: StateClose, Local: l6,
				Remote: netip.MustParseAddrPort("[::]:0")}, false},
		{"short", make([]byte, 10), ProtoTCP, Socket{}, true},
		{"bad family", make([]byte, inetDiagMsgLen), ProtoTCP, Socket{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInetDiagMsg(tt.in, tt.proto)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			diff(t, tt.want, got)
		})
	}
}

func TestParseUnixDiagMsg(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Socket
		wantErr bool
	}{
		{"path listener", unixDiagMsg(1, 10, 5, []byte("/run/x.sock"), 0, 2, 128),
			Socket{Inode: 5, Family: FamilyUnix, Type: TypeStream, State: StateListen, Path: "/run/x.sock", RecvQ: 2, SendQ: 128}, false},
		{"abstract with NUL and newline", unixDiagMsg(5, 1, 6, []byte("\x00a\x00b\nc"), 9, 0, 0),
			Socket{Inode: 6, Family: FamilyUnix, Type: TypeSeqPacket, State: StateEstablished, Path: "a\x00b\nc", Abstract: true, PeerInode: 9}, false},
		{"unnamed pair", unixDiagMsg(1, 1, 7, nil, 8, 0, 0),
			Socket{Inode: 7, Family: FamilyUnix, Type: TypeStream, State: StateEstablished, PeerInode: 8}, false},
		{"short", make([]byte, 3), Socket{}, true},
		{"bad attr", append(unixDiagMsg(1, 1, 7, nil, 8, 0, 0), 0xff, 0xff, 0, 0), Socket{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUnixDiagMsg(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tt.wantErr {
				diff(t, tt.want, got)
			}
		})
	}
}

func TestParseNetlinkMessages(t *testing.T) {
	var b []byte
	b = appendNlHdr(b, 3, unix.NLM_F_MULTI, 7)
	b = append(b, 1, 2, 3, 0) // payload padded to 4
	b = appendNlHdr(b, 4, unix.NLM_F_DUMP_INTR, 8)
	b = binary.NativeEndian.AppendUint32(b, 0)
	var got []nlMsg
	if err := parseNetlinkMessages(b, func(m nlMsg) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []nlMsg{
		{Type: sockDiagByFamily, Flags: unix.NLM_F_MULTI, Seq: 7, Payload: []byte{1, 2, 3}},
		{Type: sockDiagByFamily, Flags: unix.NLM_F_DUMP_INTR, Seq: 8, Payload: []byte{0, 0, 0, 0}},
	}
	diff(t, want, got)
	bad := binary.NativeEndian.AppendUint32(nil, 1000)
	bad = append(bad, make([]byte, 12)...)
	if err := parseNetlinkMessages(bad, func(nlMsg) error { return nil }); err == nil {
		t.Error("overlong message: no error")
	}
	if errno, err := parseNetlinkError(binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe))); err != nil || errno != unix.ENOENT {
		t.Errorf("parseNetlinkError = %v, %v", errno, err)
	}
}

// TestProtoNameFamily: the socket protocol names the kernel gives
// (system.sockprotoname) map to the sock_diag table that holds them.
func TestProtoNameFamily(t *testing.T) {
	tests := []struct {
		name   string
		family Family
		proto  Proto
	}{
		{"TCP", FamilyInet, ProtoTCP},
		{"TCPv6", FamilyInet6, ProtoTCP},
		{"MPTCP", FamilyInet, ProtoTCP}, // its first subflow, same inode
		{"MPTCPv6", FamilyInet6, ProtoTCP},
		{"UDP", FamilyInet, ProtoUDP},
		{"UDPv6", FamilyInet6, ProtoUDP},
		{"UNIX-STREAM", FamilyUnix, 0},
		{"RAW", FamilyInet, 0},
		{"NETLINK", FamilyNetlink, 0},
	}
	for _, tt := range tests {
		f, p := protoNameFamily(tt.name)
		if f != tt.family || p != tt.proto {
			t.Errorf("protoNameFamily(%q) = %v, %v; want %v, %v", tt.name, f, p, tt.family, tt.proto)
		}
	}
}
