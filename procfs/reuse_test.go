package procfs

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestLiveReuseFDs scans the host repeatedly with ReuseFDs and checks on
// a child shell: unchanged, it keeps the descriptors read before (nothing
// read again); once it opened a descriptor it is read again; in FreshPIDs
// it is always read.
func TestLiveReuseFDs(t *testing.T) {
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if !fs.Live() {
		t.Fatal("/proc is not a procfs")
	}
	sh := exec.Command("/bin/sh", "-c", "read a; exec 7</dev/null; read b")
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = sh.Wait() }()
	self := sh.Process.Pid
	scan := func(opts ScanOptions) []FD {
		t.Helper()
		s, err := fs.Scan(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := s.Process(self)
		if !ok {
			t.Fatalf("the scan lacks this process (pid %d)", self)
		}
		return p.FDs
	}
	has := func(fds []FD, num int) bool {
		for _, fd := range fds {
			if fd.Num == num {
				return true
			}
		}
		return false
	}
	same := func(a, b []FD) bool { return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0] }

	first := scan(ScanOptions{})
	again := scan(ScanOptions{ReuseFDs: true})
	if !same(first, again) {
		t.Errorf("an unchanged process was read again (%d fds, then %d)", len(first), len(again))
	}
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat("/proc/" + strconv.Itoa(self) + "/fd/7"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell never opened fd 7")
		}
		time.Sleep(5 * time.Millisecond)
	}
	moved := scan(ScanOptions{ReuseFDs: true})
	if same(again, moved) || !has(moved, 7) {
		t.Errorf("a process that opened fd 7 was not read again: %+v", moved)
	}
	if fresh := scan(ScanOptions{ReuseFDs: true, FreshPIDs: []int{self}}); same(moved, fresh) {
		t.Error("a process in FreshPIDs was not read again")
	}
	if plain := scan(ScanOptions{}); same(moved, plain) {
		t.Error("a scan without ReuseFDs took the descriptors of an earlier one")
	}
}
