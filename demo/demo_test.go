package demo_test

import (
	"context"
	"fmt"
	"net"
	"os"
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
//     new instance has emptied the fd store it restored from.
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
