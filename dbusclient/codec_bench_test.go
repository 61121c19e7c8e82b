package dbusclient

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// BenchmarkCodec1000 is the measurement behind keeping the hand-written
// wire code (wire.go, batch.go): in one run, against one sandboxed user
// manager with 1,000 listening socket units and their services, each
// iteration times side by side
//
//   - systemctl: `systemctl --user list-sockets --all` (the reference);
//   - lean-*: the client as it is (its own connection, the codec in
//     wire.go);
//   - godbus-go-*: the same calls and decoding pipelined with Object.Go on
//     one godbus connection (runOnConn);
//   - godbus-getall-*: godbus with one Properties.GetAll per interface
//     instead of one Get per property, pipelined the same way.
//
// *-list is the list-sockets data (ListListeners: states, Listen,
// Triggers); *-load is a full Load (sockets, every service's
// FileDescriptorStoreMax, the triggered services). Every measurement is
// preceded by settle (the manager's per-connection rate limit). Metrics are
// medians: *-ms wall time; *-cli-cpu-ms the CPU time of this process (for
// systemctl: of the systemctl process); *-mgr-cpu-ms the manager's CPU time
// (/proc/PID/schedstat), which with the client's tells what a busy machine
// does to the wall time; *-ratio is list wall time over systemctl's (goal
// <= 0.33).
//
// Run: CI=true FDTOP_SYSTEMD_254=... go test -run '^$' -bench Codec1000 -benchtime 10x ./dbusclient/
func BenchmarkCodec1000(b *testing.B) {
	if testing.Short() {
		b.Skip("-short")
	}
	for _, v := range sandboxtest.Versions() {
		b.Run("systemd"+v.Name, func(b *testing.B) {
			sb := benchSandbox(b, v)
			lean := benchConnect(b, sb)
			viaGo := benchConnect(b, sb)
			viaGo.viaGodbus = true
			ctx := context.Background()
			conn, err := sandbox.Dial(ctx, sb.Address)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if err := kickConn(ctx, conn); err != nil {
				b.Fatal(err)
			}
			times := map[string][]time.Duration{}
			cliCPU := map[string][]time.Duration{}
			mgrCPU := map[string][]time.Duration{}
			timed := func(name string, fn func() (int, error)) {
				settle(b)
				cli0, mgr0 := processCPU(b), managerCPU(b, sb.PID)
				t0 := time.Now()
				n, err := fn()
				times[name] = append(times[name], time.Since(t0))
				cliCPU[name] = append(cliCPU[name], processCPU(b)-cli0)
				mgrCPU[name] = append(mgrCPU[name], managerCPU(b, sb.PID)-mgr0)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				if n < benchUnits {
					b.Fatalf("%s: %d units, want %d", name, n, benchUnits)
				}
			}
			sockets := func(s []Socket, err error) (int, error) { return len(s), err }
			loaded := func(st *State, err error) (int, error) {
				if err != nil {
					return 0, err
				}
				return min(len(st.Sockets), len(st.Services)), nil
			}
			for b.Loop() {
				timed("systemctl", func() (int, error) {
					out, err := sb.Systemctl(ctx, "list-sockets", "--all", "--no-legend")
					return strings.Count(out, "\n"), err
				})
				timed("lean-list", func() (int, error) { return sockets(lean.ListListeners(ctx, nil, true)) })
				timed("godbus-go-list", func() (int, error) { return sockets(viaGo.ListListeners(ctx, nil, true)) })
				timed("godbus-getall-list", func() (int, error) { return sockets(getAllListeners(ctx, conn)) })
				timed("lean-load", func() (int, error) { return loaded(lean.Load(ctx, nil, true)) })
				timed("godbus-go-load", func() (int, error) { return loaded(viaGo.Load(ctx, nil, true)) })
				timed("godbus-getall-load", func() (int, error) { return loaded(getAllLoad(ctx, conn)) })
			}
			sys := median(times["systemctl"])
			for _, name := range []string{"systemctl", "lean-list", "godbus-go-list", "godbus-getall-list", "lean-load", "godbus-go-load", "godbus-getall-load"} {
				b.ReportMetric(ms(median(times[name])), name+"-ms")
				b.ReportMetric(ms(median(cliCPU[name])), name+"-cli-cpu-ms")
				b.ReportMetric(ms(median(mgrCPU[name])), name+"-mgr-cpu-ms")
			}
			for _, name := range []string{"lean", "godbus-go", "godbus-getall"} {
				b.ReportMetric(float64(median(times[name+"-list"]))/float64(sys), name+"-ratio")
			}
		})
	}
}

// processCPU is the CPU time of this process and of its waited-for
// children (systemctl) so far.
func processCPU(b *testing.B) time.Duration {
	var self, kids syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids); err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, tv := range []syscall.Timeval{self.Utime, self.Stime, kids.Utime, kids.Stime} {
		d += time.Duration(tv.Nano())
	}
	return d
}

// managerCPU is the CPU time the manager process has run so far.
func managerCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		b.Fatalf("/proc/%d/schedstat: %q", pid, raw)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		b.Fatalf("/proc/%d/schedstat: %v", pid, err)
	}
	return time.Duration(ns)
}

// getAll pipelines one Properties.GetAll(iface) per path over conn and
// returns the property maps in path order.
func getAll(ctx context.Context, conn *dbus.Conn, reqs []getAllReq) ([]map[string]dbus.Variant, error) {
	calls := make([]*call, len(reqs))
	for i, r := range reqs {
		calls[i] = &call{path: r.path, method: ifaceProps + ".GetAll", args: []any{r.iface}}
	}
	if err := runOnConn(ctx, conn, calls); err != nil {
		return nil, err
	}
	out := make([]map[string]dbus.Variant, len(calls))
	for i, c := range calls {
		if err := c.store(&out[i]); err != nil {
			return nil, fmt.Errorf("GetAll %s on %s: %w", reqs[i].iface, reqs[i].path, err)
		}
	}
	return out, nil
}

type getAllReq struct {
	path  dbus.ObjectPath
	iface string
}

// listUnits is ListUnitsByPatterns over conn.
func listUnits(ctx context.Context, conn *dbus.Conn, patterns ...string) ([]unitStatus, error) {
	ls := listCall(nil, patterns)
	if err := runOnConn(ctx, conn, []*call{ls}); err != nil {
		return nil, err
	}
	return ls.units()
}

// storeAll copies named properties out of a GetAll map.
func storeAll(m map[string]dbus.Variant, dests map[string]any) error {
	for name, d := range dests {
		v, ok := m[name]
		if !ok {
			return fmt.Errorf("no property %s", name)
		}
		if err := v.Store(d); err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
	}
	return nil
}

// getAllSockets reads every socket unit with GetAll on its Socket and Unit
// interfaces; full adds the counters and the rest of a Socket.
func getAllSockets(ctx context.Context, conn *dbus.Conn, full bool) ([]Socket, error) {
	units, err := listUnits(ctx, conn, "*.socket")
	if err != nil {
		return nil, err
	}
	var reqs []getAllReq
	var socks []Socket
	for _, u := range units {
		if u.LoadState != "loaded" {
			continue
		}
		socks = append(socks, Socket{UnitState: u.state()})
		reqs = append(reqs, getAllReq{u.Path, ifaceSocket}, getAllReq{u.Path, ifaceUnit})
	}
	maps, err := getAll(ctx, conn, reqs)
	if err != nil {
		return nil, err
	}
	for i := range socks {
		s := &socks[i]
		sock, unit := map[string]any{"Listen": &s.Listen}, map[string]any{"Triggers": &s.Triggers}
		if full {
			sock["Accept"], sock["FileDescriptorName"], sock["FlushPending"] = &s.Accept, &s.FileDescriptorName, &s.FlushPending
			sock["NConnections"], sock["NAccepted"], sock["NRefused"] = &s.Counters.NConnections, &s.Counters.NAccepted, &s.Counters.NRefused
		}
		if err := storeAll(maps[2*i], sock); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		if err := storeAll(maps[2*i+1], unit); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		finishSocket(s)
	}
	return socks, nil
}

func getAllListeners(ctx context.Context, conn *dbus.Conn) ([]Socket, error) {
	return getAllSockets(ctx, conn, false)
}

// getAllLoad is Load's work done with GetAll: the socket units, then one
// Service GetAll per loaded service (FileDescriptorStoreMax and everything
// a Service shows come in the same reply). The benchmark's services are
// inactive, so no GetUnitProcesses calls are needed.
func getAllLoad(ctx context.Context, conn *dbus.Conn) (*State, error) {
	socks, err := getAllSockets(ctx, conn, true)
	if err != nil {
		return nil, err
	}
	units, err := listUnits(ctx, conn, "*.service")
	if err != nil {
		return nil, err
	}
	var reqs []getAllReq
	var svcs []Service
	for _, u := range units {
		if u.LoadState != "loaded" {
			continue
		}
		svcs = append(svcs, Service{UnitState: u.state()})
		reqs = append(reqs, getAllReq{u.Path, ifaceService})
	}
	maps, err := getAll(ctx, conn, reqs)
	if err != nil {
		return nil, err
	}
	triggered := map[string]bool{}
	for _, s := range socks {
		for _, t := range s.Triggers {
			triggered[t] = true
		}
	}
	st := &State{Sockets: socks}
	for i := range svcs {
		s := &svcs[i]
		var startUsec uint64
		if err := storeAll(maps[i], map[string]any{
			"Type": &s.Type, "NotifyAccess": &s.NotifyAccess, "Result": &s.Result, "StatusText": &s.StatusText,
			"ExecMainPID": &s.ExecMainPID, "ExecMainStartTimestamp": &startUsec, "NRestarts": &s.NRestarts,
			"NFileDescriptorStore": &s.NFDStore, "FileDescriptorStoreMax": &s.FDStoreMax,
			"MainPID": &s.MainPID, "ControlPID": &s.ControlPID, "ControlGroup": &s.ControlGroup,
		}); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		s.ExecMainStart = usecTime(startUsec)
		if s.FDStoreMax > 0 || triggered[s.Name] {
			st.Services = append(st.Services, *s)
		}
	}
	return st, nil
}
