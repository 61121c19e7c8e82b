package procfs

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzz targets check that parsers never panic and keep their invariants.
// Seed corpora are in testdata/fuzz/FuzzX; run one with
// go test -run '^$' -fuzz '^FuzzParseStat$' -fuzztime 10s ./procfs

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseStat(b) })
}

func FuzzParseStatusUID(f *testing.F) {
	f.Add([]byte("Name:\tx\nUid:\t0\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseStatusUID(b) })
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("12:name=systemd:/system.slice/a.service\n0::/user.slice/user-1.slice/user@1.service/b.service\n"))
	f.Fuzz(func(t *testing.T, b []byte) { unitFromCgroup(parseCgroup(b)) })
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("/bin/x\x00-a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) { parseCmdline(b) })
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

func FuzzParseFDInfo(f *testing.F) {
	f.Add([]byte("pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\n"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseFDInfo(b) })
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
