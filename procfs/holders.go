package procfs

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fdtop/fdtop/procfs/bpfiter"
	"golang.org/x/sys/unix"
)

// Where a full scan found the socket descriptors of the processes it did
// not read in full (Scan.HoldersSource).
const (
	// HoldersBPF: one run of a BPF task_file iterator listed every socket
	// descriptor of the host (procfs/bpfiter). Those processes' other
	// descriptors (files, pipes, memfds) are not read.
	HoldersBPF = "bpf"
	// HoldersProc: every process's /proc/PID/fd was read.
	HoldersProc = "proc"
)

// HoldersEnv is the environment variable that, set to "proc", makes every
// FS New returns read /proc for holders and never load the BPF iterator
// (to compare the two passes, or to rule the iterator out).
const HoldersEnv = "FDTOP_HOLDERS"

// Holders chooses how full scans find the descriptors of the host's
// processes (FS.WithHolders).
type Holders struct {
	// Proc reads every process's /proc/PID/fd, never the BPF iterator.
	Proc bool
	// BPF tunes the iterator (tests stand for a kernel without BTF or one
	// that refuses the program with it).
	BPF bpfiter.Options
}

// holderPass is the BPF holder pass of an FS and its copies: loaded at the
// first full scan that wants it; once it fails, /proc is used from then on
// and the reason kept (said once, not retried every scan).
type holderPass struct {
	opts Holders

	mu      sync.Mutex
	tried   bool
	loading chan struct{} // closed when a load WarmHolders started ends
	opens   int           // loads tried (tests: a failure is not retried)
	it      *bpfiter.Iter
	why     string    // why /proc is used; "" while the BPF pass works
	pre     *bpfRun   // a run WarmHolders started, for the next scan
	preAt   time.Time // when it started
	runs    int       // runs started (tests)
}

// preFresh is how old a run WarmHolders started may be when a scan takes
// it: older, the scan runs the iterator again.
const preFresh = 500 * time.Millisecond

func newHolderPass(h Holders) *holderPass {
	hp := &holderPass{opts: h}
	if h.Proc {
		hp.tried, hp.why = true, "the /proc pass was asked for"
	}
	return hp
}

// WithHolders returns a copy of the FS whose full scans find holders as h
// says; the copy has its own iterator (loaded at its first full scan).
func (p FS) WithHolders(h Holders) FS {
	p.hp = newHolderPass(h)
	return p
}

// bpfSocketFDs is one run of the BPF pass: the socket descriptors of
// each process it listed, as the kernel gave them (16-byte records),
// sorted by pid and fd; FD values are made only for the processes and
// descriptors asked for. Only processes started before the run are taken
// from it (bpfRun.since): a pid it lists is theirs, not a later process's
// under a reused pid.
type bpfSocketFDs struct {
	recs []bpfiter.Record
	at   map[int][2]int // pid -> its records, recs[at[0]:at[1]]
}

// fds returns pid's socket descriptors, sorted by number: every one for a
// nil keep, else those whose inode keep has (nil when none).
func (b *bpfSocketFDs) fds(pid int, keep map[uint64]bool) []FD {
	r, ok := b.at[pid]
	if !ok {
		return nil
	}
	n := r[1] - r[0]
	if keep != nil {
		n = 0
		for _, rec := range b.recs[r[0]:r[1]] {
			if keep[rec.Inode] {
				n++
			}
		}
		if n == 0 {
			return nil
		}
	}
	out := make([]FD, 0, n)
	for _, rec := range b.recs[r[0]:r[1]] {
		if keep == nil || keep[rec.Inode] {
			out = append(out, FD{Num: int(rec.FD), Kind: KindSocket, Inode: rec.Inode})
		}
	}
	return out
}

// bpfRun is a run of the BPF pass under way: since is known when it
// starts, so processes can be read while the kernel walks the file tables.
type bpfRun struct {
	since uint64 // clock ticks since boot when the run started
	done  chan struct{}
	fds   *bpfSocketFDs // after done: the run's records, or nil
	why   string        // after done: why /proc is used, when fds is nil
}

// wait returns the run's descriptors, or nil and why /proc must be used.
func (r *bpfRun) wait() (*bpfSocketFDs, string) {
	<-r.done
	return r.fds, r.why
}

// socketFDs runs the BPF pass and waits for it (startSocketFDs).
func (p FS) socketFDs() (*bpfSocketFDs, string) {
	run, why := p.startSocketFDs()
	if run == nil {
		return nil, why
	}
	return run.wait()
}

// WarmHolders starts loading the BPF holder pass in the background, if
// a full scan would load it and it is not loaded yet, then runs it once:
// parsing the kernel's types, loading the program and the kernel's walk of
// every file table take tens of milliseconds, which can overlap connecting
// to the manager and reading it, before the scan. The next full scan
// (within preFresh) waits for that load and run and takes the run as its
// own: what the processes other than the fresh ones held is as of the
// run, as it would be if it ran during the scan (the processes started
// after it are read from /proc).
func (p FS) WarmHolders() {
	hp := p.hp
	if hp == nil || !p.live || p.root != "/proc" {
		return
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	if hp.tried || hp.loading != nil {
		return
	}
	hp.loading = make(chan struct{})
	go func() {
		it, err := bpfiter.Open(hp.opts.BPF)
		hp.mu.Lock()
		defer hp.mu.Unlock()
		hp.loaded(it, err)
		if hp.it != nil {
			hp.pre, _ = hp.startRun()
			hp.preAt = time.Now()
		}
		close(hp.loading)
		hp.loading = nil
	}()
}

// loaded keeps the outcome of a load (hp.mu held).
func (hp *holderPass) loaded(it *bpfiter.Iter, err error) {
	hp.tried = true
	hp.opens++
	if err != nil {
		hp.why = err.Error()
		return
	}
	hp.it = it
}

// startSocketFDs starts the BPF pass (loading the iterator at the first
// call). It returns nil and the reason /proc is used when it cannot; a
// failure, now or when the run ends, disables it for the FS's later scans.
func (p FS) startSocketFDs() (*bpfRun, string) {
	hp := p.hp
	if hp == nil || !p.live || p.root != "/proc" {
		return nil, "not the host's /proc"
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	for hp.loading != nil {
		// WarmHolders's load is under way.
		ch := hp.loading
		hp.mu.Unlock()
		<-ch
		hp.mu.Lock()
	}
	if !hp.tried {
		hp.loaded(bpfiter.Open(hp.opts.BPF))
		if hp.it == nil {
			return nil, hp.why
		}
	}
	if pre := hp.pre; pre != nil {
		hp.pre = nil
		if time.Since(hp.preAt) < preFresh {
			return pre, ""
		}
	}
	return hp.startRun()
}

// startRun starts a run of the loaded iterator (hp.mu held).
func (hp *holderPass) startRun() (*bpfRun, string) {
	if hp.it == nil {
		return nil, hp.why
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		hp.fail(fmt.Errorf("boot clock: %w", err))
		return nil, hp.why
	}
	run := &bpfRun{since: uint64(time.Duration(ts.Nano()) / (time.Second / userHZ)), done: make(chan struct{})}
	hp.runs++
	it := hp.it
	go func() {
		defer close(run.done)
		recs, err := it.Records()
		if err != nil {
			if errors.Is(err, bpfiter.ErrOtherPIDNamespace) {
				err = errors.New("fdtop runs in a pid namespace other than the host's: the iterator's pids are the host's")
			}
			hp.mu.Lock()
			if hp.it == it {
				hp.fail(err)
			}
			run.why = hp.why
			hp.mu.Unlock()
			return
		}
		recs, at := groupRecords(recs)
		run.fds = &bpfSocketFDs{recs: recs, at: at}
	}()
	return run, ""
}

// fail closes the iterator and keeps the reason.
func (hp *holderPass) fail(err error) {
	hp.why = err.Error()
	if hp.it != nil {
		hp.it.Close()
		hp.it = nil
	}
}

// groupRecords sorts records by pid and fd and indexes each process's.
func groupRecords(recs []bpfiter.Record) ([]bpfiter.Record, map[int][2]int) {
	slices.SortFunc(recs, func(a, b bpfiter.Record) int {
		if a.PID != b.PID {
			return int(a.PID) - int(b.PID)
		}
		return int(a.FD) - int(b.FD)
	})
	at := map[int][2]int{}
	start := 0
	for i, r := range recs {
		if i+1 == len(recs) || recs[i+1].PID != r.PID {
			at[int(r.PID)] = [2]int{start, i + 1}
			start = i + 1
		}
	}
	return recs, at
}
