//go:build oracle

package oracle

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/traffic"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// fixedSeeds run by default (go test -tags oracle, as .ci/test does), per
// systemd version. Every seed that ever found a false claim joins them once
// what it found is fixed (the claim itself is replayed by a unit test:
// inspect's TestTrackerTruth and TestJoinPreExecChild):
//   - 1 and 2: the claims TestTrackerTruth replays first; 1 again on
//     2026-12-07 (op 89 on 252: the manager's forked child read as the new
//     process), 2 (op 36 on 254: a client that gave up on unread data
//     counted dropped);
//   - 424242: a store a killed process had emptied said discarded, counts
//     forgotten after an ending process;
//   - 2266483067: fd_passed inodes during a daemon-reexec on 252;
//   - 1090550605: a queued restart on 252 said 0 preserved of 3;
//   - 8: a stop+start "to new PID 0" when a service was stopped with its
//     socket units (the socket's jobs taken for its start);
//   - 890124, 2080436131, 3186049091 (254) and 20261208 (252): fd_passed
//     naming a connection accepted on a passed number; 4275165520 (252):
//     connections "preserved" while the old process held them;
//     2344368019: connections a stop had closed said none held (254), an
//     Accept=yes restart's summary late (252) — the runs of 2026-12-08
//     (docs/oracle.md);
//   - 2808938044: the gap meter's storm of Accept=yes instances, summaries
//     late by minutes; 1395449253 (252): a passed number holding another
//     store entry dup'd there (2026-12-08, round 3, fourth stop).
//
// Timing varies run to run, so a seed does not find the same thing again
// at the same operation; what it adds is its own order of operations.
var fixedSeeds = []uint64{1, 2, 8, 424242, 2266483067, 1090550605,
	890124, 2080436131, 3186049091, 4275165520, 20261208, 2344368019, 2808938044, 1395449253}

// defaultOpsPerVersion is the operations per version by default, shared
// out over the seeds: 200 (issue 20), 34 for each of 6 seeds, about
// 2 minutes with both versions in parallel.
const defaultOpsPerVersion = 200

// oracleConns is how many connections the traffic generator holds to each
// demo service.
const oracleConns = 3

// TestOracle plays seeded random operation sequences on the demo in a
// sandbox of each systemd version (in parallel), with fdtop's watch
// alongside, and checks every claim the watch makes against the ground
// truth. FDTOP_ORACLE_SEEDS (comma-separated), FDTOP_ORACLE_OPS and
// FDTOP_ORACLE_VERSIONS (252,254) override the fixed set
// (tools/oracle.sh); FDTOP_ORACLE_REPORT names a file for the per-field
// counts.
func TestOracle(t *testing.T) {
	seeds := fixedSeeds
	if s := os.Getenv("FDTOP_ORACLE_SEEDS"); s != "" {
		seeds = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("FDTOP_ORACLE_SEEDS: %v", err)
			}
			seeds = append(seeds, n)
		}
	}
	ops := (defaultOpsPerVersion + len(seeds) - 1) / len(seeds)
	if s := os.Getenv("FDTOP_ORACLE_OPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("FDTOP_ORACLE_OPS: %v", err)
		}
		ops = n
	}
	total := newTally()
	t.Cleanup(func() {
		t.Logf("claims per field:\n%s", total)
		if p := os.Getenv("FDTOP_ORACLE_REPORT"); p != "" {
			_ = os.WriteFile(p, []byte(total.String()), 0o644)
		}
	})
	only := os.Getenv("FDTOP_ORACLE_VERSIONS")
	for _, v := range sandboxtest.Versions() {
		if only != "" && !strings.Contains(only, v.Name) {
			continue
		}
		t.Run("systemd"+v.Name, func(t *testing.T) {
			t.Parallel()
			for _, seed := range seeds {
				t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
					tl := newTally()
					runSeed(t, v, seed, ops, tl)
					t.Logf("systemd %s seed %d:\n%s", v.Name, seed, tl)
					total.merge(tl)
				})
			}
		})
	}
}

// run is one seed's sequence on one sandbox.
type run struct {
	t      *testing.T
	ctx    context.Context
	sb     *sandbox.Sandbox
	cfg    demo.Config
	b      *inspect.Builder
	rng    *rand.Rand
	tally  *tally
	gens   map[demo.Mode]*traffic.Generator
	seed   uint64
	ver    string
	log    []string // the operations so far
	failed bool

	// Claims of store entries over the whole run, by inode.
	storedClaims, removedClaims, initialStore map[uint64]int

	mgr    *manager
	client *dbusclient.Client

	// The Accept=yes socket's port and the connections held to it.
	acceptPort  int
	acceptConns []*acceptConn

	mu     sync.Mutex
	events []inspect.Event
	steps  []inspect.Step
	// shadow is a tracker fed the watch's own inputs: it tells when the
	// watch has no summary left to make (Tracker.Finishing), and how many
	// handoffs it has made, so an operation is checked only after them
	// (on a loaded machine the view that concludes a job can come late).
	shadow         *inspect.Tracker
	shadowHandoffs int
}

// always are the modes given Restart=always (a kill brings them back).
var always = map[demo.Mode]bool{demo.Activated: true, demo.Handoff: true}

func runSeed(t *testing.T, v sandboxtest.Version, seed uint64, ops int, tl *tally) {
	sb := sandboxtest.Start(t, v)
	for m := range always {
		dir := filepath.Join(sb.UnitDir, m.Service()+".d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "oracle.conf"), []byte("[Service]\nRestart=always\nRestartSec=50ms\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The barrier: a job on it is signalled after every signal before it,
	// so once the watch has said it finished, it has said everything of
	// the operation before.
	if err := sb.WriteUnit(barrier, "[Service]\nType=oneshot\nExecStart=/bin/true\n"); err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, ctx: context.Background(), sb: sb, rng: rand.New(rand.NewPCG(seed, 0x0fd70b)), tally: tl,
		gens: map[demo.Mode]*traffic.Generator{}, seed: seed, ver: v.Name,
		storedClaims: map[uint64]int{}, removedClaims: map[uint64]int{}, initialStore: map[uint64]int{},
		shadow: inspect.NewTracker()}
	// The oracle's own units, loaded by the demo's daemon-reload.
	r.setupAccept()
	r.setupJoin()
	r.cfg = sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
	cfg := r.cfg
	client, err := dbusclient.Connect(context.Background(), dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fs, err := procfs.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	r.client = client
	r.b = &inspect.Builder{Systemd: client, Kernel: fs, Scope: "user", Patterns: []string{"demo-*", "oracle-accept*", "oracle-j*"}}
	if r.mgr, err = dialManager(sb.Address); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.mgr.conn.Close() }) // the last one dialled
	r.startAccept()
	r.startJoin()
	for _, m := range demo.Modes {
		r.gens[m] = sandboxtest.Traffic(t, cfg.Addr(m), oracleConns, 50*time.Millisecond)
	}
	r.watch(client, fs)
	t.Cleanup(func() {
		if r.failed {
			r.dumpTrace()
		}
	})
	for i := range ops {
		r.step(i)
	}
}

// watch runs fdtop's live model (the Watcher fdtop watch runs) until the
// test ends, keeping its events and the tracker's inputs.
func (r *run) watch(client *dbusclient.Client, fs procfs.FS) {
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := client.Subscribe(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make(chan inspect.Event, 4096)
	first := make(chan struct{})
	var once sync.Once
	w := &inspect.Watcher{Snapshots: r.b, Events: sub, Interval: 500 * time.Millisecond, FullEvery: 30,
		Alive: inspect.SocketsAlive(fs.SocketsByInode), FDCount: fs.FDCount, SocketInode: fs.SocketInode,
		OnSnapshot: func(*inspect.Snapshot) { once.Do(func() { close(first) }) },
		// The gap meter on the Accept=yes socket only: on the demo's
		// services its connects would be clients the traffic counts miss.
		Probe: func(name string) bool { return name == acceptSocket },
		Trace: func(s inspect.Step) {
			r.mu.Lock()
			r.steps = append(r.steps, s)
			for _, e := range r.shadow.Step(s) {
				if e.Type == inspect.EventHandoff {
					r.shadowHandoffs++
				}
			}
			r.mu.Unlock()
		}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sub.Close()
		_ = w.Run(ctx, out)
	}()
	go func() {
		for {
			select {
			case ev := <-out:
				r.mu.Lock()
				r.events = append(r.events, ev)
				r.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	r.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		r.t.Fatal("the watch took no first snapshot in 30 s")
	}
}

// dumpTrace writes the tracker's inputs where the replay tests read them.
func (r *run) dumpTrace() {
	dir := os.Getenv("FDTOP_ORACLE_TRACES")
	if dir == "" {
		dir = os.TempDir()
	}
	p := filepath.Join(dir, fmt.Sprintf("oracle-systemd%s-seed%d.jsonl", r.ver, r.seed))
	f, err := os.Create(p)
	if err != nil {
		r.t.Logf("write trace: %v", err)
		return
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	r.mu.Lock()
	for _, s := range r.steps {
		_ = enc.Encode(s)
	}
	r.mu.Unlock()
	_ = bw.Flush()
	r.t.Logf("seed %d on systemd %s found false claims; the tracker's inputs (FDTOP_TRACE form) are in %s; operations:\n\t%s",
		r.seed, r.ver, p, strings.Join(r.log, "\n\t"))
}

func (r *run) nEvents() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *run) eventsSince(i int) []inspect.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]inspect.Event(nil), r.events[i:]...)
}

// falseClaim records a false claim: the test fails with the seed.
func (r *run) falseClaim(field, format string, args ...any) {
	r.t.Helper()
	r.failed = true
	r.tally.add(field, claimFalse)
	r.t.Errorf("seed %d, systemd %s, op %d (%s): false %s: %s", r.seed, r.ver, len(r.log)-1, r.log[len(r.log)-1], field, fmt.Sprintf(format, args...))
}

func (r *run) judge(field string, ok bool, format string, args ...any) {
	r.t.Helper()
	if ok {
		r.tally.add(field, claimTrue)
		return
	}
	r.falseClaim(field, format, args...)
}

func (r *run) sysctl(args ...string) string {
	r.t.Helper()
	out, err := r.sb.Systemctl(r.ctx, args...)
	if err != nil {
		r.t.Fatalf("systemctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// before is the ground truth taken before an operation.
type before struct {
	pid      map[demo.Mode]int
	listener map[demo.Mode]uint64
	stats    map[demo.Mode]traffic.Stats
	store    map[demo.Mode]int // NFileDescriptorStore
	events   int
	logOps   int
}

func (r *run) ports() []int {
	var out []int
	for _, m := range demo.Modes {
		out = append(out, r.cfg.Ports[m])
	}
	return out
}

func (r *run) mainPID(m demo.Mode) int { return r.service(m).mainPID }

// mainPIDs reads every demo service's main PID and store size from the
// manager.
func (r *run) mainPIDs() (map[demo.Mode]int, map[demo.Mode]int) {
	pids, store := map[demo.Mode]int{}, map[demo.Mode]int{}
	for _, m := range demo.Modes {
		st := r.service(m)
		pids[m], store[m] = st.mainPID, st.store
	}
	return pids, store
}

// service reads a demo service's state from the manager, dialling it
// again while it re-executes (its private socket closes).
func (r *run) service(m demo.Mode) unitState {
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := r.mgr.service(r.ctx, m.Service())
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatal(err)
		}
		r.redial()
	}
}

// redial connects to the manager again (after a re-execution).
func (r *run) redial() {
	time.Sleep(10 * time.Millisecond)
	if mgr, err := dialManager(r.sb.Address); err == nil {
		r.mgr.conn.Close()
		r.mgr = mgr
	}
}

func (r *run) takeBefore() before {
	b := before{listener: map[demo.Mode]uint64{}, stats: map[demo.Mode]traffic.Stats{}}
	socks, err := ssTCP(false, r.ports()...)
	if err != nil {
		r.t.Fatal(err)
	}
	b.pid, b.store = r.mainPIDs()
	for _, m := range demo.Modes {
		b.listener[m] = listenerInode(socks, r.cfg.Ports[m])
		b.stats[m] = r.gens[m].Stats()
	}
	b.events = r.nEvents()
	b.logOps = extrasHandled(r.cfg.LogPath(demo.Handoff))
	return b
}

// step plays one random operation and checks what the watch said of it.
func (r *run) step(i int) {
	start := time.Now()
	m := demo.Modes[r.rng.IntN(len(demo.Modes))]
	svc := m.Service()
	b := r.takeBefore()
	x := r.rng.IntN(100)
	var op string
	handoffs := 0 // the handoffs of svc the operation makes
	kind := ""    // what the handoff's job is
	switch {
	case x < 20:
		op, handoffs, kind = "restart "+svc, 1, "restart"
		r.note(op)
		r.sysctl("restart", svc)
	case x < 30:
		op, handoffs, kind = "stop+start "+svc, 1, "stop+start"
		r.note(op)
		r.sysctl("stop", svc)
		r.sysctl("start", svc)
	case x < 41:
		op, handoffs = "kill -s KILL "+svc, 1
		r.note(op)
		r.sysctl("kill", "--signal=KILL", svc)
		if always[m] {
			kind = "restart" // the manager's automatic restart
			r.waitPIDChange(m, b.pid[m])
		} else {
			kind = "start"
			r.waitState(m, "failed", "inactive")
			r.sysctl("reset-failed", svc)
			r.sysctl("start", svc)
		}
	case x < 48:
		op, handoffs, kind = "restart --no-block "+svc+"; daemon-reload", 1, "restart"
		r.note(op)
		r.sysctl("restart", "--no-block", svc)
		r.sysctl("daemon-reload")
	case x < 53:
		op, handoffs, kind = "restart --no-block "+svc+"; daemon-reexec", 1, "restart"
		r.note(op)
		r.sysctl("restart", "--no-block", svc)
		r.sysctl("daemon-reexec")
	case x < 59:
		op, handoffs, kind = "restart --no-block "+svc+"; restart "+svc+" (queued)", 1, "restart"
		r.note(op)
		r.sysctl("restart", "--no-block", svc)
		r.waitState(m, "activating", "active")
		r.sysctl("restart", svc)
	case x < 66:
		n := 1 + r.rng.IntN(8)
		op = fmt.Sprintf("%d short clients to %s", n, svc)
		r.note(op)
		r.clients(m, n)
	case x < 74:
		sig := "USR1"
		if r.rng.IntN(3) == 0 {
			sig = "USR2"
		}
		op = "kill -s " + sig + " " + demo.Handoff.Service() + " (FDSTORE / FDSTOREREMOVE)"
		m, svc = demo.Handoff, demo.Handoff.Service()
		r.note(op)
		r.sysctl("kill", "--kill-whom=main", "--signal="+sig, svc)
		r.waitLogOps(b.logOps)
	case x < 80:
		op = r.acceptOp(r.rng.IntN(2) == 0)
	case x < 89:
		op = r.joinOp()
	default:
		op = "snapshot"
		r.note(op)
		r.checkSnapshot()
		r.checkAcceptSnapshot(nil)
		if r.rng.IntN(2) == 0 {
			op = "snapshot+doctor"
			r.log[len(r.log)-1] = op
			r.checkDoctor()
		}
	}
	r.tally.op(opName(op))
	t0 := time.Now()
	r.settle(m, b, handoffs)
	t1 := time.Now()
	r.check(m, b, handoffs, kind)
	if os.Getenv("FDTOP_ORACLE_TIMES") != "" {
		r.t.Logf("op %d %s: %v to here, settle %v, check %v", i, op, t0.Sub(start), t1.Sub(t0), time.Since(t1))
	}
}

// opName is the kind of an operation, for the counts.
func opName(op string) string {
	switch {
	case strings.Contains(op, "daemon-reload"):
		return "restart+reload"
	case strings.Contains(op, "daemon-reexec"):
		return "restart+reexec"
	case strings.Contains(op, "queued"):
		return "queued restart"
	case strings.HasPrefix(op, "join: "):
		return "join"
	case strings.Contains(op, acceptSocket):
		if strings.HasPrefix(op, "restart") {
			return "accept restart"
		}
		return "accept burst"
	case strings.Contains(op, "short clients"):
		return "clients"
	case strings.Contains(op, "FDSTORE"):
		return "fdstore"
	case strings.HasPrefix(op, "kill"):
		return "kill"
	}
	return strings.Fields(op)[0]
}

func (r *run) note(op string) { r.log = append(r.log, op) }

// waitFor waits up to 20 s for cond.
func (r *run) waitFor(what string, cond func() bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Logf("seed %d op %d: no %s in 20 s", r.seed, len(r.log)-1, what)
	return false
}

func (r *run) waitState(m demo.Mode, states ...string) {
	r.waitFor(m.Service()+" "+strings.Join(states, "/"), func() bool {
		return slices.Contains(states, r.service(m).active)
	})
}

func (r *run) waitPIDChange(m demo.Mode, old int) {
	r.waitFor(m.Service()+" with a new main PID", func() bool {
		p := r.mainPID(m)
		return p != 0 && p != old
	})
}

func (r *run) waitLogOps(n int) {
	r.waitFor("the handoff server's log of its store operation", func() bool { return extrasHandled(r.cfg.LogPath(demo.Handoff)) > n })
}

// clients connects n short-lived clients: each sends a line, reads the
// reply and closes.
func (r *run) clients(m demo.Mode, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", r.cfg.Addr(m), time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte("oracle\n"))
			_, _ = bufio.NewReader(c).ReadString('\n')
		}()
	}
	wg.Wait()
}

// settle waits until the manager has no job, every demo service runs with
// its clients connected, and the watch has said what it will of the
// operation.
func (r *run) settle(m demo.Mode, b before, handoffs int) {
	r.waitFor("quiet manager", func() bool {
		for _, mm := range demo.Modes {
			if r.gens[mm].Stats().Connected < oracleConns {
				return false
			}
		}
		if n, err := r.mgr.jobs(r.ctx); err != nil || n > 0 {
			if err != nil {
				r.redial()
			}
			return false
		}
		for _, mm := range demo.Modes {
			if st := r.service(mm); st.active != "active" || st.job != 0 {
				return false
			}
		}
		return true
	})
	if handoffs == 0 {
		return
	}
	// After a re-execution the watch may still be connecting again when
	// the barrier runs: it is run again until the watch sees one.
	passed := false
	for try := 0; try < 10 && !passed; try++ {
		from := r.nEvents()
		if err := r.mgr.start(r.ctx, barrier); err != nil {
			r.redial()
			continue
		}
		deadline := time.Now().Add(3 * time.Second)
		for !passed && time.Now().Before(deadline) {
			passed = slices.ContainsFunc(r.eventsSince(from), func(e inspect.Event) bool {
				return e.Unit == barrier && e.Type == inspect.EventJobFinished
			})
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !passed {
		r.t.Logf("seed %d op %d: the watch never saw the barrier", r.seed, len(r.log)-1)
	}
	r.waitFor("watch idle", func() bool { return r.jobsDone(b.events) })
	r.waitConcluded()
}

// waitConcluded waits a moment (at most 1.5 s) until the watch has made
// the summary of every job that ended (the shadow tracker has none left to
// make, and the events have every handoff it made). Bounded and quiet: a
// summary can wait longer for a view of a unit that went (seen on 252;
// not looked into yet), and the check that follows then says what is
// missing.
func (r *run) waitConcluded() {
	r.waitForQuiet(1500*time.Millisecond, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.shadow.Finishing()) > 0 {
			return false
		}
		n := 0
		for _, e := range r.events {
			if e.Type == inspect.EventHandoff {
				n++
			}
		}
		return n >= r.shadowHandoffs
	})
}

// barrier is the unit whose job marks the end of an operation's signals.
const barrier = "oracle-barrier.service"

// jobsDone reports that every job the watch saw start since event i ended.
func (r *run) jobsDone(i int) bool {
	running := map[uint32]bool{}
	for _, e := range r.eventsSince(i) {
		switch e.Type {
		case inspect.EventJobStarted:
			running[e.JobID] = true
		case inspect.EventJobFinished:
			delete(running, e.JobID)
		}
	}
	return len(running) == 0
}

func handoffsOf(evs []inspect.Event, unit string) []inspect.Event {
	var out []inspect.Event
	for _, e := range evs {
		if e.Type == inspect.EventHandoff && e.Unit == unit {
			out = append(out, e)
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func modeOf(unit string) (demo.Mode, bool) {
	for _, m := range demo.Modes {
		if m.Service() == unit || m.Socket() == unit {
			return m, true
		}
	}
	return "", false
}
