package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fdtop/fdtop/demo/activation"
	"github.com/fdtop/fdtop/demo/activation/activationtest"
)

// TestMain doubles as the demo server for subprocess tests: with
// FDTOP_DEMO_SERVER_CHILD=1 it sets LISTEN_PID to its own pid (which the
// parent cannot know before fork) and runs Main.
func TestMain(m *testing.M) {
	if os.Getenv("FDTOP_DEMO_SERVER_CHILD") == "1" {
		if os.Getenv("LISTEN_FDS") != "" {
			os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		}
		os.Exit(Main(strings.Fields(os.Getenv("FDTOP_DEMO_SERVER_ARGS")), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// dupFD returns a new descriptor for c's socket, owned by the caller.
func dupFD(t testing.TB, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var nfd int
	var dupErr error
	if err := raw.Control(func(fd uintptr) { nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		t.Fatal(err)
	}
	if dupErr != nil {
		t.Fatal(dupErr)
	}
	return nfd
}

// instance is one in-process server run.
type instance struct {
	cancel context.CancelFunc
	addr   net.Addr
	done   chan error
}

// start runs an instance and waits until it serves.
func start(t testing.TB, cfg Config, env environment) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	env.onReady = func(a net.Addr) { ready <- a }
	if env.pid == 0 {
		env.pid = os.Getpid()
	}
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- run(ctx, cfg, env, testLogger(t)) }()
	select {
	case in.addr = <-ready:
	case err := <-in.done:
		cancel()
		t.Fatalf("server exited before serving: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server not ready after 10s")
	}
	return in
}

// stop cancels the instance (as SIGTERM does) and returns how long it took
// to exit.
func (in *instance) stop(t testing.TB) time.Duration {
	t.Helper()
	begin := time.Now()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Fatalf("server run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop within 10s")
	}
	return time.Since(begin)
}

// client is a line-protocol client with a read deadline on every reply.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one line and splits it into pid, count and text.
func (c *client) reply() (pid int, count uint64, text string, err error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return 0, 0, "", err
	}
	f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 3)
	if len(f) != 3 {
		return 0, 0, "", fmt.Errorf("bad reply %q", line)
	}
	pid, _ = strconv.Atoi(f[0])
	count, _ = strconv.ParseUint(f[1], 10, 64)
	return pid, count, f[2], nil
}

// expect reads one reply and checks its count and text.
func (c *client) expect(count uint64, text string) {
	c.t.Helper()
	_, gotCount, gotText, err := c.reply()
	if err != nil {
		c.t.Fatalf("waiting for reply %d %q: %v", count, text, err)
	}
	if gotCount != count || gotText != text {
		c.t.Fatalf("reply = %d %q, want %d %q", gotCount, gotText, count, text)
	}
}

func TestPlainMode(t *testing.T) {
	in := start(t, Config{Mode: ModePlain, Listen: "127.0.0.1:0"}, environment{pid: 31337})
	c := dial(t, in.addr.String())
	c.send("hello\nwith spaces  \r\n")
	pid, count, text, err := c.reply()
	if err != nil || pid != 31337 || count != 1 || text != "hello" {
		t.Fatalf("first reply = %d %d %q %v; want 31337 1 \"hello\"", pid, count, text, err)
	}
	c.expect(2, "with spaces  ")
	in.stop(t)
	if _, _, _, err := c.reply(); err == nil {
		t.Error("connection still answered after stop")
	}
	if _, err := net.Dial("tcp", in.addr.String()); err == nil {
		t.Error("plain listener still accepting after stop")
	}
}

func TestActivatedModeDropsClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	passed := func() []activation.Passed {
		return []activation.Passed{{FD: dupFD(t, ln.(*net.TCPListener)), Name: "demo-activated.socket"}}
	}
	in := start(t, Config{Mode: ModeActivated}, environment{passed: passed()})
	c := dial(t, ln.Addr().String())
	c.send("a\n")
	c.expect(1, "a")
	in.stop(t)
	if _, _, _, err := c.reply(); err == nil {
		t.Fatal("connection survived a restart in activated mode")
	}
	// The socket unit's listener outlives the instance: a connection made
	// between instances waits in the backlog and is served by the next one.
	c2 := dial(t, ln.Addr().String())
	c2.send("queued\n")
	in2 := start(t, Config{Mode: ModeActivated}, environment{passed: passed()})
	defer in2.stop(t)
	c2.expect(1, "queued")
}

func TestActivatedModeNeedsListener(t *testing.T) {
	for _, mode := range []Mode{ModeActivated, ModeHandoff} {
		t.Run(string(mode), func(t *testing.T) {
			err := run(context.Background(), Config{Mode: mode}, environment{}, testLogger(t))
			if err == nil || !strings.Contains(err.Error(), "no listening socket") {
				t.Errorf("run without fds: error = %v, want \"no listening socket\"", err)
			}
		})
	}
}

// fakeSystemd plays the manager for handoff tests: it owns the socket
// unit's listener and a notify socket with an fd store.
type fakeSystemd struct {
	t   testing.TB
	ln  *net.TCPListener
	mgr *activationtest.Manager
}

func newFakeSystemd(t testing.TB, opts activationtest.Options) *fakeSystemd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := activationtest.NewManager(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mgr.Close()
		ln.Close()
	})
	return &fakeSystemd{t: t, ln: ln.(*net.TCPListener), mgr: mgr}
}

// passed returns the fds for the next instance: the socket unit's listener
// first, then the fd store entries, as systemd orders them.
func (f *fakeSystemd) passed() []activation.Passed {
	f.t.Helper()
	out := []activation.Passed{{FD: dupFD(f.t, f.ln), Name: "demo-handoff.socket"}}
	store, err := f.mgr.PassStore()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range store {
		out = append(out, activation.Passed{FD: e.FD, Name: e.Name})
	}
	return out
}

func (f *fakeSystemd) notifier() *activation.Notifier {
	n, err := activation.NewNotifier(f.mgr.Addr)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fakeSystemd) start(cfg Config) *instance {
	return start(f.t, cfg, environment{passed: f.passed(), notifier: f.notifier()})
}

// sync waits until the manager processed everything sent so far.
func (f *fakeSystemd) sync() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.notifier().Barrier(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSystemd) wantStore(want ...string) {
	f.t.Helper()
	f.sync()
	if got := f.mgr.Store(); !slices.Equal(got, want) {
		f.t.Errorf("fd store (-want +got):\n-%q\n+%q", want, got)
	}
}

func TestHandoff(t *testing.T) {
	sd := newFakeSystemd(t, activationtest.Options{})
	cfg := Config{Mode: ModeHandoff}
	pending := make(chan string, 64) // connection 1's unanswered bytes after each read
	closedIDs := make(chan uint64, 64)
	in := start(t, cfg, environment{passed: sd.passed(), notifier: sd.notifier(), onRead: func(id uint64, p string) {
		if id == 1 {
			select {
			case pending <- p:
			default:
			}
		}
	}, onClose: func(id uint64) {
		select {
		case closedIDs <- id:
		default:
		}
	}})
	sd.wantStore()

	a := dial(t, in.addr.String())
	b := dial(t, in.addr.String())
	a.send("a1\na2\n")
	a.expect(1, "a1")
	a.expect(2, "a2")
	b.send("b1\n")
	b.expect(1, "b1")
	closed := dial(t, in.addr.String())
	closed.send("x\n")
	closed.expect(1, "x")
	closed.conn.Close()
	// The server has seen it closed before it stops (else it hands it over).
	for id := uint64(0); id != 3; {
		select {
		case id = <-closedIDs:
		case <-time.After(10 * time.Second):
			t.Fatal("the server never saw connection 3 closed")
		}
	}
	// Half a line is read by this instance and must reach the next one.
	a.send("par")
	for p := ""; p != "par"; {
		select {
		case p = <-pending:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server did not read the half line: unanswered %q", p)
		}
	}

	in.stop(t)
	sd.wantStore("conn-1", "conn-2", "state")
	// Sent while no instance runs: waits in the socket.
	b.send("b2\n")

	in2 := sd.start(cfg)
	sd.wantStore()
	a.send("tial\n")
	a.expect(3, "partial")
	b.expect(2, "b2")
	// New connections get fresh ids and counts.
	c := dial(t, in2.addr.String())
	c.send("c1\n")
	c.expect(1, "c1")
	in2.stop(t)
	sd.wantStore("conn-1", "conn-2", "conn-4", "state")

	in3 := sd.start(cfg)
	defer in3.stop(t)
	c.send("c2\n")
	c.expect(2, "c2")
	b.send("b3\n")
	b.expect(3, "b3")
}

// TestHandoffRestoresUnsent checks that reply bytes an instance could not
// write are sent by the next one, before new replies.
func TestHandoffRestoresUnsent(t *testing.T) {
	sd := newFakeSystemd(t, activationtest.Options{})
	c := dial(t, sd.ln.Addr().String())
	srvConn, err := sd.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h := Handoff{NextID: 10, Conns: []ConnState{{ID: 5, Count: 7, Pending: []byte("ab"), Unsent: []byte("1 7 written before\n")}}}
	data, _ := h.MarshalBinary()
	mf, err := writeMemfd(StateMemfdName, data)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	n := sd.notifier()
	if err := n.StoreFDs("conn-5", dupFD(t, srvConn.(*net.TCPConn))); err != nil {
		t.Fatal(err)
	}
	srvConn.Close()
	if err := n.StoreFDs(StateFDName, int(mf.Fd())); err != nil {
		t.Fatal(err)
	}
	sd.wantStore("conn-5", "state")

	in := sd.start(Config{Mode: ModeHandoff})
	defer in.stop(t)
	c.expect(7, "written before")
	c.send("c\n")
	c.expect(8, "abc")
	d := dial(t, in.addr.String())
	d.send("new\n")
	d.expect(1, "new")
}

func TestHandoffStopDuringStartup(t *testing.T) {
	sd := newFakeSystemd(t, activationtest.Options{})
	in := sd.start(Config{Mode: ModeHandoff})
	c := dial(t, in.addr.String())
	c.send("1\n")
	c.expect(1, "1")
	in.stop(t)

	// This instance is stopped before it finished starting up: it must
	// put the connection back.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	starting := make(chan struct{})
	go func() {
		done <- run(ctx, Config{Mode: ModeHandoff, StartupDelay: time.Hour},
			environment{passed: sd.passed(), notifier: sd.notifier(), pid: 1, onStartup: func() { close(starting) }}, testLogger(t))
	}()
	select {
	case <-starting:
	case err := <-done:
		t.Fatalf("instance exited before its start-up: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("instance did not reach its start-up in 10s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sd.wantStore("conn-1", "state")

	in3 := sd.start(Config{Mode: ModeHandoff})
	defer in3.stop(t)
	c.send("2\n")
	c.expect(2, "2")
}

func TestHandoffWithoutNotifySocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in := start(t, Config{Mode: ModeHandoff}, environment{passed: []activation.Passed{{FD: dupFD(t, ln.(*net.TCPListener)), Name: "x"}}})
	c := dial(t, in.addr.String())
	c.send("1\n")
	c.expect(1, "1")
	in.stop(t)
	if _, _, _, err := c.reply(); err == nil {
		t.Error("connection kept without a notify socket to store it")
	}
}

// TestHandoffSoak restarts the handoff server 500 times in a row while
// clients keep their connections.
func TestHandoffSoak(t *testing.T) {
	restarts := 500
	if testing.Short() {
		restarts = 50
	}
	sd := newFakeSystemd(t, activationtest.Options{})
	cfg := Config{Mode: ModeHandoff}
	in := sd.start(cfg)
	clients := make([]*client, 3)
	for i := range clients {
		clients[i] = dial(t, in.addr.String())
	}
	var worst time.Duration
	for r := range restarts {
		for i, c := range clients {
			c.send(fmt.Sprintf("r%d-c%d\n", r, i))
			c.expect(uint64(2*r+1), fmt.Sprintf("r%d-c%d", r, i))
			// The second line crosses the restart.
			c.send(fmt.Sprintf("r%d-c%d-late\n", r, i))
		}
		worst = max(worst, in.stop(t))
		in = sd.start(cfg)
		for i, c := range clients {
			c.expect(uint64(2*r+2), fmt.Sprintf("r%d-c%d-late", r, i))
		}
		if t.Failed() {
			t.Fatalf("failed at restart %d", r)
		}
	}
	in.stop(t)
	t.Logf("%d restarts, slowest stop %v", restarts, worst)
}

// TestHandoffManyConnections checks that storing many connections stays
// well within the stop budget and that all of them come back.
func TestHandoffManyConnections(t *testing.T) {
	const n = 200
	sd := newFakeSystemd(t, activationtest.Options{StoreMax: 1024})
	in := sd.start(Config{Mode: ModeHandoff})
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, in.addr.String())
		clients[i].send("first\n")
	}
	for _, c := range clients {
		c.expect(1, "first")
	}
	t.Logf("storing %d connections took %v", n, in.stop(t))
	if got := len(sd.mgr.Store()); got != n+1 {
		t.Errorf("fd store holds %d entries, want %d", got, n+1)
	}
	in2 := sd.start(Config{Mode: ModeHandoff})
	defer in2.stop(t)
	for _, c := range clients {
		c.send("second\n")
	}
	for _, c := range clients {
		c.expect(2, "second")
	}
}

// TestStoredListener: the first instance binds and stores its listener;
// the next takes it from the store (LISTEN_FDNAMES "listener"), so a client
// that connects while no instance runs is queued, not refused, and served
// by the next instance; the entry stays in the store for the one after.
func TestStoredListener(t *testing.T) {
	mgr, err := activationtest.NewManager(t.TempDir(), activationtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	notifier := func() *activation.Notifier {
		n, err := activation.NewNotifier(mgr.Addr)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	passStore := func() []activation.Passed {
		store, err := mgr.PassStore()
		if err != nil {
			t.Fatal(err)
		}
		var out []activation.Passed
		for _, e := range store {
			out = append(out, activation.Passed{FD: e.FD, Name: e.Name})
		}
		return out
	}
	wantStore := func(want ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := notifier().Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		if got := mgr.Store(); !slices.Equal(got, want) {
			t.Errorf("fd store (-want +got):\n-%q\n+%q", want, got)
		}
	}
	cfg := Config{Mode: ModeStoredListener, Listen: "127.0.0.1:0"}

	in := start(t, cfg, environment{notifier: notifier()})
	wantStore(ListenerFDName)
	a := dial(t, in.addr.String())
	a.send("a1\n")
	a.expect(1, "a1")
	in.stop(t)
	if _, _, _, err := a.reply(); err == nil {
		t.Fatal("a client survived the stop: stored-listener mode drops its clients")
	}
	// No instance runs: the stored listener queues the connection.
	b := dial(t, in.addr.String())
	b.send("b1\n")

	in2 := start(t, cfg, environment{passed: passStore(), notifier: notifier()})
	if in2.addr.String() != in.addr.String() {
		t.Errorf("second instance serves on %s, want the stored listener's %s", in2.addr, in.addr)
	}
	b.expect(1, "b1")
	in2.stop(t)
	wantStore(ListenerFDName)
}

// TestStoredListenerNeedsListen: without --listen, stored-listener mode has
// nothing to bind on a first start.
func TestStoredListenerNeedsListen(t *testing.T) {
	if err := (Config{Mode: ModeStoredListener}).validate(); err == nil {
		t.Error("stored-listener without --listen validated")
	}
}
