package demo_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/demo/traffic"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestModesUnderRestart restarts each demo service while traffic flows and
// checks the outcome socket activation promises:
//   - plain: attempts are refused during the restart, clients are dropped;
//   - activated: nothing refused (the listener never closes), clients dropped;
//   - handoff: nothing refused, nothing dropped, counters continue, and the
//     new instance has emptied the fd store it restored from;
//   - stored-listener: nothing refused (the manager holds the listener in
//     the fd store), clients dropped, and the listener stays in the store.
func TestModesUnderRestart(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		cfg := sandboxtest.InstallDemo(t, sb, 500*time.Millisecond)
		for _, mode := range demo.Modes {
			t.Run(string(mode), func(t *testing.T) {
				st := restartUnderTraffic(t, sb, cfg, mode)
				t.Logf("%s: %+v", mode, st)
				if st.Replies == 0 {
					t.Fatalf("no replies at all: %+v", st)
				}
				if len(st.PIDs) < 2 {
					t.Errorf("replies came from pids %v, want the old and the new instance", st.PIDs)
				}
				switch mode {
				case demo.Plain:
					if st.Refused == 0 {
						t.Errorf("plain: Refused = 0, want refused attempts while the service restarts")
					}
					if st.Dropped == 0 {
						t.Errorf("plain: Dropped = 0, want the clients dropped")
					}
				case demo.Activated:
					if st.Refused != 0 {
						t.Errorf("activated: Refused = %d, want 0 (systemd keeps the listener)", st.Refused)
					}
					if st.Dropped == 0 {
						t.Errorf("activated: Dropped = 0, want the clients dropped")
					}
				case demo.Handoff:
					if st.Refused != 0 || st.Dropped != 0 || st.CounterResets != 0 || st.BadReplies != 0 {
						t.Errorf("handoff: refused=%d dropped=%d resets=%d bad=%d, want all 0",
							st.Refused, st.Dropped, st.CounterResets, st.BadReplies)
					}
					n := showProp(t, sb, mode.Service(), "NFileDescriptorStore")
					if n != "0" {
						t.Errorf("handoff: NFileDescriptorStore = %s after the restart, want 0 (the new instance took every entry back)", n)
					}
				case demo.StoredListener:
					if st.Refused != 0 {
						t.Errorf("stored-listener: Refused = %d, want 0 (the fd store keeps the listener)", st.Refused)
					}
					if st.Dropped == 0 {
						t.Errorf("stored-listener: Dropped = 0, want the clients dropped")
					}
					if n := showProp(t, sb, mode.Service(), "NFileDescriptorStore"); n != "1" {
						t.Errorf("stored-listener: NFileDescriptorStore = %s after the restart, want 1 (the listener)", n)
					}
					if s := showProp(t, sb, mode.Service(), "StatusText"); !strings.Contains(s, "listener from the fd store") {
						t.Errorf("stored-listener: status %q, want the new instance to say it took the listener from the fd store", s)
					}
				}
			})
		}
	})
}

// TestHandoffStoreWhileStopped stops the handoff service with clients
// connected (SIGTERM via systemctl kill, with the unit kept loaded by the
// socket) and checks that the fd store then holds one entry per connection
// plus the state memfd.
func TestHandoffStoreHoldsConnections(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		// 2 s of start-up work: a window in which the store is full.
		cfg := sandboxtest.InstallDemo(t, sb, 2*time.Second)
		const conns = 4
		sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), conns, 20*time.Millisecond)
		// Restart without waiting: the new instance sits in its start-up
		// work while the store holds the connections.
		if _, err := sb.Systemctl(ctx, "restart", "--no-block", demo.Handoff.Service()); err != nil {
			t.Fatal(err)
		}
		want := strconv.Itoa(conns + 1)
		deadline := time.Now().Add(10 * time.Second)
		var n string
		for time.Now().Before(deadline) {
			if n = showProp(t, sb, demo.Handoff.Service(), "NFileDescriptorStore"); n == want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n != want {
			t.Fatalf("NFileDescriptorStore = %s during the handoff, want %s (%d connections + state)", n, want, conns)
		}
	})
}

// TestStoredListenerStopStart stops demo-stored.service with clients
// connected and starts it again. Where the manager has
// FileDescriptorStorePreserve= (254+, set to yes in the unit) the stop keeps
// the stored listener: clients that reconnect while the service is stopped
// are queued, none refused, and the next start takes the listener from the
// store. A 252 manager discards the store on stop: reconnecting clients are
// refused until the next start binds anew. On 254 the unit is also run with
// FileDescriptorStorePreserve=restart (the default): a stop discards the
// store as on 252.
func TestStoredListenerStopStart(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 300*time.Millisecond)
		svc := demo.StoredListener.Service()
		cases := []string{""}
		if cfg.PreserveStore {
			cases = []string{"yes", "restart"}
		}
		for _, preserve := range cases {
			name := "preserve=" + preserve
			if preserve == "" {
				name = "no-preserve-setting"
			}
			t.Run(name, func(t *testing.T) {
				if preserve == "restart" {
					dropin := "[Service]\nFileDescriptorStorePreserve=restart\n"
					if err := os.MkdirAll(filepath.Join(sb.UnitDir, svc+".d"), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := sb.WriteUnit(svc+".d/preserve.conf", dropin); err != nil {
						t.Fatal(err)
					}
					if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
						t.Fatal(err)
					}
				}
				const conns = 4
				gen := sandboxtest.Traffic(t, cfg.Addr(demo.StoredListener), conns, 20*time.Millisecond)
				if _, err := sb.Systemctl(ctx, "stop", svc); err != nil {
					t.Fatal(err)
				}
				kept := preserve == "yes"
				if kept {
					if sub := showProp(t, sb, svc, "SubState"); sub != "dead-resources-pinned" {
						t.Errorf("SubState %q while stopped, want dead-resources-pinned", sub)
					}
				}
				n := showProp(t, sb, svc, "NFileDescriptorStore")
				if want := map[bool]string{true: "1", false: "0"}[kept]; n != want {
					t.Errorf("NFileDescriptorStore = %s while stopped, want %s", n, want)
				}
				// While stopped: the clients reconnect into the stored
				// listener's backlog, or are refused.
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					st := gen.Stats()
					if kept && st.Connected == conns && st.Dropped >= conns || !kept && st.Refused > 0 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				stopped := gen.Stats()
				if _, err := sb.Systemctl(ctx, "start", svc); err != nil {
					t.Fatal(err)
				}
				before := gen.Stats().Replies
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && gen.Stats().Replies < before+3*conns; {
					time.Sleep(10 * time.Millisecond)
				}
				st := gen.Stats()
				t.Logf("while stopped: %+v; after the start: %+v", stopped, st)
				status := showProp(t, sb, svc, "StatusText")
				if kept {
					if st.Refused != 0 {
						t.Errorf("Refused = %d, want 0: the store kept the listener through the stop", st.Refused)
					}
					if stopped.Connected != conns {
						t.Errorf("%d/%d clients connected while stopped, want all (queued in the stored listener)", stopped.Connected, conns)
					}
					if !strings.Contains(status, "listener from the fd store") {
						t.Errorf("status %q: the start after the stop did not take the stored listener", status)
					}
				} else {
					if stopped.Refused == 0 {
						t.Errorf("Refused = 0 while stopped, want refusals: the stop discarded the stored listener")
					}
					if !strings.Contains(status, "listener bound and stored") {
						t.Errorf("status %q: the start after the stop should bind anew", status)
					}
				}
				if st.Replies <= before {
					t.Errorf("no replies after the start: %+v", st)
				}
			})
		}
	})
}

func showProp(t *testing.T, sb *sandbox.Sandbox, unit, prop string) string {
	t.Helper()
	out, err := sb.Systemctl(context.Background(), "show", "-P", prop, unit)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func restartUnderTraffic(t *testing.T, sb *sandbox.Sandbox, cfg demo.Config, mode demo.Mode) traffic.Stats {
	t.Helper()
	const conns = 8
	gen := sandboxtest.Traffic(t, cfg.Addr(mode), conns, 20*time.Millisecond)
	if _, err := sb.Systemctl(context.Background(), "restart", mode.Service()); err != nil {
		t.Fatal(err)
	}
	// After the job is done (READY=1 from the new instance), let every
	// connection get a few more replies from it.
	before := gen.Stats().Replies
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && gen.Stats().Replies < before+uint64(3*conns) {
		time.Sleep(10 * time.Millisecond)
	}
	return gen.Stats()
}

// TestFreePorts: distinct ports, each bindable, none in the kernel's
// ephemeral range (where a client's local port could take it).
func TestFreePorts(t *testing.T) {
	ports, err := demo.FreePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if v, err := strconv.Atoi(strings.Fields(string(b))[0]); err == nil {
			ephemeral = v
		}
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		if p < 1024 || p >= ephemeral {
			t.Errorf("port %d outside 1024-%d", p, ephemeral-1)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d not free: %v", p, err)
			continue
		}
		l.Close()
		// Claimed: no other fdtop process can pick it while this one lives.
		if c, err := net.ListenPacket("unixgram", fmt.Sprintf("@fdtop-port-%d", p)); err == nil {
			c.Close()
			t.Errorf("port %d is not claimed", p)
		}
	}
	more, err := demo.FreePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range more {
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
	}
}
