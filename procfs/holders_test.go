package procfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/procfs/bpfiter"
	"golang.org/x/sys/unix"
)

// triple is one socket descriptor: what both holder passes list.
type triple struct {
	pid, fd int
	inode   uint64
}

// slot is a descriptor number of a process.
type slot struct{ pid, fd int }

// socketSet is the socket descriptors of a scan, by slot, and the
// processes it read in full (denied ones left out).
type socketSet struct {
	bySlot map[slot]uint64
	pids   map[int]bool
}

func socketsOf(s *Scan) socketSet {
	out := socketSet{bySlot: map[slot]uint64{}, pids: map[int]bool{}}
	for _, p := range s.Processes {
		if p.Denied || p.Kernel {
			continue
		}
		out.pids[p.PID] = true
		for _, fd := range p.FDs {
			if fd.Kind == KindSocket {
				out.bySlot[slot{p.PID, fd.Num}] = fd.Inode
			}
		}
	}
	return out
}

// compareHolders checks the BPF pass's socket descriptors b against two
// /proc passes, a1 before it and a2 after. A process whose socket
// descriptors are the same in both /proc passes must have exactly those in
// b, except a socket neither /proc pass saw anywhere (one that came and
// went between them); a process that changed between them, came or went
// may differ. It returns the violations and how many differences were
// explained by a change.
func compareHolders(a1, b, a2 socketSet) (bad []string, explained int) {
	changed := map[int]bool{}
	seen := map[uint64]bool{}
	for _, x := range []socketSet{a1, a2} {
		for s, ino := range x.bySlot {
			seen[ino] = true
			i1, ok1 := a1.bySlot[s]
			i2, ok2 := a2.bySlot[s]
			if ok1 != ok2 || i1 != i2 {
				changed[s.pid] = true
			}
		}
	}
	stable := func(pid int) bool { return a1.pids[pid] && a2.pids[pid] && !changed[pid] }
	for s, ino := range b.bySlot {
		if a1.bySlot[s] == ino && a2.bySlot[s] == ino {
			continue
		}
		if !stable(s.pid) || !seen[ino] {
			explained++
			continue
		}
		bad = append(bad, fmt.Sprintf("bpf only: pid %d fd %d inode %d", s.pid, s.fd, ino))
	}
	for s, ino := range a1.bySlot {
		if !stable(s.pid) || !b.pids[s.pid] {
			continue
		}
		if got, ok := b.bySlot[s]; !ok || got != ino {
			bad = append(bad, fmt.Sprintf("proc only: pid %d fd %d inode %d", s.pid, s.fd, ino))
		}
	}
	slices.Sort(bad)
	return bad, explained
}

// TestCompareHolders: the accounting of compareHolders, on fixtures.
func TestCompareHolders(t *testing.T) {
	set := func(pids []int, ts ...triple) socketSet {
		s := socketSet{bySlot: map[slot]uint64{}, pids: map[int]bool{}}
		for _, p := range pids {
			s.pids[p] = true
		}
		for _, x := range ts {
			s.bySlot[slot{x.pid, x.fd}] = x.inode
		}
		return s
	}
	tests := []struct {
		name          string
		a1, b, a2     socketSet
		bad           int
		wantExplained int
	}{
		{"same", set([]int{1}, triple{1, 3, 10}), set([]int{1}, triple{1, 3, 10}), set([]int{1}, triple{1, 3, 10}), 0, 0},
		{"opened between", set([]int{1}), set([]int{1}, triple{1, 3, 10}), set([]int{1}, triple{1, 3, 10}), 0, 1},
		{"not yet opened", set([]int{1}), set([]int{1}), set([]int{1}, triple{1, 3, 10}), 0, 0},
		{"opened and closed between", set([]int{1}), set([]int{1}, triple{1, 3, 10}), set([]int{1}), 0, 1},
		{"moved in a quiet process", set([]int{1}, triple{1, 3, 10}), set([]int{1}, triple{1, 4, 10}), set([]int{1}, triple{1, 3, 10}), 2, 0},
		{"replaced twice", set([]int{1}, triple{1, 3, 10}), set([]int{1}, triple{1, 3, 11}), set([]int{1}, triple{1, 3, 12}), 0, 1},
		{"new process", set(nil), set([]int{2}, triple{2, 3, 10}), set(nil), 0, 1},
		{"missing from bpf", set([]int{1}, triple{1, 3, 10}), set([]int{1}), set([]int{1}, triple{1, 3, 10}), 1, 0},
		{"gone by then", set([]int{1}), set(nil), set(nil), 0, 0},
		{"another's socket", set([]int{1, 2}, triple{2, 3, 10}), set([]int{1, 2}, triple{1, 4, 10}, triple{2, 3, 10}), set([]int{1, 2}, triple{2, 3, 10}), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, explained := compareHolders(tt.a1, tt.b, tt.a2)
			if len(bad) != tt.bad || explained != tt.wantExplained {
				t.Errorf("bad %v, explained %d; want %d bad, %d explained", bad, explained, tt.bad, tt.wantExplained)
			}
		})
	}
}

// requireBPF returns an FS whose full scans use the BPF pass, failing
// (skipping outside CI) where it does not load here.
func requireBPF(t *testing.T) FS {
	t.Helper()
	requireRoot(t)
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if _, why := fs.socketFDs(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the BPF holder pass does not load here (CI=true: not skipping): %s", why)
		}
		t.Skip("no BPF holder pass here: " + why)
	}
	return fs
}

// churn starts and ends processes holding sockets, and opens and closes
// sockets in this one, until stopped; it counts its changes.
type churn struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	n    int
}

func startChurn(t *testing.T) *churn {
	c := &churn{stop: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		var kids []*exec.Cmd
		var mine []int
		defer func() {
			for _, k := range kids {
				k.Process.Kill()
				k.Wait()
			}
			for _, fd := range mine {
				unix.Close(fd)
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			// A process holding a socket pair comes; the oldest goes.
			if sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
				a, b := os.NewFile(uintptr(sp[0]), "a"), os.NewFile(uintptr(sp[1]), "b")
				cmd := exec.Command("/bin/sleep", "60")
				cmd.ExtraFiles = []*os.File{a, b}
				if cmd.Start() == nil {
					kids = append(kids, cmd)
				}
				a.Close()
				b.Close()
			}
			if len(kids) > 6 {
				kids[0].Process.Kill()
				kids[0].Wait()
				kids = kids[1:]
			}
			// A socket of this process opens; an old one closes.
			if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
				mine = append(mine, fd)
			}
			if len(mine) > 20 {
				unix.Close(mine[0])
				mine = mine[1:]
			}
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.end)
	return c
}

func (c *churn) end() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// TestLiveHoldersBPFMatchesProc compares the BPF holder pass with the /proc
// pass on this host while processes and sockets come and go: a /proc pass,
// the BPF pass, a /proc pass; the BPF pass has every socket descriptor
// both /proc passes saw, and nothing else but what changed between them.
// It repeats until a round saw the churn change something between the
// /proc passes (so that the accounting was exercised), and checks a quiet
// holder exactly.
func TestLiveHoldersBPFMatchesProc(t *testing.T) {
	bpfFS := requireBPF(t)
	procFS := bpfFS.WithHolders(Holders{Proc: true})
	ctx := context.Background()

	// A quiet holder: a process with a known socket pair, left alone.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(sp[0], &st); err != nil {
		t.Fatal(err)
	}
	quietIno := st.Ino
	a, b := os.NewFile(uintptr(sp[0]), "a"), os.NewFile(uintptr(sp[1]), "b")
	quiet := exec.Command("/bin/sleep", "120")
	quiet.ExtraFiles = []*os.File{a}
	// No Pdeathsig: it fires when the forking thread exits, and a scan's
	// threads that enter a network namespace exit by design (the quiet
	// holder vanished mid-test in CI run 10). t.Cleanup kills it.
	if err := quiet.Start(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	defer b.Close()
	t.Cleanup(func() { quiet.Process.Kill(); quiet.Wait() })

	c := startChurn(t)
	scan := func(fs FS, want string) (*Scan, socketSet) {
		t.Helper()
		s, err := fs.Scan(ctx, ScanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.HoldersSource != want {
			t.Fatalf("holders source %q (%s), want %q", s.HoldersSource, s.HoldersNote, want)
		}
		return s, socketsOf(s)
	}
	const maxRounds = 30
	for round := 1; ; round++ {
		_, a1 := scan(procFS, HoldersProc)
		bs, bset := scan(bpfFS, HoldersBPF)
		_, a2 := scan(procFS, HoldersProc)
		bad, explained := compareHolders(a1, bset, a2)
		if len(bad) > 0 {
			t.Fatalf("round %d: the BPF pass differs from the /proc passes beyond what changed:\n%s", round, strings.Join(bad, "\n"))
		}
		if got := bset.bySlot[slot{quiet.Process.Pid, 3}]; got != quietIno {
			t.Fatalf("quiet holder pid %d fd 3: inode %d from the BPF pass, want %d", quiet.Process.Pid, got, quietIno)
		}
		if bs.Unreadable != 0 && os.Geteuid() == 0 {
			t.Logf("round %d: %d processes not readable as root", round, bs.Unreadable)
		}
		// Did the churn change something between the /proc passes?
		changes := 0
		for s, ino := range a1.bySlot {
			if a2.bySlot[s] != ino {
				changes++
			}
		}
		for s := range a2.bySlot {
			if _, ok := a1.bySlot[s]; !ok {
				changes++
			}
		}
		t.Logf("round %d: %d socket descriptors by BPF, %d changed between the /proc passes, %d differences explained by them", round, len(bset.bySlot), changes, explained)
		if changes > 0 {
			break
		}
		if round == maxRounds {
			t.Fatalf("after %d rounds the churn (%d steps) never changed a descriptor between two /proc passes", round, c.steps())
		}
	}
}

func (c *churn) steps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestLiveHoldersFallback: where the BPF pass does not load (no BTF, a
// program the kernel refuses) or is not wanted, a full scan reads /proc,
// says why, says it the same way on the next scan without loading again,
// and reads what a /proc scan reads.
func TestLiveHoldersFallback(t *testing.T) {
	requireRoot(t)
	base, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	procFS := base.WithHolders(Holders{Proc: true})
	ctx := context.Background()

	// A quiet process with one descriptor of several kinds.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a := os.NewFile(uintptr(sp[0]), "a")
	quiet := exec.Command("/bin/sleep", "120")
	quiet.ExtraFiles = []*os.File{a, pr}
	// No Pdeathsig: it fires when the forking thread exits, and a scan's
	// threads that enter a network namespace exit by design (the quiet
	// holder vanished mid-test in CI run 10). t.Cleanup kills it.
	if err := quiet.Start(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	pr.Close()
	defer pw.Close()
	defer unix.Close(sp[1])
	t.Cleanup(func() { quiet.Process.Kill(); quiet.Wait() })
	pid := quiet.Process.Pid
	waitQuiet(t, pid, "sleep")

	want, err := procFS.ScanPIDs(ctx, []int{pid}, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantProc, ok := want.Process(pid)
	if !ok {
		t.Fatal("quiet process not read")
	}
	tests := []struct {
		name string
		h    Holders
		note string
	}{
		{"no BTF", Holders{BPF: bpfiter.Options{BTFPath: t.TempDir() + "/no-vmlinux"}}, "kernel BTF"},
		{"refused", Holders{BPF: bpfiter.Options{Reject: true}}, "load task_file iterator"},
		// Loaded, its run fails while the processes are read: those left
		// to it are read again from /proc.
		{"run fails", Holders{BPF: bpfiter.Options{FailRuns: true}}, "pid namespace"},
		{"asked", Holders{Proc: true}, "asked for"},
	}
	for _, tt := range tests {
		for _, warm := range []bool{false, true} {
			name := tt.name
			if warm {
				name += "/warmed"
			}
			t.Run(name, func(t *testing.T) {
				fs := base.WithHolders(tt.h)
				if warm {
					// A load started ahead (twice: one load), that the
					// scans wait for.
					fs.WarmHolders()
					fs.WarmHolders()
				}
				var notes []string
				for range 2 {
					s, err := fs.Scan(ctx, ScanOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if s.HoldersSource != HoldersProc || !strings.Contains(s.HoldersNote, tt.note) {
						t.Fatalf("holders %q, note %q; want proc, a note with %q", s.HoldersSource, s.HoldersNote, tt.note)
					}
					notes = append(notes, s.HoldersNote)
					got, ok := s.Process(pid)
					if !ok {
						t.Fatal("quiet process not in the scan")
					}
					if !slices.Equal(got.FDs, wantProc.FDs) {
						t.Fatalf("quiet process's descriptors differ from a /proc scan's:\n got %+v\nwant %+v", got.FDs, wantProc.FDs)
					}
				}
				if notes[0] != notes[1] {
					t.Errorf("notes differ between scans: %q, %q", notes[0], notes[1])
				}
				if fs.hp.opens > 1 {
					t.Errorf("the iterator was loaded %d times: a failure is not retried", fs.hp.opens)
				}
			})
		}
	}
}

// waitQuiet waits until the process pid started (whose executable's name
// ends in exe) is asleep with the dynamic loader done: it has mapped libc
// and closed the descriptors it read it and its cache through (a scan
// during loading sees those too).
func waitQuiet(t *testing.T, pid int, exe string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		path, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		_, after, _ := strings.Cut(string(stat), ") ")
		loading := ""
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			if strings.Contains(target, ".so") {
				loading = target
			}
		}
		if strings.HasSuffix(path, exe) && strings.Contains(string(maps), "libc") && strings.HasPrefix(after, "S") && loading == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not quiet after 10 s: exe %q, state %.1s, open %q", pid, path, after, loading)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWarmHolders: a load WarmHolders starts is the one the first scan
// uses (the iterator is loaded once, and the scan's holders are the BPF
// pass's).
func TestWarmHolders(t *testing.T) {
	requireBPF(t)
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	fs.WarmHolders()
	for range 2 {
		s, err := fs.Scan(context.Background(), ScanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.HoldersSource != HoldersBPF || s.HoldersNote != "" {
			t.Fatalf("holders %q (%q), want bpf", s.HoldersSource, s.HoldersNote)
		}
		fs.WarmHolders() // loaded already: nothing to do
	}
	if fs.hp.opens != 1 {
		t.Errorf("the iterator was loaded %d times, want once", fs.hp.opens)
	}
	// The first scan took the run WarmHolders started; the second ran
	// its own.
	if fs.hp.runs != 2 {
		t.Errorf("%d iterator runs for two scans after a warm-up, want 2", fs.hp.runs)
	}

	// A warm-up's run too old when the scan comes is not taken.
	old, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	old.WarmHolders()
	waitLoaded(t, old)
	old.hp.mu.Lock()
	old.hp.preAt = time.Now().Add(-preFresh)
	old.hp.mu.Unlock()
	if s, err := old.Scan(context.Background(), ScanOptions{}); err != nil || s.HoldersSource != HoldersBPF {
		t.Fatalf("scan: %v, holders %q", err, s.HoldersSource)
	}
	if old.hp.runs != 2 {
		t.Errorf("%d iterator runs for a stale warm-up and a scan, want 2 (the scan's own)", old.hp.runs)
	}
}

// waitLoaded waits until the load WarmHolders started has ended.
func waitLoaded(t *testing.T, fs FS) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		fs.hp.mu.Lock()
		done := fs.hp.loading == nil
		fs.hp.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the warm-up's load did not end in 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
