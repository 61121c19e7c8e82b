package procfs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ScanOptions tune a scan.
type ScanOptions struct {
	// FDInfo reads /proc/PID/fdinfo/N for every descriptor (flags, position).
	// It costs about three syscalls per descriptor: ask only when shown.
	FDInfo bool
	// NoNetlink reads sockets from /proc/net/* and /proc/PID/net/* instead
	// of NETLINK_SOCK_DIAG (slower, no unix peers, lossy abstract names).
	NoNetlink bool
	// NoSockets skips socket details: descriptors still carry socket inodes.
	NoSockets bool
	// Workers is the number of concurrent /proc walkers; 0 means GOMAXPROCS.
	Workers int
	// ReuseFDs lets a full scan (Scan) take a process's descriptors and
	// handoff environment from an earlier full scan instead of reading
	// them again, when the process has the same start time and the same
	// number of descriptors (the kernel's count, one stat) and was read
	// in full less than ReuseScans full scans ago: what a host-wide pass
	// repeated every minute costs is then mostly one stat per process. A
	// descriptor replaced by another under the same count is seen at the
	// latest ReuseScans scans later. FreshPIDs are always read. It takes
	// effect on the live procfs only, without FDInfo.
	ReuseFDs bool
	// FreshPIDs are the processes a ReuseFDs scan reads in full anyway
	// (those shown in detail).
	FreshPIDs []int
	// Related makes a full scan keep, of the host beyond FreshPIDs, only
	// what relates to them (see related.go): the sockets they hold, the
	// peers of their unix sockets, the connections accepted from their
	// listeners, and the other processes' descriptors of these and of
	// what FreshPIDs hold. Every process is still read (identity, handoff
	// environment). Its cost and memory follow what FreshPIDs hold, not
	// the host (the socket tables are not read whole where the kernel can
	// filter them or a lookup finds a socket). Scan.Related says so.
	Related bool
}

// ReuseScans bounds how many full scans in a row may take a process's
// descriptors from an earlier one (ScanOptions.ReuseFDs).
const ReuseScans = 10

// fdTables keeps the descriptors full scans read, per process, for
// ScanOptions.ReuseFDs.
type fdTables struct {
	mu   sync.Mutex
	scan int // full scans so far
	by   map[int]fdTable
}

type fdTable struct {
	start   uint64
	count   int
	readAt  int // the scan that read it
	fds     []FD
	handoff *HandoffEnv
	// compact: fds are a related scan's, of a process not read fresh:
	// only sockets, pipes, FIFOs and memfds, without their link text
	// (compactFDs). Only related scans take such a table.
	compact bool
	// noPathStat: read without stat'ing path targets (no FIFO or memfd
	// in it). Only related scans whose fresh processes hold neither take
	// such a table.
	noPathStat bool
}

func newFDTables() *fdTables { return &fdTables{by: map[int]fdTable{}} }

func (t *fdTables) get(pid int, start uint64, count, scan int, related, noPathStat bool) (fdTable, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.by[pid]
	if !ok || e.start != start || e.count != count || scan-e.readAt >= ReuseScans || e.compact && !related || e.noPathStat && !noPathStat {
		return fdTable{}, false
	}
	return e, true
}

func (t *fdTables) put(pid int, e fdTable) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.by[pid] = e
}

// next starts a full scan and returns its number.
func (t *fdTables) next() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scan++
	return t.scan
}

// keep forgets the processes a full scan did not find.
func (t *fdTables) keep(seen map[int]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid := range t.by {
		if !seen[pid] {
			delete(t.by, pid)
		}
	}
}

// Scan is the result of a scan. It is shared with the FS's socket cache:
// treat it as read-only.
type Scan struct {
	// Processes are the processes read, sorted by PID, with their descriptors
	// and handoff environment.
	Processes []Process
	// Sockets are socket details keyed by inode. A full scan holds every
	// socket of the host's namespace and of the namespaces of scanned
	// processes; a targeted scan holds the sockets the scanned processes hold.
	Sockets map[uint64]Socket
	// Unreadable counts processes whose descriptors could not be read for
	// lack of permission.
	Unreadable int
	// EnvUnreadable counts processes whose descriptors were read but whose
	// environment (LISTEN_*) could not be, for lack of permission.
	EnvUnreadable int
	// Partial reports that some socket data may be incomplete or
	// inconsistent (an interrupted dump kept as is, a namespace not entered).
	Partial bool
	// Warnings say what made the scan partial.
	Warnings []string
	// HoldersSource says how a full scan read the descriptors of the
	// processes other than ScanOptions.FreshPIDs: HoldersBPF (their socket
	// descriptors only, from the BPF iterator) or HoldersProc (all, from
	// /proc/PID/fd). Empty for a targeted scan.
	HoldersSource string
	// HoldersNote says why a full scan used /proc rather than the BPF
	// iterator ("" when it used BPF).
	HoldersNote string
	// Errors are per-process failures other than vanishing (skipped silently)
	// and permission (counted in Unreadable). The rest of the scan is valid.
	Errors []error
	// Hierarchy is the cgroup hierarchy the processes' units were read
	// from (FS.Hierarchy; UseHierarchy changes it).
	Hierarchy Hierarchy
	// Related reports a full scan made with ScanOptions.Related: Sockets
	// holds only the sockets related to the processes read fresh, and the
	// other processes' FDs only their descriptors of those sockets and of
	// what the fresh processes hold (not all they hold).
	Related bool
}

// Process returns the scanned process with the given pid.
func (s *Scan) Process(pid int) (*Process, bool) {
	i, ok := slices.BinarySearchFunc(s.Processes, pid, func(p Process, pid int) int { return p.PID - pid })
	if !ok {
		return nil, false
	}
	return &s.Processes[i], true
}

// UseHierarchy reads every process's unit again from the lines of
// hierarchy h (decided after the scan, e.g. with HierarchyOf).
func (s *Scan) UseHierarchy(h Hierarchy) {
	s.Hierarchy = h
	for i := range s.Processes {
		p := &s.Processes[i]
		p.setCgroup(p.Cgroups, h)
	}
}

// UnreadableNote says "N processes not readable", or "" if all were readable.
func (s *Scan) UnreadableNote() string {
	switch s.Unreadable {
	case 0:
		return ""
	case 1:
		return "1 process not readable"
	}
	return strconv.Itoa(s.Unreadable) + " processes not readable"
}

// socketCache remembers inet sockets from the last full dump so that
// targeted scans can refresh them by exact lookup instead of dumping tables.
type socketCache struct {
	mu    sync.Mutex
	full  map[uint64]Socket // last full scan's map; read-only
	extra map[uint64]Socket // found by targeted scans since
	// Of the last full scan that dumped the tables: the processes it could
	// not read and the sockets no process it read held.
	denied []int
	unheld []uint64
	// related: full is a related scan's map (not every socket): an
	// incremental pass cannot be built on it.
	related bool
	// absent are the held inet sockets the last related scan asked for
	// and did not find in their tables (dumped whole, or not because
	// they were absent before): in none (unbound, unconnected). One
	// connected since is found at the latest ReuseScans related scans
	// later (absentUses), when the set is not used.
	absent     map[uint64]bool
	absentUses int
}

// absentInet returns the inet sockets the last related scan did not find,
// or nil every ReuseScans-th call.
func (c *socketCache) absentInet() map[uint64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.absentUses++; c.absentUses >= ReuseScans {
		c.absentUses = 0
		return nil
	}
	return c.absent
}

// setAbsentInet keeps the inet sockets a related scan did not find.
func (c *socketCache) setAbsentInet(inodes []uint64) {
	m := make(map[uint64]bool, len(inodes))
	for _, ino := range inodes {
		m[ino] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.absent = m
}

// setDumped records what a full scan's dump saw beyond what it read.
func (c *socketCache) setDumped(res *Scan, denied []int) {
	held := make(map[uint64]bool, len(res.Sockets))
	for i := range res.Processes {
		for _, fd := range res.Processes[i].FDs {
			if fd.Kind == KindSocket {
				held[fd.Inode] = true
			}
		}
	}
	var unheld []uint64
	for ino := range res.Sockets {
		if !held[ino] {
			unheld = append(unheld, ino)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.denied, c.unheld = denied, unheld
}

func newSocketCache() *socketCache { return &socketCache{extra: map[uint64]Socket{}} }

func (c *socketCache) get(ino uint64) (Socket, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.extra[ino]; ok {
		return s, true
	}
	s, ok := c.full[ino]
	return s, ok
}

func (c *socketCache) put(s Socket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.extra) > 1<<16 {
		clear(c.extra)
	}
	c.extra[s.Inode] = s
}

func (c *socketCache) setFull(m map[uint64]Socket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.full = m
	c.extra = map[uint64]Socket{}
	c.related = false
}

// setRelated keeps a related scan's sockets for exact lookups; they are
// not every socket of the host.
func (c *socketCache) setRelated(m map[uint64]Socket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.full = m
	c.extra = map[uint64]Socket{}
	c.related = true
	c.denied, c.unheld = nil, nil
}

func (c *socketCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.full)
}

// ownNetNS returns the network namespace that sock_diag sockets opened by
// this process (live) or root/net/* (fixture) describe.
func (p FS) ownNetNS() uint64 {
	buf := make([]byte, 64)
	n, err := unix.Readlink(p.path("self", "ns", "net"), buf)
	if err != nil {
		return 0
	}
	ns, _ := parseNSLink(buf[:n])
	return ns
}

// Scan reads every process of the host with its descriptors, and every socket.
func (p FS) Scan(ctx context.Context, opts ScanOptions) (*Scan, error) {
	pids, err := p.PIDs()
	if err != nil {
		return nil, err
	}
	return p.scan(ctx, pids, opts, true)
}

// ScanPIDs reads only the given processes, and the sockets they hold, without
// a full socket dump per refresh: inet sockets known from the last full scan
// are refreshed by exact lookup, unix listeners and sockets new since then
// are looked up by inode, and other unix sockets known from the last full
// scan are taken from it (their queue lengths are as of that scan).
func (p FS) ScanPIDs(ctx context.Context, pids []int, opts ScanOptions) (*Scan, error) {
	return p.scan(ctx, slices.Compact(slices.Sorted(slices.Values(pids))), opts, false)
}

type procResult struct {
	proc   Process
	ok     bool
	denied bool
	err    error
	// bpf: the process's socket descriptors are the BPF run's, not yet
	// made into FDs (a related scan makes those it keeps).
	bpf bool
}

func (p FS) scan(ctx context.Context, pids []int, opts ScanOptions, full bool) (*Scan, error) {
	res := &Scan{Hierarchy: p.hier}
	ownNS := p.ownNetNS()
	useNetlink := p.live && !opts.NoNetlink && !opts.NoSockets
	related := full && opts.Related && !opts.NoSockets
	res.Related = related
	freshPID := make(map[int]bool, len(opts.FreshPIDs))
	for _, pid := range opts.FreshPIDs {
		freshPID[pid] = true
	}

	// A full scan dumps the own namespace's tables while the walkers run.
	var (
		dumpWG   sync.WaitGroup
		dumped   map[uint64]Socket
		dumpWarn []string
		dumpErr  error
	)
	// Descriptor tables a full scan may take from the earlier ones.
	// Every full scan of the live procfs keeps what it read for them.
	var reuse *reuseScan
	if full && !opts.FDInfo && p.live && p.fdt != nil {
		reuse = &reuseScan{t: p.fdt, scan: p.fdt.next(), use: opts.ReuseFDs, fresh: map[int]bool{}}
		for _, pid := range opts.FreshPIDs {
			reuse.fresh[pid] = true
		}
	}
	// A pass reusing tables may also reuse the last dump's sockets
	// (incremental, after the walk); every ReuseScans-th dumps anew.
	incremental := full && useNetlink && !related && reuse != nil && reuse.use && reuse.scan%ReuseScans != 0 && p.cache.size() > 0
	dump := func() {
		defer dumpWG.Done()
		dumped, dumpWarn, dumpErr = p.dumpNS("", ownNS, p.cache.size())
	}
	if full && useNetlink && !incremental && !related {
		dumpWG.Add(1)
		go dump()
	}

	// A full scan takes the socket descriptors of the processes not
	// asked for fresh from one run of the BPF iterator where it loads,
	// which runs while the processes are read.
	var run *bpfRun
	if full {
		res.HoldersSource = HoldersProc
		if opts.FDInfo {
			res.HoldersNote = "descriptor details (fdinfo) were asked for"
		} else if run, res.HoldersNote = p.startSocketFDs(); run != nil {
			res.HoldersSource = HoldersBPF
			if reuse == nil {
				reuse = &reuseScan{fresh: map[int]bool{}}
				for _, pid := range opts.FreshPIDs {
					reuse.fresh[pid] = true
				}
			}
			reuse.bpf, reuse.since = true, run.since
		}
	}

	if reuse != nil {
		reuse.related = related
	}
	results := make([]procResult, len(pids))
	walk := func(idx []int) {
		workers := opts.Workers
		if workers <= 0 {
			workers = runtime.GOMAXPROCS(0)
		}
		workers = max(1, min(workers, len(idx)))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newProcReader(p)
				for {
					k := int(next.Add(1) - 1)
					if k >= len(idx) || ctx.Err() != nil {
						return
					}
					i := idx[k]
					results[i] = r.scanProcess(pids[i], opts.FDInfo, reuse)
				}
			}()
		}
		wg.Wait()
	}
	// What the fresh processes hold (a related scan).
	var freshInodes map[uint64]bool
	if related {
		// The fresh processes first: what they hold is what the socket
		// tables are read for, while the others are read.
		var fresh, rest []int
		for i, pid := range pids {
			if freshPID[pid] {
				fresh = append(fresh, i)
			} else {
				rest = append(rest, i)
			}
		}
		walk(fresh)
		freshInodes = map[uint64]bool{}
		var fifoOrMemfd bool        // held by a fresh process
		held := map[uint64]holder{} // sockets held in the own namespace
		for _, i := range fresh {
			r := &results[i]
			if !r.ok {
				continue
			}
			for _, fd := range r.proc.FDs {
				if fd.Inode == 0 {
					continue
				}
				freshInodes[fd.Inode] = true
				fifoOrMemfd = fifoOrMemfd || fd.Kind == KindFIFO || fd.Kind == KindMemfd
				if fd.Kind == KindSocket && (r.proc.NetNS == ownNS || r.proc.NetNS == 0) {
					if _, ok := held[fd.Inode]; !ok {
						held[fd.Inode] = holder{r.proc.PID, fd.Num}
					}
				}
			}
		}
		if useNetlink {
			dumpWG.Add(1)
			go func() {
				defer dumpWG.Done()
				dumped, dumpWarn, dumpErr = p.dumpRelated(ownNS, held)
			}()
		}
		if reuse != nil {
			reuse.noPathStat = !fifoOrMemfd
		}
		walk(rest)
	} else {
		all := make([]int, len(pids))
		for i := range all {
			all[i] = i
		}
		walk(all)
	}
	// The BPF run's end: where it failed, the processes left to it are
	// read from /proc.
	var bpf *bpfSocketFDs
	if run != nil {
		var why string
		if bpf, why = run.wait(); bpf == nil {
			res.HoldersSource, res.HoldersNote = HoldersProc, why
			var again []int
			for i := range results {
				if results[i].bpf {
					again = append(again, i)
				}
			}
			reuse.bpf = false
			walk(again)
		} else if !related {
			for i := range results {
				if r := &results[i]; r.bpf {
					r.proc.FDs, r.bpf = bpf.fds(r.proc.PID, nil), false
				}
			}
		}
	}
	dumpWG.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Processes = make([]Process, 0, len(pids))
	var denied []int         // the processes not readable, by PID
	var fromBPF map[int]bool // the processes whose socket FDs are still the BPF run's
	for i := range results {
		r := &results[i]
		if r.ok && r.bpf {
			if fromBPF == nil {
				fromBPF = map[int]bool{}
			}
			fromBPF[r.proc.PID] = true
		}
		if r.denied {
			res.Unreadable++
			denied = append(denied, pids[i])
		} else if r.ok && r.proc.EnvDenied {
			res.EnvUnreadable++
		}
		if r.err != nil {
			res.Errors = append(res.Errors, r.err)
		}
		if r.ok {
			res.Processes = append(res.Processes, r.proc)
		}
	}
	results = nil
	if reuse != nil && reuse.t != nil {
		seen := make(map[int]bool, len(res.Processes))
		for i := range res.Processes {
			seen[res.Processes[i].PID] = true
		}
		reuse.t.keep(seen)
	}
	slices.SortFunc(res.Processes, func(a, b Process) int { return a.PID - b.PID })
	if opts.NoSockets {
		res.Sockets = map[uint64]Socket{}
		return res, nil
	}
	if incremental {
		if p.resolveIncremental(ctx, res, ownNS, reuse, denied) {
			return res, nil
		}
		dumpWG.Add(1) // too much is new, or not every process was read: dump
		dump()
	}

	if full && useNetlink {
		if dumpErr != nil {
			// Netlink unusable (e.g. no sock_diag module): fall back to /proc/net.
			res.Warnings = append(res.Warnings, fmt.Sprintf("sock_diag unavailable, using /proc/net: %v", dumpErr))
			useNetlink = false
			dumped = nil
		} else {
			res.Warnings = append(res.Warnings, dumpWarn...)
		}
	}
	if dumped == nil {
		dumped = map[uint64]Socket{}
	}
	res.Sockets = dumped

	// Socket inodes held, per namespace, with one holder each.
	if related {
		// The sockets the fresh processes hold in other namespaces (or
		// all, without sock_diag), and what relates to them there; then
		// the others' descriptors of what is kept.
		need := p.neededSockets(res, freshPID)
		p.resolveFull(ctx, res, need, ownNS, useNetlink, true)
		keep := relatedInodes(res.Sockets, freshInodes)
		for i := range res.Processes {
			pr := &res.Processes[i]
			switch {
			case freshPID[pr.PID]:
			case fromBPF[pr.PID]:
				pr.FDs = bpf.fds(pr.PID, keep)
			default:
				pr.FDs = keepFDs(pr.FDs, keep)
			}
		}
		p.cache.setRelated(res.Sockets)
	} else if need := p.neededSockets(res, nil); full {
		p.resolveFull(ctx, res, need, ownNS, useNetlink, false)
		p.cache.setFull(res.Sockets)
		if reuse != nil {
			p.cache.setDumped(res, denied)
		}
	} else {
		p.resolveTargeted(ctx, res, need, ownNS, useNetlink)
	}
	if len(res.Warnings) > 0 {
		res.Partial = true
	}
	return res, nil
}

// reuseScan is one full scan taking descriptor tables from earlier ones.
type reuseScan struct {
	t     *fdTables
	scan  int
	use   bool         // take the tables (else only keep them)
	fresh map[int]bool // read in full anyway
	// bpf: a BPF run started at since (clock ticks since boot) has the
	// socket descriptors of the processes not fresh started before it:
	// their /proc/PID/fd is not read, their FDs are made from the run's
	// records after the walk (a related scan's: only those it keeps).
	bpf   bool
	since uint64
	// related: a related scan (a process not fresh keeps only what
	// compactFDs keeps).
	related bool
	// noPathStat: the fresh processes of a related scan hold no FIFO and
	// no memfd, so the others' path targets, never kept, are not stat'ed.
	noPathStat bool
}

// scanProcess reads one process, its descriptors and handoff environment;
// with reuse, those are kept for later full scans, or taken from an earlier
// one where the process is unchanged (ScanOptions.ReuseFDs).
func (r *procReader) scanProcess(pid int, withInfo bool, reuse *reuseScan) procResult {
	op, gone, err := r.readProcess(pid)
	if gone {
		return procResult{}
	}
	if err != nil {
		if IsPermission(err) {
			return procResult{denied: true}
		}
		return procResult{err: err}
	}
	defer unix.Close(op.dirfd)
	out := procResult{ok: true}
	proc := op.Process
	count := -1
	if reuse != nil && reuse.bpf && !proc.Kernel && !reuse.fresh[pid] && proc.StartTime < reuse.since {
		out.bpf = true
		h, err := r.readHandoff(pid, op.dirfd)
		switch {
		case err == nil:
			proc.Handoff = h
		case IsGone(err):
			return procResult{}
		case IsPermission(err):
			proc.Denied = true
		default:
			out.err = fmt.Errorf("read environ of pid %d: %w", pid, err)
		}
		out.denied = proc.Denied
		out.proc = proc
		return out
	}
	if reuse != nil && reuse.t != nil && !proc.Kernel {
		var st unix.Stat_t
		if err := unix.Fstatat(op.dirfd, "fd", &st, 0); err == nil && st.Size > 0 {
			count = int(st.Size)
			if e, ok := reuse.t.get(pid, proc.StartTime, count, reuse.scan, reuse.related, reuse.noPathStat); ok && reuse.use && !reuse.fresh[pid] {
				proc.FDs, proc.Handoff = e.fds, e.handoff
				return procResult{ok: true, proc: proc}
			}
		}
	}
	noPathStat := reuse != nil && reuse.noPathStat && !reuse.fresh[pid]
	if !proc.Kernel {
		r.noPathStat = noPathStat
		fds, err := r.readFDs(pid, op.dirfd, withInfo, nil)
		r.noPathStat = false
		switch {
		case err == nil:
			proc.FDs = fds
		case IsGone(err):
			return procResult{}
		case IsPermission(err):
			proc.Denied = true
		default:
			out.err = fmt.Errorf("read fds of pid %d: %w", pid, err)
		}
		h, err := r.readHandoff(pid, op.dirfd)
		switch {
		case err == nil:
			proc.Handoff = h
		case IsGone(err):
			return procResult{}
		case IsPermission(err):
			proc.EnvDenied = true
		default:
			out.err = errors.Join(out.err, fmt.Errorf("read environ of pid %d: %w", pid, err))
		}
	}
	// A related scan keeps of a process not read fresh only descriptors
	// whose holders are looked for by inode, and not their link text.
	compact := reuse != nil && reuse.related && !reuse.fresh[pid]
	if compact {
		proc.FDs = compactFDs(proc.FDs)
	}
	out.denied = proc.Denied
	out.proc = proc
	if count >= 0 && out.err == nil && !proc.Denied && !proc.EnvDenied {
		reuse.t.put(pid, fdTable{start: proc.StartTime, count: count, readAt: reuse.scan, fds: proc.FDs, handoff: proc.Handoff, compact: compact, noPathStat: noPathStat})
	}
	return out
}

// addPID notes one more process in the namespace (pid is the first).
func (n *nsNeed) addPID(pid int) {
	if pid != n.pid && (len(n.others) == 0 || n.others[len(n.others)-1] != pid) {
		n.others = append(n.others, pid)
	}
}

// eachPID calls f with the namespace's first process, then with the next
// one while the one tried has exited (its /proc entry is gone): a process
// that ends during a scan does not leave its namespace's sockets
// unresolved while another process holds them.
func (n *nsNeed) eachPID(f func(pid int) error) error {
	err := f(n.pid)
	for _, pid := range n.others {
		if !IsGone(err) {
			break
		}
		err = f(pid)
	}
	return err
}

// holder is one (pid, fd) holding a socket, used to ask the socket's family.
type holder struct {
	pid, fd int
}

type nsNeed struct {
	pid    int   // a process in the namespace, to enter it or read its net/*
	others []int // more of them, tried in turn when pid has exited
	inodes map[uint64]holder
}

// neededSockets collects socket inodes held by scanned processes that are not
// yet in res.Sockets, grouped by network namespace. Sockets of processes whose
// namespace is unknown are grouped under 0: they are looked for only by inode
// in the own namespace's tables, and if not found there stay unresolved with
// an unknown namespace, never labelled as the own namespace's.
func (p FS) neededSockets(res *Scan, only map[int]bool) map[uint64]*nsNeed {
	need := map[uint64]*nsNeed{}
	for i := range res.Processes {
		pr := &res.Processes[i]
		if only != nil && !only[pr.PID] {
			continue
		}
		for _, fd := range pr.FDs {
			if fd.Kind != KindSocket || fd.Inode == 0 {
				continue
			}
			if _, ok := res.Sockets[fd.Inode]; ok {
				continue
			}
			ns := pr.NetNS
			n := need[ns]
			if n == nil {
				n = &nsNeed{pid: pr.PID, inodes: map[uint64]holder{}}
				need[ns] = n
			}
			n.addPID(pr.PID)
			n.inodes[fd.Inode] = holder{pr.PID, fd.Num}
		}
	}
	return need
}

// resolveFull fills res.Sockets for sockets not found in the own namespace's
// dump: other namespaces are dumped whole (of which a related scan keeps
// what relates to the sockets needed); what is left gets its family.
func (p FS) resolveFull(ctx context.Context, res *Scan, need map[uint64]*nsNeed, ownNS uint64, useNetlink, related bool) {
	for ns, n := range need {
		if ctx.Err() != nil {
			return
		}
		look := ns
		if ns == 0 {
			look = ownNS // unknown namespace: only the own tables, by inode
		}
		if look != ownNS || !useNetlink {
			var m map[uint64]Socket
			var warn []string
			var err error
			err = n.eachPID(func(pid int) error {
				if useNetlink {
					m, warn, err = p.dumpNS(p.path(strconv.Itoa(pid), "ns", "net"), look, 0)
				} else {
					m, warn, err = p.readProcNetNS(look, pid, look == ownNS)
				}
				return err
			})
			res.Warnings = append(res.Warnings, warn...)
			if err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("sockets of network namespace %d unresolved: %v", look, err))
			}
			if related {
				held := make(map[uint64]bool, len(n.inodes))
				for ino := range n.inodes {
					held[ino] = true
				}
				m = relatedSockets(m, held)
			}
			for ino, s := range m {
				res.Sockets[ino] = s
			}
		}
		p.resolveRest(res, n, ns)
	}
}

// maxIncremental bounds the sockets an incremental pass looks up one by one
// (a unix lookup by inode walks the kernel's whole table): past it, a dump
// is cheaper.
const maxIncremental = 256

// resolveIncremental fills res.Sockets for a pass that reused descriptor
// tables without dumping the socket tables: the sockets of processes
// unchanged since the last full dump are taken from it (their states and
// queues as of that dump, at most ReuseScans passes old, as their
// descriptors are), those of the processes read afresh (FreshPIDs: the
// units', shown) are refreshed by exact lookup, and sockets new since are
// looked up. Only the sockets scanned processes hold are kept, so a
// connection closed since the dump is not offered as one still open, and
// those the dump saw held by no readable process (the join says unknown
// for them). It reports false, having changed nothing, where the dump
// must run: the processes not readable are not the ones of the last dump
// (what they hold now only a dump shows), an error, or too many new
// sockets.
func (p FS) resolveIncremental(ctx context.Context, res *Scan, ownNS uint64, reuse *reuseScan, denied []int) bool {
	p.cache.mu.Lock()
	base, unheld, sameDenied := p.cache.full, p.cache.unheld, slices.Equal(p.cache.denied, denied)
	p.cache.mu.Unlock()
	if !sameDenied || len(res.Errors) > 0 {
		return false
	}
	p.cache.mu.Lock()
	partial := p.cache.related
	p.cache.mu.Unlock()
	if partial {
		return false // the last dump kept only what related to its units
	}
	need := map[uint64]*nsNeed{}
	unknown := 0
	held := make([]uint64, 0, len(base)) // held now and in the dump
	var refreshed []uint64               // of those, the ones looked up again
	for i := range res.Processes {
		pr := &res.Processes[i]
		fresh := reuse.fresh[pr.PID]
		for _, fd := range pr.FDs {
			if fd.Kind != KindSocket || fd.Inode == 0 {
				continue
			}
			_, known := base[fd.Inode]
			if known {
				held = append(held, fd.Inode)
				if !fresh {
					continue
				}
				refreshed = append(refreshed, fd.Inode)
			} else {
				unknown++
			}
			n := need[pr.NetNS]
			if n == nil {
				n = &nsNeed{pid: pr.PID, inodes: map[uint64]holder{}}
				need[pr.NetNS] = n
			}
			n.addPID(pr.PID)
			n.inodes[fd.Inode] = holder{pr.PID, fd.Num}
		}
	}
	if unknown > maxIncremental {
		return false
	}
	res.Sockets = map[uint64]Socket{}
	p.resolveTargeted(ctx, res, need, ownNS, true)
	looked := res.Sockets
	if len(res.Warnings) > 0 {
		res.Partial = true
	}

	// Nothing changed (the sockets held now, with those the dump saw held by
	// no readable process, are exactly the dump's, and the lookups found
	// them as it has them): the dump's map as it is, shared and read-only.
	slices.Sort(held)
	held = slices.Compact(held)
	covered := len(held)
	for _, ino := range unheld {
		if _, ok := base[ino]; ok {
			if _, dup := slices.BinarySearch(held, ino); !dup {
				covered++
			}
		}
	}
	same := unknown == 0 && covered == len(base)
	for ino, s := range looked {
		if b, ok := base[ino]; !ok || b != s {
			same = false
			break
		}
	}
	for _, ino := range refreshed {
		if _, ok := looked[ino]; !ok {
			same = false // gone since its holder's descriptors were read
			break
		}
	}
	if same {
		res.Sockets = base
		return true
	}

	sockets := make(map[uint64]Socket, len(base))
	// The sockets no readable process held at the dump (the processes not
	// readable then, the same now, hold them): as the dump saw them.
	for _, ino := range unheld {
		if s, ok := base[ino]; ok {
			sockets[ino] = s
		}
	}
	for _, ino := range held {
		sockets[ino] = base[ino]
	}
	for _, ino := range refreshed {
		delete(sockets, ino) // what the lookup did not find is not taken from the dump
	}
	for ino, s := range looked {
		sockets[ino] = s // a fresh lookup replaces what an unchanged holder gave
	}
	res.Sockets = sockets
	p.cache.setFull(res.Sockets)
	return true
}

// resolveRest gives every still-unknown socket of n its family (from the
// socket's "system.sockprotoname" attribute) or marks it unresolved.
func (p FS) resolveRest(res *Scan, n *nsNeed, ns uint64) {
	buf := make([]byte, 64)
	var netlink map[uint64]NetlinkInfo // /proc/PID/net/netlink of this namespace, read once when needed
	for ino, h := range n.inodes {
		if _, ok := res.Sockets[ino]; ok {
			continue
		}
		s := Socket{Inode: ino, NetNS: ns, Status: Unresolved}
		path := p.path(strconv.Itoa(h.pid), "fd", strconv.Itoa(h.fd))
		if sz, err := unix.Getxattr(path, "system.sockprotoname", buf); err == nil {
			name := string(buf[:sz])
			if i := indexNUL(name); i >= 0 {
				name = name[:i]
			}
			s.Family, s.Proto = protoNameFamily(name)
			if s.Proto == 0 && s.Family != FamilyUnix && s.Family != FamilyUnknown {
				s.Status = FamilyOnly
			}
			if s.Family == FamilyNetlink {
				if netlink == nil {
					netlink = p.readNetlink(h.pid)
				}
				if info, ok := netlink[ino]; ok {
					s.Netlink = &info
				}
			}
		}
		res.Sockets[ino] = s
	}
}

// readNetlink reads the netlink sockets of pid's network namespace
// (/proc/PID/net/netlink); empty (not nil) when it cannot be read.
func (p FS) readNetlink(pid int) map[uint64]NetlinkInfo {
	out := map[uint64]NetlinkInfo{}
	b, err := os.ReadFile(p.path(strconv.Itoa(pid), "net", "netlink"))
	if err != nil {
		return out
	}
	_ = parseProcNetNetlink(b, func(ino uint64, info NetlinkInfo) { out[ino] = info })
	return out
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// resolveTargeted resolves the sockets held by the scanned processes without
// dumping whole tables when it can: unix sockets by inode, inet sockets known
// from an earlier scan by exact lookup, and the rest by dumping only the
// tables they belong to.
func (p FS) resolveTargeted(ctx context.Context, res *Scan, need map[uint64]*nsNeed, ownNS uint64, useNetlink bool) {
	for ns, n := range need {
		if ctx.Err() != nil {
			return
		}
		look := ns
		if ns == 0 {
			look = ownNS // unknown namespace: only the own tables, by inode
		}
		if !useNetlink {
			var m map[uint64]Socket
			var warn []string
			err := n.eachPID(func(pid int) (err error) {
				m, warn, err = p.readProcNetNS(look, pid, look == ownNS)
				return err
			})
			res.Warnings = append(res.Warnings, warn...)
			if err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("sockets of network namespace %d unresolved: %v", look, err))
			}
			for ino := range n.inodes {
				if s, ok := m[ino]; ok {
					res.Sockets[ino] = s
				}
			}
			p.resolveRest(res, n, ns)
			continue
		}
		err := n.eachPID(func(pid int) error {
			nsPath := ""
			if look != ownNS {
				nsPath = p.path(strconv.Itoa(pid), "ns", "net")
			}
			return p.lookupNS(res, n, look, nsPath)
		})
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("sockets of network namespace %d unresolved: %v", look, err))
		}
		p.resolveRest(res, n, ns)
	}
}

func (p FS) lookupNS(res *Scan, n *nsNeed, ns uint64, nsPath string) error {
	var c *diagConn
	var err error
	if nsPath == "" {
		c, err = openDiag()
	} else {
		c, err = openDiagIn(nsPath)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	inodes := make([]uint64, 0, len(n.inodes))
	for ino := range n.inodes {
		inodes = append(inodes, ino)
	}
	slices.Sort(inodes)
	found := func(s Socket) {
		s.NetNS = ns
		res.Sockets[s.Inode] = s
	}
	// Inet sockets known from an earlier scan: exact lookups (hash lookups
	// in the kernel). Everything else is tried as unix by inode.
	var known []Socket
	var unixInodes []uint64
	for _, ino := range inodes {
		s, ok := p.cache.get(ino)
		switch {
		case ok && s.NetNS == ns && s.Family != FamilyUnix && s.Proto != 0:
			known = append(known, s)
		case ok && s.NetNS == ns && s.Family == FamilyUnix && s.State != StateListen:
			// The kernel looks unix sockets up by inode with a walk of the
			// whole table: reuse what the last full scan read (name, type
			// and peer do not change) and refresh only listeners, whose
			// accept backlog matters.
			res.Sockets[ino] = s
		default:
			unixInodes = append(unixInodes, ino)
		}
	}
	if err := c.lookupInet(known, func(s Socket) { found(s); p.cache.put(res.Sockets[s.Inode]) }); err != nil {
		return err
	}
	if err := p.resolveUnix(c, res, unixInodes, found); err != nil {
		return err
	}
	// Inet sockets new since the last full scan: ask each its protocol and
	// dump only the tables needed.
	type table struct {
		f Family
		p Proto
	}
	tables := map[table]bool{}
	buf := make([]byte, 64)
	for _, ino := range inodes {
		if _, ok := res.Sockets[ino]; ok {
			continue
		}
		h := n.inodes[ino]
		sz, err := unix.Getxattr(p.path(strconv.Itoa(h.pid), "fd", strconv.Itoa(h.fd)), "system.sockprotoname", buf)
		if err != nil {
			continue
		}
		name := string(buf[:sz])
		if i := indexNUL(name); i >= 0 {
			name = name[:i]
		}
		if f, pr := protoNameFamily(name); pr != 0 {
			tables[table{f, pr}] = true
		}
	}
	for t := range tables {
		err := c.dumpInet(t.f, t.p, func(s Socket) {
			if _, ok := n.inodes[s.Inode]; ok {
				found(s)
				p.cache.put(res.Sockets[s.Inode])
			}
		})
		if errors.Is(err, errDumpInterrupted) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s dump interrupted: data kept, may be inconsistent", t.f, t.p))
		} else if err != nil {
			return err
		}
	}
	return nil
}

// maxUnixLookups is how many unix sockets are looked up one by one at
// most: the kernel finds each by walking its whole table, so past a few
// (the manager of 1,000 socket units holds 1,000 listeners) one dump of
// the table costs less.
const maxUnixLookups = 32

// resolveUnix looks the unix sockets up by inode, or dumps the unix table
// for them when they are many: the listeners and unconnected sockets first
// (the kernel describes only those, a handful on a host with a million
// connected sockets; a unit's sockets are mostly these), then the rest by
// inode when few are left, else in a dump of the whole table.
func (p FS) resolveUnix(c *diagConn, res *Scan, inodes []uint64, found func(Socket)) error {
	if len(inodes) <= maxUnixLookups {
		return c.lookupUnix(inodes, found)
	}
	want := make(map[uint64]bool, len(inodes))
	for _, ino := range inodes {
		want[ino] = true
	}
	take := func(s Socket) {
		if want[s.Inode] {
			delete(want, s.Inode)
			found(s)
		}
	}
	interrupted := func(err error) error {
		if errors.Is(err, errDumpInterrupted) {
			res.Warnings = append(res.Warnings, "unix dump interrupted: data kept, may be inconsistent")
			return nil
		}
		return err
	}
	if err := interrupted(c.dumpUnixStates(1<<StateListen|1<<StateClose, take)); err != nil {
		return err
	}
	if len(want) <= maxUnixLookups {
		return c.lookupUnix(slices.Sorted(maps.Keys(want)), found)
	}
	return interrupted(c.dumpUnix(take))
}

// dumpNS dumps every socket table of a network namespace (nsPath "" for the
// caller's own). An interrupted table is retried twice, then kept and
// reported in warnings.
func (p FS) dumpNS(nsPath string, ns uint64, sizeHint int) (map[uint64]Socket, []string, error) {
	var c *diagConn
	var err error
	if nsPath == "" {
		c, err = openDiag()
	} else {
		c, err = openDiagIn(nsPath)
	}
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	m := make(map[uint64]Socket, sizeHint)
	add := func(s Socket) {
		s.NetNS = ns
		m[s.Inode] = s
	}
	var warns []string
	tables := []struct {
		name string
		run  func() error
	}{
		{"unix", func() error { return c.dumpUnix(add) }},
		{"tcp", func() error { return c.dumpInet(FamilyInet, ProtoTCP, add) }},
		{"tcp6", func() error { return c.dumpInet(FamilyInet6, ProtoTCP, add) }},
		{"udp", func() error { return c.dumpInet(FamilyInet, ProtoUDP, add) }},
		{"udp6", func() error { return c.dumpInet(FamilyInet6, ProtoUDP, add) }},
	}
	for _, t := range tables {
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = t.run(); !errors.Is(err, errDumpInterrupted) {
				break
			}
		}
		if errors.Is(err, errDumpInterrupted) {
			warns = append(warns, fmt.Sprintf("%s dump interrupted 3 times: data kept, may be inconsistent", t.name))
		} else if err != nil {
			if t.name == "unix" || t.name == "tcp" {
				return nil, warns, fmt.Errorf("%s: %w", t.name, err)
			}
			// IPv6 or UDP diag may be missing (module not loaded).
			warns = append(warns, fmt.Sprintf("%s table unavailable: %v", t.name, err))
		}
	}
	return m, warns, nil
}

// readProcNetNS reads the /proc/net tables of a namespace: root/net/* for the
// FS's own, root/PID/net/* for another.
func (p FS) readProcNetNS(ns uint64, pid int, own bool) (map[uint64]Socket, []string, error) {
	dir := p.path(strconv.Itoa(pid), "net")
	if own {
		dir = p.path("net")
	}
	m := map[uint64]Socket{}
	add := func(s Socket) {
		s.NetNS = ns
		m[s.Inode] = s
	}
	var warns []string
	buf := make([]byte, 0, 64<<10)
	for _, t := range []struct {
		name string
		fam  Family
		pr   Proto
	}{{"unix", FamilyUnix, 0}, {"tcp", FamilyInet, ProtoTCP}, {"tcp6", FamilyInet6, ProtoTCP}, {"udp", FamilyInet, ProtoUDP}, {"udp6", FamilyInet6, ProtoUDP}} {
		path := dir + "/" + t.name
		b, err := readSmall(path, buf)
		if err != nil {
			if IsGone(err) && t.name != "unix" && t.name != "tcp" {
				continue // IPv6 or UDP not configured
			}
			return m, warns, fmt.Errorf("read %s: %w", path, err)
		}
		buf = b[:0]
		if t.fam == FamilyUnix {
			err = parseProcNetUnix(b, add)
		} else {
			err = parseProcNetInet(b, t.fam, t.pr, add)
		}
		if err != nil {
			warns = append(warns, fmt.Sprintf("parse %s: %v", path, err))
		}
	}
	return m, warns, nil
}

// Sockets returns every socket of the FS's own network namespace, keyed by
// inode, from sock_diag (or /proc/net for a fixture root or with
// opts.NoNetlink). Warnings say what may be partial.
func (p FS) Sockets(ctx context.Context, opts ScanOptions) (map[uint64]Socket, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ns := p.ownNetNS()
	if p.live && !opts.NoNetlink {
		m, warns, err := p.dumpNS("", ns, p.cache.size())
		if err == nil {
			return m, warns, nil
		}
	}
	return p.readProcNetNS(ns, 0, true)
}

// SocketsByInode resolves the given socket inodes in the FS's own network
// namespace without a full dump when it can (unix by inode, inet from the
// last full scan by exact lookup). Inodes not found are absent from the map.
func (p FS) SocketsByInode(ctx context.Context, inodes []uint64) (map[uint64]Socket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns := p.ownNetNS()
	res := &Scan{Sockets: map[uint64]Socket{}}
	n := &nsNeed{inodes: map[uint64]holder{}}
	for _, ino := range inodes {
		n.inodes[ino] = holder{}
	}
	if !p.live {
		m, _, err := p.readProcNetNS(ns, 0, true)
		if err != nil {
			return nil, err
		}
		for _, ino := range inodes {
			if s, ok := m[ino]; ok {
				res.Sockets[ino] = s
			}
		}
		return res.Sockets, nil
	}
	c, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	found := func(s Socket) {
		s.NetNS = ns
		res.Sockets[s.Inode] = s
	}
	if err := p.resolveUnix(c, res, inodes, found); err != nil {
		return nil, err
	}
	var known []Socket
	missing := 0
	for _, ino := range inodes {
		if _, ok := res.Sockets[ino]; ok {
			continue
		}
		if s, ok := p.cache.get(ino); ok && s.Family != FamilyUnix {
			known = append(known, s)
		} else {
			missing++
		}
	}
	if err := c.lookupInet(known, found); err != nil {
		return nil, err
	}
	if missing > 0 || len(res.Sockets) < len(n.inodes) {
		for _, t := range []struct {
			f Family
			p Proto
		}{{FamilyInet, ProtoTCP}, {FamilyInet6, ProtoTCP}, {FamilyInet, ProtoUDP}, {FamilyInet6, ProtoUDP}} {
			err := c.dumpInet(t.f, t.p, func(s Socket) {
				if _, ok := n.inodes[s.Inode]; ok {
					found(s)
				}
			})
			if err != nil && !errors.Is(err, errDumpInterrupted) {
				return res.Sockets, err
			}
		}
	}
	return res.Sockets, nil
}
