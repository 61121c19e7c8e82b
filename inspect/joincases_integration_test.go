package inspect_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// freeUDPPort is a UDP port on 127.0.0.1 nobody holds right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// ssRecvQ is the Recv-Q ss reports for the UDP socket bound to port, read
// without fdtop's code; -1 when ss lists none.
func ssRecvQ(t *testing.T, port int) int {
	t.Helper()
	out, err := exec.Command("ss", "-Hunl", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("ss Recv-Q %q: %v", f[1], err)
	}
	return n
}

// TestJoinCasesOnManagers replays issue 20's cases of the joined picture
// on a real manager (252 and 254), each checked against the kernel (ss,
// /proc through fdtop's scan) and what the units are known to do:
//
//   - 7: a service named alone (its socket unit not named) is read with
//     its socket unit: the listener is the socket's, held by the manager
//     and the service, not the service's own; no fd store entry is a
//     listener; a targeted read of the service alone does the same.
//   - 11: on 252 the names of entries the running process was never passed
//     are unknown, never "stored"; on 254 they are c-1 and c-2.
//   - 12: a socket with Service= and a second service with Sockets= it:
//     the socket starts its Service=, both services hold it by right, no
//     leaked-listener warning or finding.
//   - 13: a pre-forking service (a worker keeps fd 3, the main process
//     closed it): no listener-not-held.
//   - 14: a datagram listener with unread datagrams shows the Recv-Q ss
//     shows; a FIFO no queue figure.
func TestJoinCasesOnManagers(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		rt := sb.RuntimeDir
		startUnits(t, sb, map[string]string{
			"jc.socket":       "[Socket]\nListenStream=" + rt + "/jc.sock\n",
			"jc.service":      "[Service]\nType=notify\nFileDescriptorStoreMax=4\n" + helperExec("serve-store"),
			"jc-p.socket":     "[Socket]\nListenStream=" + rt + "/jc-p.sock\nService=jc-real.service\n",
			"jc-real.service": "[Service]\nType=notify\n" + helperExec("serve"),
			"jc-other.service": "[Unit]\nDescription=a second service with Sockets=\n[Service]\nSockets=jc-p.socket\nType=notify\n" +
				helperExec("serve"),
			"jc-fork.socket":  "[Socket]\nListenStream=" + rt + "/jc-fork.sock\n",
			"jc-fork.service": "[Service]\nType=notify\n" + helperExec("prefork"),
			"jc-d.service":    "[Service]\nExecStart=/bin/sleep infinity\n",
		}, "jc.socket", "jc.service", "jc-p.socket", "jc-real.service", "jc-other.service", "jc-fork.socket", "jc-fork.service")
		// A free UDP port can be taken by another process before the
		// manager binds it: try another.
		var port int
		for try := 0; ; try++ {
			port = freeUDPPort(t)
			if err := sb.WriteUnit("jc-d.socket", fmt.Sprintf("[Socket]\nListenDatagram=127.0.0.1:%d\nListenFIFO=%s/jc-d.fifo\n", port, rt)); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
				t.Fatal(err)
			}
			out, err := sb.Systemctl(ctx, "start", "jc-d.socket")
			if err == nil {
				break
			}
			if try == 5 {
				t.Fatalf("start jc-d.socket: %v\n%s", err, out)
			}
			_, _ = sb.Systemctl(ctx, "reset-failed", "jc-d.socket")
		}

		t.Run("7 service named alone, 11 names", func(t *testing.T) {
			e := bareEnv(t, sb, "jc.service")
			e.b.ExtraServices = []string{"jc.service"} // as the command line does for a service named exactly
			check := func(when string, s *inspect.Snapshot) {
				t.Helper()
				su := findSocket(t, s, "jc.socket")
				svc := findService(t, s, "jc.service")
				if len(su.Listeners) != 1 || su.Listeners[0].Inode == 0 {
					t.Fatalf("%s: listeners %+v\n%s", when, su.Listeners, tree(t, s))
				}
				l := su.Listeners[0]
				if len(l.Holders) < 2 || !l.Holders[0].Manager || l.Holders[1].PID != svc.MainPID {
					t.Errorf("%s: holders %+v, want the manager first, then pid %d", when, l.Holders, svc.MainPID)
				}
				if len(svc.OwnListeners) > 0 {
					t.Errorf("%s: own listeners %+v: the socket unit's listener", when, svc.OwnListeners)
				}
				for _, se := range svc.FDStore {
					if se.Inode == l.Inode {
						t.Errorf("%s: store entry %+v is the listener", when, se)
					}
				}
				if svc.FDStoreIdentified > int(svc.FDStoreCount) {
					t.Errorf("%s: %d of %d store entries identified", when, svc.FDStoreIdentified, svc.FDStoreCount)
				}
				listed := s.Manager.FDStoreListing
				var names []string
				for _, se := range svc.FDStore {
					names = append(names, se.Name)
					if listed && (se.NameUnknown || (se.Name != "c-1" && se.Name != "c-2")) || !listed && (!se.NameUnknown || se.Name != "") {
						t.Errorf("%s: store entry %+v on %s", when, se, sb.Version)
					}
				}
				if listed && len(names) != 2 {
					t.Errorf("%s: store entries %v, want c-1 and c-2", when, names)
				}
			}
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				return len(s.Services) == 1 && s.Services[0].FDStoreCount == 2 && s.Services[0].MainPID != 0
			})
			if !ok {
				t.Fatalf("jc.service never stored 2 fds:\n%s", tree(t, s))
			}
			check("named alone", s)
			one, err := e.b.Snapshot(ctx, inspect.SnapshotOptions{Units: []string{"jc.service"}})
			if err != nil {
				t.Fatal(err)
			}
			check("targeted", one)
		})

		t.Run("17 peers named between host-wide scans", func(t *testing.T) {
			// This test's process is a client of jc.service: outside the
			// units, so a scan limited to them reads it only because the
			// last host-wide scan named it as the peer.
			c, err := net.Dial("unix", rt+"/jc.sock")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			e := bareEnv(t, sb, "jc.socket", "jc.service")
			wantPeer := fmt.Sprintf("inspect.test pid %d fd ", os.Getpid())
			named := func(s *inspect.Snapshot) bool {
				for _, svc := range s.Services {
					for _, cn := range svc.Connections {
						if strings.HasPrefix(cn.Remote, wantPeer) {
							return true
						}
					}
				}
				return false
			}
			s, ok := e.waitSnapshot(t, named)
			if !ok {
				t.Fatalf("host-wide scan: the connection's peer is not named %q…:\n%s", wantPeer, tree(t, s))
			}
			one, err := e.b.Snapshot(ctx, inspect.SnapshotOptions{Units: []string{"jc.service"}})
			if err != nil {
				t.Fatal(err)
			}
			if !named(one) {
				t.Errorf("scan of the units after a host-wide one: the peer is not named %q…:\n%s", wantPeer, tree(t, one))
			}
		})

		e := bareEnv(t, sb, "jc-*")
		t.Run("12 Service= and Sockets=", func(t *testing.T) {
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				for _, su := range s.Sockets {
					if su.Unit == "jc-p.socket" && len(su.Listeners) == 1 && len(su.Listeners[0].Holders) == 3 {
						return true
					}
				}
				return false
			})
			if !ok {
				t.Fatalf("jc-p.socket's listener never held by the manager and both services:\n%s", tree(t, s))
			}
			su := findSocket(t, s, "jc-p.socket")
			if su.Service != "jc-real.service" {
				t.Errorf("jc-p.socket → %s, want jc-real.service (its Service=)", su.Service)
			}
			for _, h := range su.Listeners[0].Holders {
				if h.Outside {
					t.Errorf("holder %+v outside", h)
				}
			}
			for _, svc := range []string{"jc-real.service", "jc-other.service"} {
				if own := findService(t, s, svc).OwnListeners; len(own) > 0 {
					t.Errorf("%s own listeners %+v", svc, own)
				}
			}
			for _, f := range inspect.Diagnose(inspect.DoctorInput{Snapshot: s}) {
				if f.Code == "leaked-listener" {
					t.Errorf("finding %+v", f)
				}
			}
		})

		t.Run("13 pre-forking service", func(t *testing.T) {
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				svc := findService(t, s, "jc-fork.service")
				for _, l := range findSocket(t, s, "jc-fork.socket").Listeners {
					for _, h := range l.Holders {
						if h.Unit == "jc-fork.service" && h.PID != svc.MainPID && len(svc.Passed) == 1 && svc.Passed[0].Kind == "closed" {
							return true
						}
					}
				}
				return false
			})
			if !ok {
				t.Fatalf("the worker never held the listener with the main process's fd 3 closed:\n%s", tree(t, s))
			}
			for _, f := range inspect.Diagnose(inspect.DoctorInput{Snapshot: s}) {
				if f.Code == "listener-not-held" {
					t.Errorf("finding %+v\n%s", f, tree(t, s))
				}
			}
		})

		t.Run("18 unreadable before the manager", func(t *testing.T) {
			// A process that started before the manager and is not
			// readable (PID 1 of a container, as on the machine this was
			// found on) leaves no holder unknown: listeners are partial,
			// and the note matters, only when a process not readable may
			// hold them (one started after the manager, or not read at
			// all). PID 1 is never the sandbox manager's descendant.
			s := e.snapshot(t)
			relevant := s.Host.Relevant() > 0
			for _, p := range s.Host.UnreadableProcesses {
				if p.PID == 1 && !p.BeforeManager {
					t.Errorf("PID 1 %+v not counted as started before the sandbox's manager", p)
				}
			}
			for _, su := range s.Sockets {
				for _, l := range su.Listeners {
					if l.Inode != 0 && l.HoldersPartial != relevant {
						t.Errorf("%s listener %s holders_partial %v, host %+v", su.Unit, l.Address, l.HoldersPartial, s.Host)
					}
				}
			}
			if note, matters := inspect.UnreadableNote(s.Host); matters != relevant {
				t.Errorf("note %q matters %v, host %+v", note, matters, s.Host)
			}
		})

		t.Run("14 datagram queue", func(t *testing.T) {
			c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < 5; i++ {
				if _, err := fmt.Fprintf(c, "datagram %d nobody reads\n", i); err != nil {
					t.Fatal(err)
				}
			}
			var l inspect.Listener
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				for _, li := range findSocket(t, s, "jc-d.socket").Listeners {
					if li.Type == "Datagram" {
						l = li
					}
				}
				return l.RecvQ != nil && *l.RecvQ > 0 && int(*l.RecvQ) == ssRecvQ(t, port)
			})
			if !ok {
				t.Fatalf("datagram listener %+v, ss Recv-Q %d:\n%s", l, ssRecvQ(t, port), tree(t, s))
			}
			text := tree(t, s)
			if !strings.Contains(text, "recv-q "+strconv.Itoa(int(*l.RecvQ))) {
				t.Errorf("tree does not show the Recv-Q:\n%s", text)
			}
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "jc-d.fifo") && strings.Contains(line, "backlog") || strings.Contains(line, "Datagram") && strings.Contains(line, "backlog") {
					t.Errorf("line %q speaks of a backlog", line)
				}
			}
		})
	})
}
