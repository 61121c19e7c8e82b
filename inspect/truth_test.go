package inspect_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/procfs"
)

// bareEnv is a Builder on sb for patterns, without the demo units.
func bareEnv(t *testing.T, sb *sandbox.Sandbox, patterns ...string) *env {
	t.Helper()
	ctx := context.Background()
	var client *dbusclient.Client
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		client, err = dbusclient.Connect(ctx, dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the manager is re-executing
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	fs, err := procfs.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return &env{sb: sb, client: client, b: &inspect.Builder{Systemd: client, Kernel: fs, Scope: "user", Patterns: patterns}}
}

// startUnits writes units, reloads and starts the named ones.
func startUnits(t *testing.T, sb *sandbox.Sandbox, units map[string]string, start ...string) {
	t.Helper()
	for name, content := range units {
		if err := sb.WriteUnit(name, content); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	for _, u := range start {
		if out, err := sb.Systemctl(ctx, "start", u); err != nil {
			t.Fatalf("start %s: %v\n%s", u, err, out)
		}
	}
}

// waitSnapshot takes snapshots until ok accepts one (10 s at most) and
// returns the last one.
func (e *env) waitSnapshot(t *testing.T, ok func(*inspect.Snapshot) bool) (*inspect.Snapshot, bool) {
	t.Helper()
	var s *inspect.Snapshot
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s = e.snapshot(t)
		if ok(s) {
			return s, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, false
}

// TestUnixListenerNotAConnection: a service accepts connections on a unix
// stream listener and stores each in its fd store (as journald does with
// its stdout streams), so the manager holds connections bound to the same
// path as the listener. The listener shown is the LISTEN socket the service
// was passed as fd 3, before and after daemon-reexec; the service's own
// listeners do not list it; the connections and store entries name their
// unix peer's process; a sequential-packet listener the service binds
// itself is shown as SequentialPacket.
func TestUnixListenerNotAConnection(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := bareEnv(t, sb, "jstore*", "seq*")
		path := sb.RuntimeDir + "/jstore.sock"
		seqPath := sb.RuntimeDir + "/seq.sock"
		startUnits(t, sb, map[string]string{
			"jstore.socket":  "[Socket]\nListenStream=" + path + "\n",
			"jstore.service": "[Service]\nType=notify\nFileDescriptorStoreMax=64\n" + helperExec("accept-store"),
			"seq.service":    "[Service]\nType=notify\n" + helperExec("listen-seq", seqPath),
		}, "jstore.socket", "jstore.service", "seq.service")
		for i := 0; i < 3; i++ {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		check := func(when string) {
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				return findService(t, s, "jstore.service").FDStoreCount == 3
			})
			if !ok {
				t.Fatalf("%s: fd store never held the 3 connections:\n%s", when, tree(t, s))
			}
			su := findSocket(t, s, "jstore.socket")
			svc := findService(t, s, "jstore.service")
			if len(su.Listeners) != 1 {
				t.Fatalf("%s: listeners %+v", when, su.Listeners)
			}
			l := su.Listeners[0]
			var fd3 uint64
			for _, p := range svc.Passed {
				if p.FD == 3 {
					fd3 = p.Inode
				}
			}
			if l.State != "LISTEN" || l.Inode == 0 || l.Inode != fd3 {
				t.Errorf("%s: listener %+v, want the LISTEN socket passed as fd 3 (inode %d)\n%s", when, l, fd3, tree(t, s))
			}
			for _, ol := range svc.OwnListeners {
				if ol.Inode == l.Inode {
					t.Errorf("%s: the socket unit's listener is listed as the service's own: %+v", when, ol)
				}
			}
			// Unix peers are named by the process holding them: this test.
			wantPeer := fmt.Sprintf("inspect.test pid %d fd ", os.Getpid())
			if len(svc.Connections) != 3 {
				t.Errorf("%s: connections %+v, want 3", when, svc.Connections)
			}
			for _, c := range svc.Connections {
				if !strings.HasPrefix(c.Remote, wantPeer) {
					t.Errorf("%s: connection remote %q, want %q…", when, c.Remote, wantPeer)
				}
			}
			for _, se := range svc.FDStore {
				if !strings.Contains(se.Detail, "↔ "+wantPeer) {
					t.Errorf("%s: store entry detail %q does not name the peer %q…", when, se.Detail, wantPeer)
				}
			}
			seq := findService(t, s, "seq.service")
			if len(seq.OwnListeners) != 1 || seq.OwnListeners[0].Type != "SequentialPacket" || seq.OwnListeners[0].Address != seqPath {
				t.Errorf("%s: seq.service own listeners %+v, want one SequentialPacket %s", when, seq.OwnListeners, seqPath)
			}
		}
		check("after start")
		if _, err := sb.Systemctl(context.Background(), "daemon-reexec"); err != nil {
			t.Fatal(err)
		}
		e = bareEnv(t, sb, e.b.Patterns...)
		check("after daemon-reexec")
	})
}

// TestFDStoreIdentified: a service stores a memfd, one end of a socket
// pair (keeping the other), both ends of many pipes and a listening
// socket, closing its own copies. The list never claims more than it
// identified: on 254 the manager lists every entry; on 252 the socket pair
// end is matched before the first restart and the rest is counted as not
// identified, and after a restart (the new process was passed them all,
// named) every entry left is listed: both ends of each pipe, the listener
// and the memfd (the pair end went with its peer).
func TestFDStoreIdentified(t *testing.T) {
	const pipes = 499
	const total = 3 + 2*pipes
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := bareEnv(t, sb, "mix*")
		listed := strings.HasPrefix(sb.Version, "254")
		startUnits(t, sb, map[string]string{
			"mix.service": fmt.Sprintf("[Service]\nType=notify\nFileDescriptorStoreMax=2000\nLimitNOFILE=8192\nEnvironment=FDTOP_HELPER_PATH=%s/mix.sock\n", sb.RuntimeDir) +
				helperExec("store-mix", fmt.Sprint(pipes)),
		}, "mix.service")
		check := func(when string, total int, wantAll bool) {
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				svc := findService(t, s, "mix.service")
				return int(svc.FDStoreCount) == total && svc.MainPID != 0 && (!wantAll || svc.FDStoreIdentified == total)
			})
			svc := findService(t, s, "mix.service")
			if !ok {
				t.Fatalf("%s: fd store %d entries, %d identified; want %d (all identified: %v)", when, svc.FDStoreCount, svc.FDStoreIdentified, total, wantAll)
			}
			if svc.FDStoreIdentified != len(svc.FDStore) {
				t.Errorf("%s: fdstore_identified %d, %d entries listed", when, svc.FDStoreIdentified, len(svc.FDStore))
			}
			kinds := map[string]int{}
			for _, se := range svc.FDStore {
				kinds[se.Kind]++
				if se.Inferred == listed {
					t.Errorf("%s: entry %+v inferred=%v on %s", when, se, se.Inferred, sb.Version)
				}
			}
			var b strings.Builder
			if err := inspect.WriteTree(&b, s); err != nil {
				t.Fatal(err)
			}
			says := fmt.Sprintf("%d of %d identified", svc.FDStoreIdentified, total)
			if svc.FDStoreIdentified < total && !strings.Contains(b.String(), says) {
				t.Errorf("%s: the tree does not say %q:\n%s", when, says, b.String())
			}
			if svc.FDStoreIdentified == total {
				want := map[string]int{"pipe": 2 * pipes, "memfd": 1, "unix-stream": total - 2*pipes - 2, "unix-listen": 1}
				for k, n := range want {
					if kinds[k] != n {
						t.Errorf("%s: %d %s entries, want %d (kinds %v)", when, kinds[k], k, n, kinds)
					}
				}
			} else if !listed && kinds["unix-stream"] != 1 {
				t.Errorf("%s: the socket pair end the service keeps the peer of is not identified (kinds %v)", when, kinds)
			}
			t.Logf("%s: %d of %d identified, kinds %v", when, svc.FDStoreIdentified, total, kinds)
		}
		check("first start", total, listed)
		if out, err := sb.Systemctl(context.Background(), "restart", "mix.service"); err != nil {
			t.Fatalf("restart: %v\n%s", err, out)
		}
		// The pair end's peer closed with the old process: the manager
		// dropped it (POLLHUP).
		check("after restart", total-1, true)
	})
}

// TestCmdlineNotRequoted: a process whose argv[0] holds spaces (as sshd's
// "sshd: /usr/sbin/sshd -D [listener] …" title does) is shown as the
// kernel has its arguments, joined by spaces, not as the manager quotes it.
func TestCmdlineNotRequoted(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := bareEnv(t, sb, "title*")
		startUnits(t, sb, map[string]string{
			"title.service": "[Service]\nExecStart=/bin/bash -c 'exec -a \"sshd: fake [listener] 0 of 10\" sleep 300'\n",
		}, "title.service")
		want := "sshd: fake [listener] 0 of 10 300"
		s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
			svc := findService(t, s, "title.service")
			return len(svc.Processes) == 1 && strings.HasPrefix(svc.Processes[0].Cmdline, "sshd:")
		})
		svc := findService(t, s, "title.service")
		if !ok || svc.Processes[0].Cmdline != want {
			t.Fatalf("processes %+v, want cmdline %q", svc.Processes, want)
		}
	})
}

// TestAcceptInstancesAfterReload: a live Accept=yes instance stays under its
// socket after daemon-reload (systemd 252 empties the socket's Triggers
// then), with the connection's ends.
func TestAcceptInstancesAfterReload(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		e := bareEnv(t, sb, "acc*")
		ports, err := demo.FreePorts(1)
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		startUnits(t, sb, map[string]string{
			"acc.socket":   "[Socket]\nListenStream=" + addr + "\nAccept=yes\n",
			"acc@.service": "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		}, "acc.socket")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		check := func(when string) {
			s, ok := e.waitSnapshot(t, func(s *inspect.Snapshot) bool {
				su := findSocket(t, s, "acc.socket")
				return len(su.Instances) == 1 && su.Instances[0].MainPID != 0 && su.Instances[0].Remote != ""
			})
			if !ok {
				t.Fatalf("%s: acc.socket instances %+v, want the live one\n%s", when, findSocket(t, s, "acc.socket").Instances, tree(t, s))
			}
			in := findSocket(t, s, "acc.socket").Instances[0]
			if in.Local != addr || in.Remote != conn.LocalAddr().String() {
				t.Errorf("%s: instance %+v, want %s ← %s", when, in, addr, conn.LocalAddr())
			}
			for _, svc := range s.Services {
				if strings.HasPrefix(svc.Unit, "acc@") {
					t.Errorf("%s: instance %s listed as a service of its own", when, svc.Unit)
				}
			}
		}
		check("before reload")
		systemctl(t, sb, "daemon-reload")
		check("after daemon-reload")
	})
}
