package procfs

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzz targets check that parsers never panic and keep their invariants.
// Seed corpora are in testdata/fuzz/FuzzX; run one with
// go test -run '^$' -fuzz '^FuzzParseStat$' -fuzztime 10s ./procfs

// FuzzParseStat round-trips a stat line built from the fuzzed fields (comm
// may hold spaces, parentheses and newlines), and checks that a line parsed
// from raw bytes takes comm from between the first '(' and the last ')'.
func FuzzParseStat(f *testing.F) {
	f.Add(1, "systemd", 0, uint64(4194560), uint64(5), []byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"))
	f.Add(42, "a) (b", 1, uint64(0), uint64(1<<40), []byte("42 (a) (b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0 0"))
	f.Fuzz(func(t *testing.T, pid int, comm string, ppid int, flags, start uint64, raw []byte) {
		line := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, comm, ppid, flags, start)
		want := procStat{PID: pid, Comm: comm, PPID: ppid, Flags: flags, StartTime: start}
		if got, err := parseStat([]byte(line)); err != nil || got != want {
			t.Fatalf("parseStat(%q) = %+v, %v; want %+v", line, got, err, want)
		}
		s, err := parseStat(raw)
		if err != nil {
			return
		}
		open, closing := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if s.Comm != string(raw[open+1:closing]) {
			t.Fatalf("parseStat(%q): comm %q is not what lies between the first ( and the last )", raw, s.Comm)
		}
	})
}

// FuzzParseStatusUID round-trips a status file's real uid, and checks that
// a uid parsed from raw bytes is the first field of the first Uid: line.
func FuzzParseStatusUID(f *testing.F) {
	f.Add("x", uint32(0), []byte("Name:\tx\nUid:\t0\t0\t0\t0\n"))
	f.Add("a b", uint32(1<<32-1), []byte("Uid:\t007 1 1 1"))
	f.Fuzz(func(t *testing.T, name string, uid uint32, raw []byte) {
		name = strings.NewReplacer("\n", " ", "Uid:", "").Replace(name)
		st := fmt.Sprintf("Name:\t%s\nUmask:\t0022\nUid:\t%d\t%d\t%d\t%d\nGid:\t5\t5\t5\t5\n", name, uid, uid+1, uid, uid)
		if got, err := parseStatusUID([]byte(st)); err != nil || got != uid {
			t.Fatalf("parseStatusUID(%q) = %d, %v; want %d", st, got, err, uid)
		}
		v, err := parseStatusUID(raw)
		if err != nil {
			return
		}
		var first []byte
		for _, line := range bytes.Split(raw, []byte("\n")) {
			if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
				first = bytes.Fields(rest)[0]
				break
			}
		}
		if digits := strings.TrimLeft(string(first), "0"); digits != strconv.FormatUint(uint64(v), 10) && !(v == 0 && digits == "") {
			t.Fatalf("parseStatusUID(%q) = %d, but the first Uid: field is %q", raw, v, first)
		}
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("12:name=systemd:/system.slice/a.service\n0::/user.slice/user-1.slice/user@1.service/b.service\n"))
	f.Fuzz(func(t *testing.T, b []byte) { unitFromCgroup(parseCgroup(b).Path(HierarchyUnknown)) })
}

// FuzzParseCmdline checks the split is a round trip: the arguments hold
// no NUL and, joined with NUL, give back the input without its final NUL.
func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("/bin/x\x00-a\x00"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		args := parseCmdline(b)
		if len(b) == 0 {
			if args != nil {
				t.Fatalf("parseCmdline(empty) = %q, want nil", args)
			}
			return
		}
		for _, a := range args {
			if strings.IndexByte(a, 0) >= 0 {
				t.Fatalf("parseCmdline(%q): argument %q holds a NUL", b, a)
			}
		}
		if got, want := strings.Join(args, "\x00"), string(bytes.TrimSuffix(b, []byte{0})); got != want {
			t.Fatalf("parseCmdline(%q) = %q: joined %q, want %q", b, args, got, want)
		}
	})
}

func FuzzParseFDTarget(f *testing.F) {
	f.Add([]byte("socket:[123]"), uint32(0))
	f.Add([]byte("/memfd:x (deleted)"), uint32(0))
	f.Add([]byte("/tmp/f"), uint32(unix.S_IFIFO))
	f.Fuzz(func(t *testing.T, b []byte, mode uint32) {
		kind, ino, _ := parseFDTarget(b, mode)
		if ino != 0 && kind != KindSocket && kind != KindPipe && kind != KindPidfd {
			t.Fatalf("inode %d for kind %v", ino, kind)
		}
	})
}

// FuzzParseFDInfo round-trips the fields the kernel writes (flags in
// octal), and checks that raw bytes are accepted only with both a pos: and
// a flags: line.
func FuzzParseFDInfo(f *testing.F) {
	f.Add(int64(0), uint32(2), 1, uint64(2), []byte("pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\n"))
	f.Add(int64(-1), uint32(1<<32-1), -3, uint64(1<<64-1), []byte("pos:\t0\npos:\t0\n"))
	f.Fuzz(func(t *testing.T, pos int64, flags uint32, mnt int, ino uint64, raw []byte) {
		text := fmt.Sprintf("pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\neventfd-count: 0\n", pos, flags, mnt, ino)
		want := FDInfo{Pos: pos, Flags: flags, MntID: mnt, Ino: ino}
		if got, err := parseFDInfo([]byte(text)); err != nil || got != want {
			t.Fatalf("parseFDInfo(%q) = %+v, %v; want %+v", text, got, err, want)
		}
		if _, err := parseFDInfo(raw); err != nil {
			return
		}
		has := func(key string) bool {
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.HasPrefix(line, key) {
					return true
				}
			}
			return false
		}
		if !has("pos:") || !has("flags:") {
			t.Fatalf("parseFDInfo(%q) accepted without both pos: and flags:", raw)
		}
	})
}

func FuzzParseHandoffEnv(f *testing.F) {
	f.Add([]byte("SECRET=x\x00LISTEN_PID=1\x00LISTEN_FDS=2\x00LISTEN_FDNAMES=a:b\x00LISTEN_PIDFDID=3\x00"), 1)
	f.Fuzz(func(t *testing.T, b []byte, pid int) {
		h := parseHandoffEnv(b, pid)
		if h != nil && (len(h.Passed) != h.ListenFDs || h.ListenFDs > maxListenFDs) {
			t.Fatalf("passed %d for LISTEN_FDS %d", len(h.Passed), h.ListenFDs)
		}
	})
}

func FuzzParseProcNetInet(f *testing.F) {
	f.Add([]byte("hdr\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 5001 1 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseProcNetInet(b, FamilyInet, ProtoTCP, func(Socket) {})
		_ = parseProcNetInet(b, FamilyInet6, ProtoUDP, func(Socket) {})
	})
}

func FuzzParseProcNetUnix(f *testing.F) {
	f.Add([]byte("hdr\n0000000000000000: 00000002 00000000 00010000 0001 01 6001 @a@b\nc\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = parseProcNetUnix(b, func(Socket) {}) })
}

func FuzzParseInetDiagMsg(f *testing.F) {
	f.Add(inetDiagMsg(unix.AF_INET, 10, netip.MustParseAddrPort("127.0.0.1:80"), netip.MustParseAddrPort("0.0.0.0:0"), 1, 2, 3, 4, 5))
	f.Add(inetDiagMsg(unix.AF_INET6, 1, netip.MustParseAddrPort("[::1]:80"), netip.MustParseAddrPort("[::1]:9"), 1, 2, 3, 4, 5))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseInetDiagMsg(b, ProtoTCP) })
}

func FuzzParseUnixDiagMsg(f *testing.F) {
	f.Add(unixDiagMsg(1, 10, 5, []byte("\x00abs\nx"), 6, 1, 2))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseUnixDiagMsg(b) })
}

func FuzzParseNetlinkMessages(f *testing.F) {
	seed := appendNlHdr(nil, 16, 0, 1)
	seed = append(seed, unixDiagMsg(1, 1, 2, nil, 3, 0, 0)[:16]...)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseNetlinkMessages(b, func(m nlMsg) error {
			_, _ = parseNetlinkError(m.Payload)
			return nil
		})
	})
}
