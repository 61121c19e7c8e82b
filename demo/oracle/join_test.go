//go:build oracle

package oracle

// Services with several socket units and sockets with several services
// (issue 20's join cases), and the doctor's findings.

import (
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/live"
)

// The join units: oracle-jm.service is started by two socket units;
// oracle-jp.socket names oracle-jreal.service (Service=) and
// oracle-jother.service takes it too (Sockets=, issue 20 case 12);
// oracle-jc.service closes the listener it was passed (a true
// listener-not-held for the doctor), started and stopped at random.
var (
	joinSockets  = []string{"oracle-jm.socket", "oracle-jm-b.socket", "oracle-jp.socket", "oracle-jc.socket"}
	joinServices = []string{"oracle-jm.service", "oracle-jreal.service", "oracle-jother.service", "oracle-jc.service"}
	// joinService is each socket's service as its unit file says.
	joinService = map[string]string{
		"oracle-jm.socket":   "oracle-jm.service",
		"oracle-jm-b.socket": "oracle-jm.service",
		"oracle-jp.socket":   "oracle-jreal.service",
		"oracle-jc.socket":   "oracle-jc.service",
	}
)

// joinUnits are the join units' files; rt is the runtime directory their
// sockets are bound in.
func joinUnits(rt string) map[string]string {
	sleep := "ExecStart=/bin/sleep infinity\n"
	return map[string]string{
		"oracle-jm.socket":      "[Socket]\nListenStream=" + rt + "/oracle-jm.sock\n",
		"oracle-jm-b.socket":    "[Socket]\nListenStream=" + rt + "/oracle-jm-b.sock\nService=oracle-jm.service\n",
		"oracle-jm.service":     "[Service]\n" + sleep,
		"oracle-jp.socket":      "[Socket]\nListenStream=" + rt + "/oracle-jp.sock\nService=oracle-jreal.service\n",
		"oracle-jreal.service":  "[Service]\n" + sleep,
		"oracle-jother.service": "[Service]\nSockets=oracle-jp.socket\n" + sleep,
		"oracle-jc.socket":      "[Socket]\nListenStream=" + rt + "/oracle-jc.sock\n",
		"oracle-jc.service":     "[Service]\nExecStart=/bin/sh -c 'exec /bin/sleep infinity 3<&-'\n",
	}
}

func (r *run) setupJoin() {
	for name, content := range joinUnits(r.sb.RuntimeDir) {
		if err := r.sb.WriteUnit(name, content); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *run) startJoin() {
	r.sysctl(append([]string{"start"}, joinSockets...)...)
	r.sysctl(append([]string{"start"}, joinServices...)...)
}

// joinOp plays one operation on the join units and checks the handoff it
// makes and a snapshot after it.
func (r *run) joinOp() string {
	x := r.rng.IntN(6)
	svc := "oracle-jm.service"
	job := "restart"
	var cmds [][]string
	switch x {
	case 0:
		cmds = [][]string{{"restart", svc}}
	case 1:
		job, cmds = "stop+start", [][]string{{"stop", svc}, {"start", svc}}
	case 2:
		svc, cmds = "oracle-jreal.service", [][]string{{"restart", "oracle-jreal.service"}}
	case 3:
		svc, cmds = "oracle-jother.service", [][]string{{"restart", "oracle-jother.service"}}
	case 4:
		job, cmds = "stop+start", [][]string{{"stop", svc, "oracle-jm.socket", "oracle-jm-b.socket"}, {"start", "oracle-jm.socket", "oracle-jm-b.socket"}, {"start", svc}}
	default:
		svc, job = "oracle-jc.service", ""
		if st, err := r.mgr.unitInfo(r.ctx, svc); err == nil && st.active == "active" {
			cmds = [][]string{{"stop", svc, "oracle-jc.socket"}}
		} else {
			cmds = [][]string{{"start", "oracle-jc.socket"}, {"start", svc}}
		}
	}
	var words []string
	for _, c := range cmds {
		words = append(words, strings.Join(c, " "))
	}
	op := "join: " + strings.Join(words, "; ")
	r.note(op)
	from := r.nEvents()
	before := r.joinTruth()
	for _, c := range cmds {
		r.sysctl(c...)
	}
	r.settleOwn(from)
	after := r.joinTruth()
	evs := r.eventsSince(from)
	for _, s := range joinServices {
		hs := handoffsOf(evs, s)
		if job == "" {
			continue // a start or a stop: no handoff to count
		}
		want := 0
		if s == svc {
			want = 1
		}
		r.judge("join.handoff_count", len(hs) == want, "%d handoff events of %s, want %d", len(hs), s, want)
		if s != svc {
			continue
		}
		for _, e := range hs {
			h := e.Handoff
			r.judge("join.handoff_pids", h.OldPID == before.pid[svc] && h.NewPID == after.pid[svc], "old_pid %d new_pid %d, the manager's MainPID was %d then %d", h.OldPID, h.NewPID, before.pid[svc], after.pid[svc])
			r.judge("join.handoff_job", h.HandoffJob == job, "handoff_job %q, the operation was a %s", h.HandoffJob, job)
			kept, replaced := 0, 0
			for _, name := range after.passed[svc] {
				if !strings.HasSuffix(name, ".socket") {
					continue
				}
				b, a := before.inode[name], after.inode[name]
				switch {
				case b != 0 && b == a:
					kept++
				case b != 0 && a != 0:
					replaced++
				}
			}
			if h.ListenersUnknown > 0 {
				r.tally.add("join.handoff_listeners", claimUnknown)
			} else {
				r.judge("join.handoff_listeners", h.ListenersKept == kept && h.ListenersReplaced == replaced,
					"kept %d replaced %d; of the sockets in LISTEN_FDNAMES (%s) ss says %d kept, %d replaced", h.ListenersKept, h.ListenersReplaced, strings.Join(after.passed[svc], ":"), kept, replaced)
			}
		}
	}
	r.checkJoinSnapshot()
	return op
}

// joinState is the ground truth of the join units at one moment.
type joinState struct {
	pid    map[string]int      // service -> MainPID
	passed map[string][]string // service -> LISTEN_FDNAMES of its main process
	inode  map[string]uint64   // socket -> listener inode (ss)
	ss     map[string]ssListener
	info   map[string]unitInfo
}

// joinTruth reads the join units from the manager, the kernel and /proc.
func (r *run) joinTruth() joinState {
	st := joinState{pid: map[string]int{}, passed: map[string][]string{}, inode: map[string]uint64{}, info: map[string]unitInfo{}}
	var err error
	for _, u := range append(slices.Clone(joinSockets), joinServices...) {
		ui, err := r.mgr.unitInfo(r.ctx, u)
		if err != nil {
			r.t.Fatal(err)
		}
		st.info[u] = ui
		if ui.mainPID != 0 {
			st.pid[u] = ui.mainPID
			st.passed[u], _ = listenFDNames(ui.mainPID)
		}
	}
	if st.ss, err = ssListeners(r.pids()); err != nil {
		r.t.Fatal(err)
	}
	for _, s := range joinSockets {
		for _, a := range st.info[s].listen {
			st.inode[s] = st.ss[a].inode
		}
	}
	return st
}

// passedTo lists the services whose main process was passed socket.
func (st joinState) passedTo(socket string) []string {
	var out []string
	for svc, names := range st.passed {
		if slices.Contains(names, socket) {
			out = append(out, svc)
		}
	}
	return out
}

// checkJoinSnapshot takes a snapshot of the join units and checks their
// socket→service mapping, listeners and holders and main PIDs.
func (r *run) checkJoinSnapshot() {
	before := r.joinTruth()
	full := r.rng.IntN(4) == 0
	snap, err := r.b.Snapshot(r.ctx, inspect.SnapshotOptions{Units: append(slices.Clone(joinSockets), joinServices...), FullScan: full})
	if err != nil {
		r.t.Fatal(err)
	}
	after := r.joinTruth()
	for _, su := range snap.Sockets {
		if _, ok := joinService[su.Unit]; !ok {
			continue
		}
		info := after.info[su.Unit]
		r.judge("snapshot.join_socket_service", su.Service == joinService[su.Unit] && slices.Contains(info.triggers, su.Service),
			"%s → %s; its unit file says %s, the manager's Triggers %v", su.Unit, su.Service, joinService[su.Unit], info.triggers)
		for _, l := range su.Listeners {
			truth, ok := after.ss[l.Address]
			if !ok || before.ss[l.Address].inode != truth.inode {
				r.tally.add("snapshot.join_listener_inode", claimUnknown)
				continue
			}
			r.judge("snapshot.join_listener_inode", l.Inode == truth.inode, "%s listener %s inode %d, ss says %d", su.Unit, l.Address, l.Inode, truth.inode)
			passed := after.passedTo(su.Unit)
			listed := map[int]bool{}
			for _, h := range l.Holders {
				listed[h.PID] = true
				if !slices.ContainsFunc(truth.holders, func(x [2]int) bool { return x[0] == h.PID }) {
					r.falseClaim("snapshot.join_holder", "%s listener held by pid %d fd %d, ss says %v", su.Unit, h.PID, h.FD, truth.holders)
					continue
				}
				r.tally.add("snapshot.join_holder", claimTrue)
				r.judge("snapshot.join_holder_manager", h.Manager == (h.PID == r.sb.PID), "pid %d manager %v, the manager is pid %d", h.PID, h.Manager, r.sb.PID)
				if h.Manager {
					continue
				}
				unit := cgroupUnit(h.PID)
				if unit == "" {
					r.tally.add("snapshot.join_holder_outside", claimUnknown)
					continue
				}
				outside := !slices.Contains(passed, unit) && !slices.Contains(info.triggers, unit)
				r.judge("snapshot.join_holder_outside", h.Outside == outside,
					"%s listener holder pid %d (%s) outside %v; the services passed it: %v, Triggers %v", su.Unit, h.PID, unit, h.Outside, passed, info.triggers)
				r.judge("snapshot.join_holder_unit", h.Unit == unit, "pid %d in unit %q, its cgroup says %s", h.PID, h.Unit, unit)
			}
			if !l.HoldersPartial && slices.Equal(before.ss[l.Address].holders, truth.holders) {
				for _, h := range truth.holders {
					r.judge("snapshot.join_holders_complete", listed[h[0]], "%s listener: pid %d fd %d holds it (ss), not listed", su.Unit, h[0], h[1])
				}
			}
		}
	}
	for _, svc := range snap.Services {
		if !slices.Contains(joinServices, svc.Unit) {
			continue
		}
		pid := after.pid[svc.Unit]
		if pid != before.pid[svc.Unit] {
			r.tally.add("snapshot.join_main_pid", claimUnknown)
			continue
		}
		r.judge("snapshot.join_main_pid", svc.MainPID == pid, "%s main PID %d, the manager says %d", svc.Unit, svc.MainPID, pid)
		if pid == 0 {
			continue
		}
		var sockets []string
		for _, n := range after.passed[svc.Unit] {
			if strings.HasSuffix(n, ".socket") {
				sockets = append(sockets, n)
			}
		}
		got := slices.Clone(svc.Sockets)
		slices.Sort(got)
		slices.Sort(sockets)
		r.judge("snapshot.join_service_sockets", slices.Equal(got, sockets), "%s sockets %v, LISTEN_FDNAMES names %v", svc.Unit, got, sockets)
		mgr := processInodes(r.sb.PID)
		for _, l := range svc.OwnListeners {
			if mgr == nil {
				r.tally.add("snapshot.join_own_listener", claimUnknown)
				continue
			}
			r.judge("snapshot.join_own_listener", !mgr[l.Inode], "%s own listener %s inode %d, but the manager holds it", svc.Unit, l.Address, l.Inode)
		}
	}
}

// checkDoctor runs fdtop doctor's checks as the CLI does (live.Doctor,
// then inspect.Diagnose) and checks every finding against the manager,
// ss and /proc; a clean bill only when its checks ran.
func (r *run) checkDoctor() {
	before := r.doctorTruth()
	t0 := time.Now()
	in, err := live.Doctor(r.ctx, r.client, r.b, live.DoctorOptions{Patterns: r.b.Patterns, User: true, FullScan: r.rng.IntN(4) == 0})
	if err != nil {
		r.t.Fatal(err)
	}
	findings := inspect.Diagnose(in)
	if os.Getenv("FDTOP_ORACLE_TIMES") != "" {
		r.t.Logf("doctor: %v", time.Since(t0))
	}
	unchecked := inspect.Unchecked(in)
	after := r.doctorTruth()
	stable := func(k problemKey) bool { return before.problem[k] == after.problem[k] }
	// blind: a pinned entry in a store whose entries fdtop could not all
	// name (252 lists none: they are inferred) may be among those; the
	// doctor cannot be held to finding it.
	blind := func(k problemKey) bool {
		return k.code == "fdstore-pinned" && slices.ContainsFunc(in.Snapshot.Services, func(s inspect.Service) bool {
			return s.Unit == k.unit && (s.FDStoreUnidentified() > 0 || s.FDStoreUnknown || slices.ContainsFunc(s.FDStore, func(e inspect.StoreEntry) bool { return e.Inferred }))
		})
	}
	for _, f := range findings {
		field := "doctor." + f.Code
		k := problemKey{f.Unit, f.Code}
		if f.Code == "listener-not-held" && strings.HasSuffix(f.Unit, ".service") {
			// The service form: one of its sockets.
			for s, svc := range after.service {
				if svc == f.Unit && after.problem[problemKey{s, f.Code}] {
					k.unit = s
				}
			}
		}
		switch {
		case !after.known[f.Code] || !stable(k):
			r.tally.add(field, claimUnknown)
		default:
			r.judge(field, after.problem[k], "%s: %s (%s); the truth: %v", f.Unit, f.Code, strings.Join(f.Evidence, "; "), after.problems())
		}
	}
	// Every problem the truth shows is found.
	for k := range after.problem {
		if !stable(k) || len(unchecked) > 0 {
			continue
		}
		if blind(k) {
			// The store's entries not all known to fdtop: a pinned one
			// may be among those it could not name.
			r.tally.add("doctor.found", claimUnknown)
			continue
		}
		found := slices.ContainsFunc(findings, func(f inspect.Finding) bool {
			return f.Code == k.code && (f.Unit == k.unit || f.Unit == after.service[k.unit])
		})
		r.judge("doctor.found", found, "%s: %s (the truth), the doctor did not say it: %v", k.unit, k.code, findings)
	}
	if len(findings) == 0 {
		switch {
		case len(unchecked) > 0 || slices.ContainsFunc(slices.Collect(maps.Keys(after.problem)), blind):
			r.tally.add("doctor.clean", claimUnknown)
		default:
			r.judge("doctor.clean", len(after.problem) == 0 && len(before.problem) == 0, "no findings; the truth: %v", after.problems())
		}
	}
}

// problemKey is a problem of a unit, by the doctor's code for it.
type problemKey struct{ unit, code string }

// problems lists the problems, for messages.
func (st doctorState) problems() []string {
	var out []string
	for k := range st.problem {
		out = append(out, k.unit+": "+k.code)
	}
	slices.Sort(out)
	return out
}

// doctorState is the truth of the doctor's checks: the problems of the
// units (of the codes the oracle can tell; known lists them).
type doctorState struct {
	problem map[problemKey]bool
	service map[string]string // socket -> its service
	known   map[string]bool
}

// doctorTruth reads, for every socket unit and service the oracle runs,
// whether it failed (the manager) and whether its listener is held by
// nobody but the manager while its service runs (ss).
func (r *run) doctorTruth() doctorState {
	st := doctorState{problem: map[problemKey]bool{}, service: map[string]string{},
		known: map[string]bool{"listener-not-held": true, "leaked-listener": true, "service-failed": true, "socket-failed": true, "socket-not-listening": true, "fdstore-pinned": true}}
	ls, err := ssListeners(r.pids())
	if err != nil {
		r.t.Fatal(err)
	}
	sockets := slices.Clone(joinSockets)
	services := slices.Clone(joinServices)
	for name, s := range joinService {
		st.service[name] = s
	}
	for _, s := range []string{"demo-activated.socket", "demo-handoff.socket"} {
		sockets = append(sockets, s)
		st.service[s] = strings.TrimSuffix(s, ".socket") + ".service"
	}
	services = append(services, "demo-plain.service", "demo-activated.service", "demo-handoff.service", "demo-stored.service")
	// fdstore-pinned: an entry a demo server logged as stored (and not
	// removed since) that the manager holds and no other process does.
	others := map[uint64]bool{}
	for _, pid := range r.pids() {
		if pid != r.sb.PID {
			for ino := range processInodes(pid) {
				others[ino] = true
			}
		}
	}
	mgr := processInodes(r.sb.PID)
	for _, m := range demo.Modes {
		stored := map[string]uint64{}
		for _, op := range storeLog(r.cfg.LogPath(m)) {
			switch op.op {
			case "store":
				stored[op.name] = op.inode
			case "remove":
				delete(stored, op.name)
			}
		}
		for _, ino := range stored {
			if ino != 0 && mgr[ino] && !others[ino] && r.mainPID(m) != 0 {
				st.problem[problemKey{m.Service(), "fdstore-pinned"}] = true
			}
		}
	}
	for _, u := range services {
		ui, err := r.mgr.unitInfo(r.ctx, u)
		if err != nil {
			r.t.Fatal(err)
		}
		if ui.active == "failed" {
			st.problem[problemKey{u, "service-failed"}] = true
		}
	}
	for _, s := range sockets {
		ui, err := r.mgr.unitInfo(r.ctx, s)
		if err != nil {
			r.t.Fatal(err)
		}
		if ui.active == "failed" {
			st.problem[problemKey{s, "socket-failed"}] = true
			continue
		}
		svc, err := r.mgr.unitInfo(r.ctx, st.service[s])
		if err != nil {
			r.t.Fatal(err)
		}
		if ui.active != "active" {
			if svc.mainPID != 0 {
				st.problem[problemKey{s, "socket-not-listening"}] = true // its service runs on listeners the manager closed
			}
			continue
		}
		for _, a := range ui.listen {
			l, ok := ls[a]
			if !ok {
				continue
			}
			others := 0
			for _, h := range l.holders {
				if h[0] != r.sb.PID {
					others++
					if u := cgroupUnit(h[0]); u != "" && !slices.Contains(ui.triggers, u) {
						st.problem[problemKey{s, "leaked-listener"}] = true
					}
				}
			}
			if others == 0 && svc.mainPID != 0 && svc.active == "active" {
				st.problem[problemKey{s, "listener-not-held"}] = true
			}
		}
	}
	return st
}
