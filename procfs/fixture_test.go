package procfs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestFixtureScan(t *testing.T) {
	fs, err := New("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Live() {
		t.Fatal("fixture reported as live procfs")
	}
	s, err := fs.Scan(context.Background(), ScanOptions{FDInfo: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) > 0 {
		t.Fatalf("errors: %v", s.Errors)
	}
	var pids []int
	for _, p := range s.Processes {
		pids = append(pids, p.PID)
	}
	diff(t, []int{1, 2, 100, 200, 300}, pids)

	p1, _ := s.Process(1)
	diff(t, [3]string{"systemd", "init.scope", "/init.scope"}, [3]string{p1.Comm, p1.Unit, p1.Cgroup})
	k, _ := s.Process(2)
	if !k.Kernel || len(k.FDs) != 0 {
		t.Errorf("pid 2: kernel %v fds %d", k.Kernel, len(k.FDs))
	}

	p, ok := s.Process(100)
	if !ok {
		t.Fatal("pid 100 missing")
	}
	diff(t, "my (odd) svc", p.Comm)
	diff(t, []string{"/usr/bin/svc", "--flag", "with space"}, p.Cmdline)
	diff(t, [2]any{1, uint64(12345)}, [2]any{p.PPID, p.StartTime})
	diff(t, [2]string{"demo.service", ""}, [2]string{p.Unit, p.UserUnit})
	diff(t, uint64(4026531840), p.NetNS)
	boot, err := fs.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	diff(t, time.Unix(1700000000+123, 450_000_000), p.StartedAt(boot))

	wantKinds := map[int]FDKind{0: KindDevice, 3: KindSocket, 4: KindSocket, 5: KindSocket, 6: KindPipe, 7: KindDir,
		8: KindMemfd, 9: KindEventfd, 10: KindTimerfd, 11: KindSignalfd, 12: KindEpoll, 13: KindInotify, 14: KindPidfd,
		15: KindAnon, 16: KindDeleted, 17: KindSocket, 18: KindSocket, 19: KindSocket, 20: KindSocket, 21: KindFile,
		22: KindOther, 23: KindPidfd}
	gotKinds := map[int]FDKind{}
	byNum := map[int]FD{}
	for _, fd := range p.FDs {
		gotKinds[fd.Num] = fd.Kind
		byNum[fd.Num] = fd
	}
	diff(t, wantKinds, gotKinds)
	diff(t, "hstate", byNum[8].Name)
	diff(t, "/var/log/old.log", byNum[16].Name)
	diff(t, uint64(7001), byNum[6].Inode)
	diff(t, &FDInfo{Pos: 0, Flags: 0o2004002, MntID: 9, Ino: 5001}, byNum[3].Info)
	diff(t, &FDInfo{Pos: 42, Flags: 0o100000, MntID: 25, Ino: 1234}, byNum[21].Info)

	diff(t, &HandoffEnv{ListenPID: 100, ListenFDs: 2, Names: []string{"demo.socket", "stored"}, PidFDID: 777,
		Passed: []PassedFD{{3, "demo.socket"}, {4, "stored"}}, ForThisProcess: true}, p.Handoff)

	sock := func(ino uint64) Socket {
		t.Helper()
		so, ok := s.Sockets[ino]
		if !ok {
			t.Fatalf("socket %d missing", ino)
		}
		return so
	}
	l := sock(5001)
	diff(t, [4]any{StateListen, netip.MustParseAddrPort("127.0.0.1:8080"), uint32(3), uint64(4026531840)},
		[4]any{l.State, l.Local, l.RecvQ, l.NetNS})
	diff(t, netip.MustParseAddrPort("127.0.0.1:50000"), sock(5002).Remote)
	diff(t, netip.MustParseAddrPort("[::1]:80"), sock(5003).Local)
	diff(t, [2]any{ProtoUDP, StateClose}, [2]any{sock(5004).Proto, sock(5004).State})
	diff(t, [2]any{"/run/demo.sock", StateListen}, [2]any{sock(6001).Path, sock(6001).State})
	diff(t, [2]any{"fdtop@abs\nname", true}, [2]any{sock(6004).Path, sock(6004).Abstract})
	diff(t, Unresolved, sock(8001).Status)
	iso := sock(9501)
	diff(t, [3]any{uint64(4026532500), StateListen, uint16(80)}, [3]any{iso.NetNS, iso.State, iso.Local.Port()})

	u, _ := s.Process(200)
	diff(t, [2]string{"user@1000.service", "app.service"}, [2]string{u.Unit, u.UserUnit})
	if u.Handoff == nil || u.Handoff.ForThisProcess {
		t.Errorf("pid 200 handoff = %+v, want inherited (LISTEN_PID 199)", u.Handoff)
	}

	out, _ := json.Marshal(s)
	for _, text := range []string{string(out), fmt.Sprintf("%#v", s), fmt.Sprintf("%+v", s.Processes)} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "FDTOP_TEST_SECRET") || strings.Contains(text, "PATH=") {
			t.Fatal("environment leaked into scan output")
		}
	}
}

func TestFixtureScanPIDs(t *testing.T) {
	fs, err := New("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := fs.ScanPIDs(context.Background(), []int{300, 100, 999, 100}, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Processes) != 2 || s.Processes[0].PID != 100 || s.Processes[1].PID != 300 {
		t.Fatalf("processes = %+v", s.Processes)
	}
	if s.Processes[0].FDs[1].Info != nil {
		t.Error("fdinfo read without being asked")
	}
	if _, ok := s.Sockets[5001]; !ok {
		t.Error("socket 5001 not resolved")
	}
	if so := s.Sockets[9501]; so.NetNS != 4026532500 || so.Status != Resolved {
		t.Errorf("socket 9501 = %+v", so)
	}
	if _, ok := s.Sockets[6003]; ok {
		t.Error("targeted scan returned a socket no scanned process holds")
	}
}

func TestFixtureErrors(t *testing.T) {
	if _, err := New("testdata/nonexistent"); err == nil {
		t.Error("New of a missing root: no error")
	}
	fs, _ := New("testdata/proc")
	if _, err := fs.Process(4242); !IsGone(err) {
		t.Errorf("Process(4242) err = %v, want gone", err)
	}
	h, err := fs.Handoff(100)
	if err != nil || h == nil || h.ListenFDs != 2 {
		t.Errorf("Handoff(100) = %+v, %v", h, err)
	}
	fi, err := fs.FDInfo(100, 21)
	if err != nil || fi.Pos != 42 {
		t.Errorf("FDInfo = %+v, %v", fi, err)
	}
	if _, err := fs.FDInfo(100, 9); !IsGone(err) {
		t.Errorf("FDInfo of missing fdinfo err = %v", err)
	}
	m, err := fs.SocketsByInode(context.Background(), []uint64{6001, 1})
	if err != nil || len(m) != 1 || m[6001].Path != "/run/demo.sock" {
		t.Errorf("SocketsByInode = %+v, %v", m, err)
	}
}
