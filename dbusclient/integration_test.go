package dbusclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// connect opens a client on the sandbox's private socket.
func connect(t testing.TB, sb *sandbox.Sandbox) *dbusclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dbusclient.Connect(ctx, dbusclient.Options{Address: sb.Address})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// show runs systemctl --user show and returns each property's values
// (Listen repeats; others have one).
func show(t testing.TB, sb *sandbox.Sandbox, unit string, props ...string) map[string][]string {
	t.Helper()
	out, err := sb.Systemctl(context.Background(), "show", "--timestamp=unix", "-p", strings.Join(props, ","), unit)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			m[k] = append(m[k], v)
		}
	}
	return m
}

func one(m map[string][]string, k string) string {
	if len(m[k]) == 0 {
		return ""
	}
	return m[k][0]
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// installDemo installs the demo units with the given start-up delay.
func installDemo(t *testing.T, sb *sandbox.Sandbox, delay time.Duration) demo.Config {
	t.Helper()
	cfg, err := demo.NewConfig(sandboxtest.Fdtop(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StartupDelay = delay
	cfg.LogDir = sb.Dir
	if err := demo.Install(testCtx(t, 60*time.Second), sb, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// checkSocket compares a decoded socket with systemctl show.
func checkSocket(t *testing.T, sb *sandbox.Sandbox, s dbusclient.Socket) {
	t.Helper()
	m := show(t, sb, s.Name, "Listen", "Triggers", "Accept", "FileDescriptorName", "FlushPending",
		"NConnections", "NAccepted", "NRefused", "ActiveState", "SubState", "LoadState")
	var listen []string
	for _, l := range s.Listen {
		listen = append(listen, fmt.Sprintf("%s (%s)", l.Address, l.Type))
	}
	if !slices.Equal(listen, m["Listen"]) {
		t.Errorf("%s Listen = %q, systemctl says %q", s.Name, listen, m["Listen"])
	}
	checks := []struct{ prop, got string }{
		{"Triggers", strings.Join(s.Triggers, " ")},
		{"Accept", yesno(s.Accept)},
		{"FileDescriptorName", s.FileDescriptorName},
		{"FlushPending", yesno(s.FlushPending)},
		{"NConnections", u32(s.Counters.NConnections)},
		{"NAccepted", u32(s.Counters.NAccepted)},
		{"NRefused", u32(s.Counters.NRefused)},
		{"ActiveState", s.ActiveState},
		{"SubState", s.SubState},
		{"LoadState", s.LoadState},
	}
	for _, c := range checks {
		if want := one(m, c.prop); c.got != want {
			t.Errorf("%s %s = %q, systemctl says %q", s.Name, c.prop, c.got, want)
		}
	}
}

// checkService compares a decoded service with systemctl show.
func checkService(t *testing.T, sb *sandbox.Sandbox, s dbusclient.Service) {
	t.Helper()
	m := show(t, sb, s.Name, "MainPID", "ControlPID", "ExecMainPID", "ExecMainStartTimestamp", "NRestarts",
		"FileDescriptorStoreMax", "NFileDescriptorStore", "NotifyAccess", "Type", "Result", "StatusText",
		"ControlGroup", "ActiveState", "SubState")
	start := ""
	if !s.ExecMainStart.IsZero() {
		start = "@" + strconv.FormatInt(s.ExecMainStart.Unix(), 10)
	}
	checks := []struct{ prop, got string }{
		{"MainPID", u32(s.MainPID)},
		{"ControlPID", u32(s.ControlPID)},
		{"ExecMainPID", u32(s.ExecMainPID)},
		{"ExecMainStartTimestamp", start},
		{"NRestarts", u32(s.NRestarts)},
		{"FileDescriptorStoreMax", u32(s.FDStoreMax)},
		{"NFileDescriptorStore", u32(s.NFDStore)},
		{"NotifyAccess", s.NotifyAccess},
		{"Type", s.Type},
		{"Result", s.Result},
		{"StatusText", s.StatusText},
		{"ControlGroup", s.ControlGroup},
		{"ActiveState", s.ActiveState},
		{"SubState", s.SubState},
	}
	for _, c := range checks {
		if want := one(m, c.prop); c.got != want {
			t.Errorf("%s %s = %q, systemctl says %q", s.Name, c.prop, c.got, want)
		}
	}
	if s.MainPID != 0 && !slices.ContainsFunc(s.Processes, func(p dbusclient.Process) bool { return p.PID == s.MainPID }) {
		t.Errorf("%s Processes %+v lack MainPID %d", s.Name, s.Processes, s.MainPID)
	}
}

func findSocket(socks []dbusclient.Socket, name string) (dbusclient.Socket, bool) {
	i := slices.IndexFunc(socks, func(s dbusclient.Socket) bool { return s.Name == name })
	if i < 0 {
		return dbusclient.Socket{}, false
	}
	return socks[i], true
}

func findService(svcs []dbusclient.Service, name string) (dbusclient.Service, bool) {
	i := slices.IndexFunc(svcs, func(s dbusclient.Service) bool { return s.Name == name })
	if i < 0 {
		return dbusclient.Service{}, false
	}
	return svcs[i], true
}

// TestLoadDemo lists the demo units and compares them with systemctl.
func TestLoadDemo(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		installDemo(t, sb, 100*time.Millisecond)
		c := connect(t, sb)
		if !strings.HasPrefix(sb.Version, c.Version()) && c.Version() != sb.Version {
			t.Errorf("Version = %q, sandbox says %q", c.Version(), sb.Version)
		}
		v254 := strings.HasPrefix(c.Version(), "254")
		if f := c.Features(); f.FDStoreDump != v254 || f.FDStorePreserve != v254 {
			t.Errorf("Features = %+v on %s", f, c.Version())
		}
		st, err := c.Load(testCtx(t, 10*time.Second), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []demo.Mode{demo.Activated, demo.Handoff} {
			s, ok := findSocket(st.Sockets, m.Socket())
			if !ok {
				t.Fatalf("%s missing from %+v", m.Socket(), st.Sockets)
			}
			checkSocket(t, sb, s)
			svc, ok := findService(st.Services, m.Service())
			if !ok {
				t.Fatalf("%s missing", m.Service())
			}
			checkService(t, sb, svc)
			if !slices.Equal(svc.TriggeredBy, []string{m.Socket()}) {
				t.Errorf("%s TriggeredBy = %v", svc.Name, svc.TriggeredBy)
			}
			if svc.MainPID == 0 || svc.ActiveState != "active" {
				t.Errorf("%s not running: %+v", svc.Name, svc)
			}
			if v254 != (svc.FDStorePreserve != "") {
				t.Errorf("%s FDStorePreserve = %q on %s", svc.Name, svc.FDStorePreserve, c.Version())
			}
		}
		if _, ok := findService(st.Services, demo.Plain.Service()); ok {
			t.Errorf("demo-plain.service has no socket and no fd store, but was listed")
		}
		// A pattern names services too: plain binds its own listener.
		named, err := c.Load(testCtx(t, 10*time.Second), []string{"demo-*"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if svc, ok := findService(named.Services, demo.Plain.Service()); !ok {
			t.Errorf("Load(demo-*) did not list demo-plain.service")
		} else {
			checkService(t, sb, svc)
		}
		if len(named.Sockets) != 2 {
			t.Errorf("Load(demo-*) listed %d sockets, want the 2 demo sockets", len(named.Sockets))
		}
		// One unit alone reads the same.
		one, err := c.Service(testCtx(t, 5*time.Second), demo.Handoff.Service())
		if err != nil {
			t.Fatal(err)
		}
		checkService(t, sb, one)
		if !slices.Equal(one.TriggeredBy, []string{demo.Handoff.Socket()}) {
			t.Errorf("Service(%s).TriggeredBy = %v", one.Name, one.TriggeredBy)
		}
	})
}

// TestListenerKinds lists a socket with one listener of every common kind
// and an Accept=yes socket with live instances.
func TestListenerKinds(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ports, err := demo.FreePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		rd := sb.RuntimeDir
		abstract := "@" + filepath.Base(sb.Dir) + "-abs"
		units := map[string]string{
			"fdt-multi.socket": fmt.Sprintf(`[Socket]
ListenStream=127.0.0.1:%d
ListenStream=[::1]:%d
ListenDatagram=127.0.0.1:%d
ListenStream=%s/multi.sock
ListenStream=%s
ListenFIFO=%s/multi.fifo
ListenSequentialPacket=%s/multi.seq
FileDescriptorName=multi
FlushPending=yes
`, ports[0], ports[1], ports[2], rd, abstract, rd, rd),
			"fdt-multi.service": "[Service]\nExecStart=/bin/sleep 300\n",
			"fdt-acc.socket":    fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n", ports[3]),
			"fdt-acc@.service":  "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n",
		}
		for name, content := range units {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		ctx := testCtx(t, 30*time.Second)
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "start", "fdt-multi.socket", "fdt-acc.socket"); err != nil {
			t.Fatal(err)
		}
		// Two live connections: two instances of fdt-acc@.service.
		for range 2 {
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[3]))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintln(conn, "ping")
			if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		c := connect(t, sb)
		socks, err := c.ListSockets(ctx, []string{"fdt-*"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) != 2 {
			t.Fatalf("ListSockets(fdt-*) = %d sockets, want 2: %+v", len(socks), socks)
		}
		multi, _ := findSocket(socks, "fdt-multi.socket")
		checkSocket(t, sb, multi)
		var nets []string
		for _, l := range multi.Listen {
			nets = append(nets, l.Network())
		}
		if want := []string{"tcp", "tcp", "udp", "unix", "unix", "fifo", "unixpacket"}; !slices.Equal(nets, want) {
			t.Errorf("networks = %v, want %v", nets, want)
		}
		if !multi.Listen[4].Abstract() || multi.Listen[4].Address != abstract {
			t.Errorf("abstract listener = %+v, want %s", multi.Listen[4], abstract)
		}
		if multi.FileDescriptorName != "multi" || !multi.FlushPending || multi.Accept {
			t.Errorf("fdt-multi.socket = %+v", multi)
		}
		acc, _ := findSocket(socks, "fdt-acc.socket")
		checkSocket(t, sb, acc)
		if !acc.Accept || acc.Template != "fdt-acc@.service" || len(acc.Instances) != 2 || acc.Counters.NConnections != 2 || acc.Counters.NAccepted != 2 {
			t.Errorf("fdt-acc.socket = %+v, want Accept, template fdt-acc@.service, 2 instances and connections", acc)
		}
		st, err := c.Load(ctx, []string{"fdt-*"}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, inst := range acc.Instances {
			svc, ok := findService(st.Services, inst)
			if !ok {
				t.Errorf("instance %s missing from Load", inst)
				continue
			}
			if svc.Template != "fdt-acc@.service" || svc.MainPID == 0 || len(svc.Processes) != 1 {
				t.Errorf("instance %+v", svc)
			}
			checkService(t, sb, svc)
		}
		// Without all, inactive sockets are hidden as list-sockets hides them.
		if _, err := sb.Systemctl(ctx, "stop", "fdt-multi.socket"); err != nil {
			t.Fatal(err)
		}
		for _, all := range []bool{false, true} {
			args := []string{"list-sockets", "--no-legend", "fdt-*"}
			if all {
				args = append(args, "--all")
			}
			out, err := sb.Systemctl(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			socks, err := c.ListSockets(ctx, []string{"fdt-*"}, all)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"fdt-multi.socket", "fdt-acc.socket"} {
				_, listed := findSocket(socks, name)
				if shown := strings.Contains(out, " "+name+" "); shown != listed {
					t.Errorf("all=%v: %s listed=%v, systemctl list-sockets shows it: %v\n%s", all, name, listed, shown, out)
				}
			}
		}
	})
}

// TestFDStore catches the handoff service between its old instance storing
// its connections and the new one taking them back.
func TestFDStore(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		cfg := installDemo(t, sb, 2*time.Second)
		conn, err := net.Dial("tcp", cfg.Addr(demo.Handoff))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintln(conn, "hi")
		if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		c := connect(t, sb)
		ctx := testCtx(t, 30*time.Second)
		svc := demo.Handoff.Service()
		before, err := c.FDStore(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		if before.Max != 1024 || before.Count != 0 {
			t.Errorf("before restart: %+v, want Max 1024 and an empty store", before)
		}
		done := make(chan error, 1)
		go func() { _, err := c.Restart(ctx, svc); done <- err }()
		var st dbusclient.FDStore
		for {
			st, err = c.FDStore(ctx, svc)
			if err != nil {
				t.Fatal(err)
			}
			// The service stores its two entries one at a time: wait for
			// both (CI run 26 read the store between them, then asked
			// systemctl after the second).
			if st.Count >= 2 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		m := show(t, sb, svc, "NFileDescriptorStore")
		if u32(st.Count) != one(m, "NFileDescriptorStore") || st.Count != 2 {
			t.Errorf("Count = %d, systemctl says %v; want 2 (a connection and the state)", st.Count, m)
		}
		if !strings.HasPrefix(c.Version(), "254") {
			if st.Listed || len(st.Entries) != 0 {
				t.Errorf("on %s the store cannot be listed, got %+v", c.Version(), st)
			}
		} else {
			if !st.Listed || len(st.Entries) != int(st.Count) || st.Preserve != "restart" {
				t.Fatalf("on 254: %+v, want %d listed entries and Preserve restart", st, st.Count)
			}
			types := map[string]string{}
			for _, e := range st.Entries {
				types[e.Name] = e.FileType()
				if e.Inode == 0 || e.Path == "" {
					t.Errorf("entry %+v lacks inode or path", e)
				}
			}
			if types["state"] != "regular" {
				t.Errorf("entry state: %q, want a memfd (regular): %+v", types["state"], st.Entries)
			}
			conns := 0
			for name, typ := range types {
				if strings.HasPrefix(name, "conn-") && typ == "socket" {
					conns++
				}
			}
			if conns != 1 {
				t.Errorf("want one conn-* socket entry: %+v", st.Entries)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestActions covers the results and the typed errors.
func TestActions(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		units := map[string]string{
			"fdt-sleep.service": "[Service]\nExecStart=/bin/sleep 300\n",
			"fdt-fail.service":  "[Service]\nType=oneshot\nExecStart=/bin/false\n",
		}
		for name, content := range units {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		ctx := testCtx(t, 30*time.Second)
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		c := connect(t, sb)
		for _, act := range []struct {
			name string
			fn   func(context.Context, string) (dbusclient.JobResult, error)
		}{{"start", c.Start}, {"restart", c.Restart}, {"try-restart", c.TryRestart}, {"stop", c.Stop}} {
			res, err := act.fn(ctx, "fdt-sleep.service")
			if err != nil || res != dbusclient.JobDone {
				t.Errorf("%s fdt-sleep.service = %q, %v; want done", act.name, res, err)
			}
		}
		if _, err := c.Start(ctx, "fdt-sleep.service"); err != nil {
			t.Fatal(err)
		}
		// A Type=simple start job is done once the manager has forked: the
		// control group may still hold the child before or during its
		// execve, which the manager lists as "(sleep)" or "[sleep]" (empty
		// cmdline). That is the truth at that moment, so the test waits
		// until the one process has exec'd /bin/sleep.
		for {
			procs, err := c.Processes(ctx, "fdt-sleep.service")
			if err != nil || len(procs) != 1 || !strings.HasSuffix(procs[0].CGroup, "/fdt-sleep.service") {
				t.Fatalf("Processes = %+v, %v; want the one sleep", procs, err)
			}
			if procs[0].Cmdline == "/bin/sleep 300" {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("Processes = %+v: the sleep never exec'd", procs)
			case <-time.After(5 * time.Millisecond):
			}
		}
		if _, err := c.Stop(ctx, "fdt-sleep.service"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Processes(ctx, "fdt-no-such-unit.service"); !errors.Is(err, dbusclient.ErrNoSuchUnit) {
			t.Errorf("Processes of a missing unit: %v, want ErrNoSuchUnit", err)
		}
		_, err := c.Stop(ctx, "fdt-no-such-unit.service")
		if !errors.Is(err, dbusclient.ErrNoSuchUnit) {
			t.Errorf("Stop of a missing unit: %v, want ErrNoSuchUnit", err)
		}
		res, err := c.Start(ctx, "fdt-fail.service")
		var jf *dbusclient.JobFailedError
		if res != dbusclient.JobFailed || !errors.As(err, &jf) || jf.UnitResult != "exit-code" {
			t.Errorf("Start fdt-fail.service = %q, %v; want failed with unit result exit-code", res, err)
		}
		_, err = c.Reload(ctx, "fdt-sleep.service")
		if err == nil {
			t.Error("Reload of an inactive unit without ExecReload succeeded")
		}
	})
}

// TestEscapedNames round-trips unit names with escapes, instances and a
// long name through object paths and lookups.
func TestEscapedNames(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		long := "fdt-" + strings.Repeat("l", 200) + ".socket"
		names := []string{`fdt-a\x2db.socket`, long}
		for i, n := range names {
			content := fmt.Sprintf("[Socket]\nListenStream=%s/esc%d.sock\nService=fdt-esc.service\n", sb.RuntimeDir, i)
			if err := sb.WriteUnit(n, content); err != nil {
				t.Fatal(err)
			}
		}
		if err := sb.WriteUnit("fdt-esc.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		if err := sb.WriteUnit("fdt-inst@.service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t, 30*time.Second)
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		c := connect(t, sb)
		for _, n := range names {
			if res, err := c.Start(ctx, n); err != nil || res != dbusclient.JobDone {
				t.Fatalf("Start %s: %v %v", n, res, err)
			}
		}
		inst := `fdt-inst@a\x2db\x20c.service`
		if _, err := c.Start(ctx, inst); err != nil {
			t.Fatal(err)
		}
		socks, err := c.ListSockets(ctx, []string{"fdt-*"}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			s, ok := findSocket(socks, n)
			if !ok {
				t.Errorf("%s not listed", n)
				continue
			}
			if s.Path != dbusclient.UnitPath(n) {
				t.Errorf("%s: manager path %s, UnitPath %s", n, s.Path, dbusclient.UnitPath(n))
			}
			if back, err := dbusclient.UnitNameFromPath(s.Path); err != nil || back != n {
				t.Errorf("UnitNameFromPath(%s) = %q, %v", s.Path, back, err)
			}
			one, err := c.Socket(ctx, n)
			if err != nil || one.Name != n {
				t.Errorf("Socket(%q) = %+v, %v", n, one, err)
			}
		}
		svc, err := c.Service(ctx, inst)
		if err != nil || svc.Template != "fdt-inst@.service" || svc.MainPID == 0 || svc.Path != dbusclient.UnitPath(inst) {
			t.Errorf("Service(%q) = %+v, %v", inst, svc, err)
		}
		if _, err := c.Service(ctx, `fdt-inst@a\x2dz.service`); !errors.Is(err, dbusclient.ErrNoSuchUnit) {
			t.Errorf("a not-loaded instance: %v, want ErrNoSuchUnit", err)
		}
	})
}
