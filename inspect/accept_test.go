package inspect_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// The Accept=yes socket units of TestWatchAcceptRestart: fdt-acc's
// instances run on when it restarts (systemd's default: an instance is
// only After= and TriggeredBy= its socket); fdt-accb's template binds its
// instances to the socket (BindsTo=), so a restart of the socket takes
// them down with it.
const (
	accSocket  = "fdt-acc.socket"
	accBSocket = "fdt-accb.socket"
)

// acceptEnv is a sandbox with the two Accept=yes socket units started and
// a Builder on them (no demo units).
type acceptEnv struct {
	*env
	port, portB int
}

func newAcceptEnv(t *testing.T, sb *sandbox.Sandbox) *acceptEnv {
	t.Helper()
	ports, err := demo.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	units := map[string]string{
		accSocket:          fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[0]),
		"fdt-acc@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		accBSocket:         fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[1]),
		"fdt-accb@.service": "[Unit]\nBindsTo=fdt-accb.socket\n" +
			"[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
	}
	for name, content := range units {
		if err := sb.WriteUnit(name, content); err != nil {
			t.Fatal(err)
		}
	}
	sysctl(t, sb, "daemon-reload")
	sysctl(t, sb, "start", accSocket, accBSocket)
	client, err := dbusclient.Connect(context.Background(), dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fs, err := procfs.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	b := &inspect.Builder{Systemd: client, Kernel: fs, Scope: "user", Patterns: []string{"fdt-acc*"}}
	return &acceptEnv{env: &env{sb: sb, client: client, b: b}, port: ports[0], portB: ports[1]}
}

// echoConn is a client connection to an instance of fdt-acc@ (cat echoes
// what it is sent).
type echoConn struct {
	c  net.Conn
	rd *bufio.Reader
}

// dialEcho connects to port and waits for the instance's first echo: its
// process runs and holds the connection.
func dialEcho(t *testing.T, port int) *echoConn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := &echoConn{c: c, rd: bufio.NewReader(c)}
	if err := e.echo(); err != nil {
		t.Fatalf("first echo: %v", err)
	}
	return e
}

// echo sends a line and reads it back.
func (e *echoConn) echo() error {
	if err := e.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(e.c, "ping"); err != nil {
		return err
	}
	line, err := e.rd.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q, want ping", line)
	}
	return nil
}

// instanceConns asks systemd and the kernel, without fdtop, which
// processes run the instances of template (e.g. "fdt-acc@") and which
// socket each holds as its standard input: main PID → socket inode.
func instanceConns(t *testing.T, sb *sandbox.Sandbox, template string) map[int]uint64 {
	t.Helper()
	out, err := sb.Systemctl(context.Background(), "list-units", "--no-legend", "--plain", "--state=active", template+"*")
	if err != nil {
		t.Fatal(err)
	}
	conns := map[int]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], template) {
			continue
		}
		pid, err := strconv.Atoi(mainPID(t, sb, f[0]))
		if err != nil || pid == 0 {
			continue
		}
		if ino, ok := fdSocket(pid, 0); ok {
			conns[pid] = ino
		}
	}
	return conns
}

// fdSocket reads which socket fd of pid is, from /proc.
func fdSocket(pid, fd int) (uint64, bool) {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil || !strings.HasPrefix(link, "socket:[") {
		return 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
	return ino, err == nil
}

// listenInode reads the inode of the TCP socket listening on
// 127.0.0.1:port from /proc/net/tcp (0: none listens).
func listenInode(t *testing.T, port int) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" {
			ino, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return ino
		}
	}
	return 0
}

// waitInstances waits until a view of the watch shows socket with n
// running instances whose connections it found.
func (w *watch) waitInstances(t *testing.T, socket string, n int) {
	t.Helper()
	waitCount(t, fmt.Sprintf("view of %s with %d running instances and their connections", socket, n), n, func() int { return w.instances(socket) })
}

// instances counts the running instances of socket with a connection in
// the latest view that shows it (-1: none does).
func (w *watch) instances(socket string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.steps) - 1; i >= 0; i-- {
		v := w.steps[i].View
		if v == nil {
			continue
		}
		for _, su := range v.Snapshot.Sockets {
			if su.Unit != socket {
				continue
			}
			n := 0
			for _, in := range su.Instances {
				if in.ActiveState == "active" && in.Inode != 0 && len(in.Holders) > 0 {
					n++
				}
			}
			return n
		}
	}
	return -1
}

// eventsOf returns the events of type typ about unit seen so far.
func (w *watch) eventsOf(unit string, typ inspect.EventType) []inspect.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []inspect.Event
	for _, e := range w.events {
		if e.Type == typ && e.Unit == unit {
			out = append(out, e)
		}
	}
	return out
}

// waitRefused waits until a connect to 127.0.0.1:port is refused: nothing
// listens there.
func waitRefused(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		} else if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("127.0.0.1:%d still accepts connections 10 s after the stop", port)
}

// acceptScenario is what TestWatchAcceptRestart does to the manager under
// a watch (and TestRecordTraces records): restart fdt-acc.socket with two
// connections held by its instances, restart fdt-accb.socket with one,
// then stop and start fdt-acc.socket. It checks each verdict against the
// kernel.
func acceptScenario(t *testing.T, sb *sandbox.Sandbox, e *acceptEnv, w *watch) {
	conns := []*echoConn{dialEcho(t, e.port), dialEcho(t, e.port)}
	connB := dialEcho(t, e.portB)
	w.waitInstances(t, accSocket, 2)
	w.waitInstances(t, accBSocket, 1)

	// Restart: the listener is closed and bound anew; the instances run
	// on, each holding its connection.
	before := instanceConns(t, sb, "fdt-acc@")
	lBefore := listenInode(t, e.port)
	if len(before) != 2 || lBefore == 0 {
		t.Fatalf("before the restart: instances %v, listener inode %d; want 2 instances and a listener", before, lBefore)
	}
	sysctl(t, sb, "restart", accSocket)
	ev := w.waitHandoffs(t, accSocket, 1)[0]
	h := *ev.Handoff
	t.Logf("%s: %s", accSocket, inspect.Verdict(h))
	after := instanceConns(t, sb, "fdt-acc@")
	lAfter := listenInode(t, e.port)
	if lAfter == 0 || lAfter == lBefore {
		t.Fatalf("the kernel: listener inode %d → %d, want a new one", lBefore, lAfter)
	}
	for pid, ino := range before {
		if after[pid] != ino {
			t.Errorf("the kernel: pid %d holds socket %d after the restart, want %d (before)", pid, after[pid], ino)
		}
	}
	for i, c := range conns {
		if err := c.echo(); err != nil {
			t.Errorf("connection %d after the restart: %v", i, err)
		}
	}
	if h.Accept == nil || h.HandoffJob != "restart" || ev.Job != "restart" || ev.Result != "done" {
		t.Fatalf("handoff %+v (job %q, result %q), want an Accept=yes restart, done", h, ev.Job, ev.Result)
	}
	if h.ListenersReplaced != 1 || h.ListenersKept != 0 || h.ListenersUnknown != 0 {
		t.Errorf("listeners kept %d, replaced %d, unknown %d; the kernel replaced 1", h.ListenersKept, h.ListenersReplaced, h.ListenersUnknown)
	}
	if a := *h.Accept; a.Instances != 2 || a.InstancesKept != 2 || a.InstancesRestarted != 0 || a.InstancesStopped != 0 || a.InstancesUnknown != 0 ||
		h.ConnectionsPreserved != 2 || h.ConnectionsDropped != 0 || h.ConnectionsUnknown {
		t.Errorf("instances %+v, connections preserved %d, dropped %d, unknown %v; the kernel: 2 instances, both still holding their connections",
			a, h.ConnectionsPreserved, h.ConnectionsDropped, h.ConnectionsUnknown)
	}
	if lr := w.eventsOf(accSocket, inspect.EventListenerReplaced); len(lr) != 1 || lr[0].PrevInode != lBefore || lr[0].Inode != lAfter {
		t.Errorf("listener_replaced events %+v, want one, inode %d → %d", lr, lBefore, lAfter)
	}
	preserved := w.eventsOf(accSocket, inspect.EventConnectionPreserved)
	if len(preserved) != 2 {
		t.Errorf("%d connection_preserved events, want 2", len(preserved))
	}
	for _, p := range preserved {
		if p.Via != "process" || p.PID != p.PrevPID || before[p.PID] != p.Inode || after[p.PID] != p.Inode {
			t.Errorf("connection_preserved %+v: the kernel says pid %d held %d before and %d after", p, p.PID, before[p.PID], after[p.PID])
		}
	}
	if got := inspect.Verdict(h); !strings.HasPrefix(got, "! listener replaced · 2/2 instances kept their connections · refusals and time not listening unknown (gap meter off)") {
		t.Errorf("verdict %q", got)
	}

	// fdt-accb's instance is bound to its socket: the restart propagates
	// to it. The manager keeps an instance's connection and passes it to
	// the instance's new process: the connection lives on, the process
	// does not.
	beforeB := instanceConns(t, sb, "fdt-accb@")
	if len(beforeB) != 1 {
		t.Fatalf("before the restart: instances of fdt-accb@ %v, want 1", beforeB)
	}
	sysctl(t, sb, "restart", accBSocket)
	ev = w.waitHandoffs(t, accBSocket, 1)[0]
	h = *ev.Handoff
	t.Logf("%s: %s", accBSocket, inspect.Verdict(h))
	afterB := instanceConns(t, sb, "fdt-accb@")
	for pid, ino := range beforeB {
		if _, ok := afterB[pid]; ok || len(afterB) != 1 {
			t.Fatalf("the kernel: instances %v after the restart, %v before: want another process", afterB, beforeB)
		}
		for pid2, ino2 := range afterB {
			if ino2 != ino {
				t.Fatalf("the kernel: pid %d holds %d after the restart, pid %d held %d before: want the same connection", pid2, ino2, pid, ino)
			}
		}
	}
	if err := connB.echo(); err != nil {
		t.Fatalf("the connection to fdt-accb after its restart: %v", err)
	}
	if a := h.Accept; a == nil || h.ListenersReplaced != 1 || a.Instances != 1 || a.InstancesRestarted != 1 || a.InstancesKept != 0 ||
		a.InstancesStopped != 0 || h.ConnectionsPreserved != 1 || h.ConnectionsDropped != 0 || h.ConnectionsUnknown {
		t.Errorf("handoff %+v accept %+v: want the listener replaced, 1 instance restarted on its connection", h, h.Accept)
	}

	// A stop of fdt-accb stops its instance (BindsTo=); the start does
	// not bring it back: its connection is closed.
	beforeB = instanceConns(t, sb, "fdt-accb@")
	sysctl(t, sb, "stop", accBSocket)
	waitRefused(t, e.portB)
	sysctl(t, sb, "start", accBSocket)
	ev = w.waitHandoffs(t, accBSocket, 2)[1]
	h = *ev.Handoff
	t.Logf("%s: %s", accBSocket, inspect.Verdict(h))
	if afterB := instanceConns(t, sb, "fdt-accb@"); len(afterB) != 0 {
		t.Fatalf("the kernel: instances %v after the stop and start, want none", afterB)
	}
	if err := connB.echo(); err == nil {
		t.Fatalf("the connection to fdt-accb still echoes after the stop and start: %v", beforeB)
	}
	if a := h.Accept; a == nil || h.HandoffJob != "stop+start" || a.Instances != 1 || a.InstancesStopped != 1 ||
		h.ConnectionsDropped != 1 || h.ConnectionsPreserved != 0 || h.ConnectionsUnknown {
		t.Errorf("handoff %+v accept %+v: want stop+start, 1 instance stopped, its connection dropped; timeline:\n%s", h, h.Accept, w.text())
	}
	if inspect.Grade(h) != inspect.LevelBad {
		t.Errorf("grade %v, want bad: a connection was dropped", inspect.Grade(h))
	}

	// Stop, then start: one verdict, from before the stop to after the
	// start; the instances run on through it.
	lBefore = listenInode(t, e.port)
	before = instanceConns(t, sb, "fdt-acc@")
	sysctl(t, sb, "stop", accSocket)
	waitRefused(t, e.port)
	sysctl(t, sb, "start", accSocket)
	ev = w.waitHandoffs(t, accSocket, 2)[1]
	h = *ev.Handoff
	t.Logf("%s: %s", accSocket, inspect.Verdict(h))
	after = instanceConns(t, sb, "fdt-acc@")
	if lAfter = listenInode(t, e.port); lAfter == 0 || lAfter == lBefore {
		t.Fatalf("the kernel: listener inode %d → %d, want a new one", lBefore, lAfter)
	}
	for pid, ino := range before {
		if after[pid] != ino {
			t.Errorf("the kernel: pid %d holds socket %d after the stop and start, want %d", pid, after[pid], ino)
		}
	}
	if h.Accept == nil || h.HandoffJob != "stop+start" || h.ListenersReplaced != 1 || h.Accept.Instances != len(before) || h.Accept.InstancesKept != len(before) ||
		h.ConnectionsPreserved != len(before) || h.ConnectionsDropped != 0 || h.Accept.InstancesStopped != 0 {
		t.Errorf("handoff %+v accept %+v: want stop+start, the listener replaced, %d instances kept their connections", h, h.Accept, len(before))
	}
}

// TestWatchAcceptRestart restarts Accept=yes socket units of real 252 and
// 254 managers while their per-connection instances hold live
// connections, and checks each verdict against the kernel: the listener
// replaced (its inode in /proc/net/tcp), each instance's connection still
// the same socket in the same process (/proc/PID/fd), or the instance
// stopped and its connection dropped where its unit binds it to the
// socket. Then, with the gap meter on, a stop and start: the meter's
// refusals and the time it found nobody listening are in the verdict.
func TestWatchAcceptRestart(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := newAcceptEnv(t, sb)
		w := e.watch(t)
		acceptScenario(t, sb, e, w)
		w.cancel()
		<-w.done

		// The gap meter on: it connects every 50 ms from the job's start
		// to its verdict (each connect spawns an instance, which cat ends
		// at once).
		wp := e.watchWith(t, func(wt *inspect.Watcher) { wt.Probe = func(string) bool { return true } })
		wp.waitInstances(t, accSocket, 2)
		sysctl(t, sb, "stop", accSocket)
		waitRefused(t, e.port)
		sysctl(t, sb, "start", accSocket)
		ev := wp.waitHandoffs(t, accSocket, 1)[0]
		h := *ev.Handoff
		t.Logf("%s with the gap meter: %s", accSocket, inspect.Verdict(h))
		p := h.Probe
		if h.Accept == nil || p == nil || p.Attempts == 0 {
			t.Fatalf("handoff %+v: want an Accept=yes verdict with the gap meter's attempts", h)
		}
		if h.ConnectionsPreserved != 2 || h.ConnectionsDropped != 0 || h.Accept.Instances != 2 {
			t.Errorf("handoff %+v accept %+v: want the 2 instances' connections preserved (the gap meter's own instances not among them)", h, h.Accept)
		}
		// Each connect spawns an instance: the gap meter stops at its
		// first connect accepted after the job ended, not at the verdict
		// (which waits for a view). Its connects: those from the stop
		// job's start to the start job's end (one every 50 ms), the one
		// that found the new listener, and slack for a busy machine.
		started, finished := wp.eventsOf(accSocket, inspect.EventJobStarted), wp.eventsOf(accSocket, inspect.EventJobFinished)
		if len(started) == 0 || len(finished) == 0 {
			t.Fatalf("jobs of %s: %d started, %d finished events", accSocket, len(started), len(finished))
		}
		jobs := finished[len(finished)-1].Time.Sub(started[0].Time)
		if most := int(jobs/(50*time.Millisecond)) + 6; p.Attempts > most {
			t.Errorf("the gap meter made %d connects for jobs that took %v, want at most %d (it went on after them)", p.Attempts, jobs, most)
		}
		words := inspect.Verdict(h)
		switch {
		case strings.Contains(words, "gap meter off"):
			t.Errorf("verdict %q says the gap meter was off", words)
		case p.Refused > 0 && p.RefusedForMs > 0 && !strings.Contains(words, fmt.Sprintf("not listening ~%.0f ms", p.RefusedForMs)):
			t.Errorf("verdict %q, probe %+v: refusals without the time not listening", words, *p)
		case p.Refused > 0 && p.RefusedForMs == 0 && !strings.Contains(words, "not listening for a while (not timed)"):
			t.Errorf("verdict %q, probe %+v: a refusal not timed, said otherwise", words, *p)
		case p.Refused == 0 && (p.RefusedForMs != 0 || !strings.Contains(words, "no gap seen by the gap meter")):
			t.Errorf("verdict %q, probe %+v: no refusal, yet a gap", words, *p)
		}
	})
}

// TestTrackerAcceptReplay replays the Accept=yes sequences recorded from
// real 252 and 254 managers (TestRecordTraces, "accept": acceptScenario
// under a watch) and checks each verdict against what the kernel showed
// when it was recorded: fdt-acc's restart and stop+start keep both
// instances' connections in the same processes; fdt-accb's restart
// restarts its instance on the same connection, its stop and start stop
// it and drop the connection. Played again with the instances' processes
// and the manager not readable, no verdict claims what was not seen.
func TestTrackerAcceptReplay(t *testing.T) {
	type want struct {
		job                                 string
		kept, restarted, stopped, preserved int
		dropped                             int
	}
	wants := map[string][]want{
		accSocket:  {{"restart", 2, 0, 0, 2, 0}, {"stop+start", 2, 0, 0, 2, 0}},
		accBSocket: {{"restart", 0, 1, 0, 1, 0}, {"stop+start", 0, 0, 1, 0, 1}},
	}
	for _, v := range []string{"systemd252", "systemd254"} {
		path := filepath.Join(traceDir, v, "accept.jsonl.gz")
		t.Run(v, func(t *testing.T) {
			evs := replay(readTrace(t, path))
			for unit, ws := range wants {
				hs := handoffsOf(evs, unit)
				if len(hs) != len(ws) {
					t.Fatalf("%d handoffs of %s, want %d", len(hs), unit, len(ws))
				}
				for i, w := range ws {
					h := *hs[i].Handoff
					a := h.Accept
					if a == nil || h.HandoffJob != w.job || h.ListenersReplaced != 1 || h.ListenersKept != 0 || h.ListenersUnknown != 0 ||
						a.Instances != w.kept+w.restarted+w.stopped || a.InstancesKept != w.kept || a.InstancesRestarted != w.restarted ||
						a.InstancesStopped != w.stopped || a.InstancesUnknown != 0 || h.ConnectionsUnknown ||
						h.ConnectionsPreserved != w.preserved || h.ConnectionsDropped != w.dropped {
						t.Errorf("%s handoff %d: %s (%+v, %+v), want %+v", unit, i, inspect.Verdict(h), h, a, w)
					}
				}
			}
		})
		t.Run(v+"/next-process-not-holding-yet", func(t *testing.T) {
			// fdt-accb's instance restarted: in every view, its new
			// process does not hold the connection yet (as when it is
			// read between the manager's fork and its exec, its
			// descriptors the manager's), and the kernel says the
			// connection is open. CI run 25 saw this once on 254.
			steps := readTrace(t, path)
			first := map[string]int{}
			for _, s := range steps {
				if s.View == nil {
					continue
				}
				for i := range s.View.Snapshot.Sockets {
					su := &s.View.Snapshot.Sockets[i]
					if su.Unit != accBSocket {
						continue
					}
					for j := range su.Instances {
						in := &su.Instances[j]
						if first[in.Unit] == 0 {
							first[in.Unit] = in.MainPID
						}
						if in.MainPID == first[in.Unit] || in.Inode == 0 {
							continue
						}
						in.Holders = slices.DeleteFunc(in.Holders, func(h inspect.Holder) bool { return !h.Manager })
						if s.View.Alive == nil {
							s.View.Alive = map[uint64]bool{}
						}
						s.View.Alive[in.Inode] = true
					}
				}
			}
			hs := handoffsOf(replay(steps), accBSocket)
			if len(hs) == 0 {
				t.Fatalf("no handoff of %s", accBSocket)
			}
			h := *hs[0].Handoff
			if a := h.Accept; a == nil || a.Instances != 1 || a.InstancesRestarted != 1 || a.InstancesKept+a.InstancesStopped+a.InstancesUnknown != 0 ||
				h.ConnectionsPreserved != 1 || h.ConnectionsDropped != 0 || h.ConnectionsUnknown {
				t.Errorf("%s: %s (%+v, %+v): want 1 instance restarted, its connection preserved (open)", accBSocket, inspect.Verdict(h), h, h.Accept)
			}
		})
		t.Run(v+"/not-readable", func(t *testing.T) {
			steps := readTrace(t, path)
			for _, s := range steps {
				if s.View == nil {
					continue
				}
				for i := range s.View.Snapshot.Sockets {
					su := &s.View.Snapshot.Sockets[i]
					for j := range su.Listeners {
						// As join leaves them when the manager's
						// descriptors cannot be read.
						su.Listeners[j].Inode, su.Listeners[j].InodeUnknown, su.Listeners[j].Holders = 0, true, nil
					}
					for j := range su.Instances {
						// And the instances' processes.
						su.Instances[j].Inode, su.Instances[j].Holders = 0, nil
					}
				}
				s.View.Held, s.View.Snapshot.ManagerInodes = nil, nil
			}
			evs := replay(steps)
			stopStart := 0
			for unit := range wants {
				for _, e := range evs {
					if e.Unit != unit {
						continue
					}
					switch e.Type {
					case inspect.EventListenerKept, inspect.EventListenerReplaced, inspect.EventConnectionPreserved, inspect.EventConnectionDropped:
						t.Errorf("%s: %s, from a view that could not see it", unit, inspect.FormatEvent(e))
					case inspect.EventHandoff:
						h := *e.Handoff
						if h.HandoffJob == "stop+start" {
							stopStart++
						}
						words := inspect.Verdict(h)
						if h.Accept == nil || h.ListenersUnknown != 1 || h.ListenersKept+h.ListenersReplaced != 0 ||
							h.ConnectionsPreserved+h.ConnectionsDropped != 0 || h.Accept.InstancesKept+h.Accept.InstancesRestarted != 0 ||
							h.Accept.InstancesUnknown != h.Accept.Instances || !strings.Contains(words, "1 listener not seen") ||
							(h.Accept.Instances > 0 && !strings.Contains(words, "connections not seen")) {
							t.Errorf("%s: %s (%+v, %+v): want everything not seen", unit, words, h, h.Accept)
						}
					}
				}
			}
			// A stop and a start are known from the signals alone.
			if stopStart != 2 {
				t.Errorf("%d stop+start verdicts, want 2 (one per unit)", stopStart)
			}
		})
	}
}
