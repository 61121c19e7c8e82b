package dbusclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// Scope says which manager to talk to.
type Scope int

// The scopes, as systemctl's --system (default) and --user.
const (
	System Scope = iota
	User
)

// String returns "system" or "user".
func (s Scope) String() string {
	if s == User {
		return "user"
	}
	return "system"
}

// Options says how to connect.
type Options struct {
	// Scope picks the manager when Address is empty.
	Scope Scope
	// Address is an explicit D-Bus address (tests, odd setups); it may be a
	// bus or a manager's private socket. Empty means the usual places for
	// Scope.
	Address string
	// Dial, if set, opens an authenticated but otherwise unused connection
	// to address (no Hello); nil means DialAddress.
	Dial func(ctx context.Context, address string) (*dbus.Conn, error)
}

// Features are the optional manager APIs this client found.
type Features struct {
	// FDStoreDump: Manager.DumpUnitFileDescriptorStore exists (v254+).
	FDStoreDump bool
	// FDStorePreserve: Service.FileDescriptorStorePreserve exists (v254+).
	FDStorePreserve bool
	// SocketSettings are the properties of SocketSettings that the
	// manager's Socket interface has, by D-Bus name; SocketSettingsKnown
	// says a loaded socket unit was introspected to find them (else each
	// is read and may be missing).
	SocketSettings      []string
	SocketSettingsKnown bool
}

// Endpoint is one place a manager may be reached.
type Endpoint struct {
	Address string
	// Bus is true for a bus daemon (Hello, match rules), false for a
	// manager's private socket (peer-to-peer).
	Bus bool
}

// Endpoints lists where Connect looks for the manager, in order, following
// systemctl's conventions (see the package's Options).
func Endpoints(o Options) []Endpoint {
	if o.Address != "" {
		return []Endpoint{{Address: o.Address, Bus: !isPrivateSocket(o.Address)}}
	}
	var eps []Endpoint
	if o.Scope == User {
		if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
			eps = append(eps, Endpoint{Address: a, Bus: !isPrivateSocket(a)})
		}
		rd := os.Getenv("XDG_RUNTIME_DIR")
		if rd == "" {
			// sudo, su and service shells often drop it: the user's
			// runtime directory is still /run/user/UID.
			dir := filepath.Join(userRuntimeBase, strconv.Itoa(os.Geteuid()))
			if _, err := os.Stat(dir); err == nil {
				rd = dir
			}
		}
		if rd != "" {
			eps = append(eps,
				Endpoint{Address: "unix:path=" + filepath.Join(rd, "bus"), Bus: true},
				Endpoint{Address: "unix:path=" + filepath.Join(rd, "systemd", "private")})
		}
		return eps
	}
	if os.Geteuid() == 0 {
		eps = append(eps, Endpoint{Address: "unix:path=/run/systemd/private"})
	}
	sys := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if sys == "" {
		sys = "unix:path=/run/dbus/system_bus_socket"
	}
	return append(eps, Endpoint{Address: sys, Bus: true})
}

// userRuntimeBase holds the users' runtime directories (logind's
// /run/user/UID); tests point it elsewhere.
var userRuntimeBase = "/run/user"

// isPrivateSocket reports whether address is a manager's private socket,
// which has no bus daemon behind it.
func isPrivateSocket(address string) bool {
	sock, ok := unixSocketAddr(address)
	return ok && strings.HasSuffix(sock, "/systemd/private")
}

// DialAddress opens a private connection to address and authenticates with
// EXTERNAL as this process's uid.
func DialAddress(ctx context.Context, address string) (*dbus.Conn, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := dbus.Dial(address)
		if err != nil {
			ch <- result{nil, fmt.Errorf("dial %s: %w", address, err)}
			return
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			ch <- result{nil, fmt.Errorf("auth %s: %w", address, err)}
			return
		}
		ch <- result{conn, nil}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Client is a connection to one systemd manager. Its methods are safe for
// concurrent use. It reconnects by itself after the manager re-execs or the
// bus goes away, and reports that to subscribers.
type Client struct {
	opts Options

	mu       sync.Mutex
	conn     *dbus.Conn // nil while disconnected
	endpoint Endpoint
	pipe     *pipeline
	version  string
	kind     string // "user", "system" or "" (see ManagerScope)
	features Features
	up       chan struct{} // closed while connected; replaced on disconnect
	subs     map[*Subscription]struct{}

	jobs    jobTracker
	calls   atomic.Int64 // method calls sent for reads, for benchmarks
	byName  callCounts   // the same, by method (CallCounts)
	closed  chan struct{}
	closing sync.Once
	wg      sync.WaitGroup

	// viaGodbus makes run pipeline over the godbus connection (runOnConn)
	// instead of the lean codec: set by the codec benchmark only.
	viaGodbus bool
}

// Connect opens a private connection to the manager Options names, calls
// Manager.Subscribe, and reads its Version and features.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.Dial == nil {
		opts.Dial = DialAddress
	}
	c := &Client{
		opts:   opts,
		up:     make(chan struct{}),
		subs:   map[*Subscription]struct{}{},
		closed: make(chan struct{}),
	}
	c.jobs.init()
	sess, err := c.connectRetrying(ctx)
	if err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise(sess)
	return c, nil
}

// ErrConnectionReset is returned (wrapped) by Connect when the manager kept
// refusing or resetting the connection for connectRetryFor: it is there but
// restarting (daemon-reexec), or going away.
var ErrConnectionReset = errors.New("the manager kept refusing or resetting the connection")

// connectRetryFor bounds how long Connect retries a refused or reset
// connection (a daemon-reexec takes well under a second).
const connectRetryFor = 5 * time.Second

// connectRetrying connects, retrying with backoff while the failure is a
// refused, reset or closed connection, for connectRetryFor at most.
func (c *Client) connectRetrying(ctx context.Context) (session, error) {
	start := time.Now()
	wait := backoffMin
	for {
		s, err := c.connect(ctx)
		if err == nil || !transientConnErr(err) && !(socketVanished(err) && time.Since(start)+wait <= vanishedRetryFor) {
			return s, err
		}
		if ctx.Err() != nil || time.Since(start)+wait > connectRetryFor {
			return session{}, fmt.Errorf("%w for %s (daemon-reexec in progress?): %w", ErrConnectionReset, time.Since(start).Round(100*time.Millisecond), err)
		}
		select {
		case <-ctx.Done():
			return session{}, fmt.Errorf("%w (gave up: %v): %w", ErrConnectionReset, ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// vanishedRetryFor bounds how long a socket that is missing from a
// directory that exists is waited for: a re-executing manager unlinks its
// private socket and binds it again, microseconds apart, so a dial can
// land in between. Longer than that, there is no manager.
const vanishedRetryFor = time.Second

// socketVanished reports whether err is a dial of a unix socket path that
// does not exist (ENOENT) in a directory that does: what a manager
// re-binding its socket during daemon-reexec looks like to a dial.
func socketVanished(err error) bool {
	var op *net.OpError
	if !errors.Is(err, syscall.ENOENT) || !errors.As(err, &op) {
		return false
	}
	ua, ok := op.Addr.(*net.UnixAddr)
	if !ok || ua.Name == "" || ua.Name[0] == '@' {
		return false
	}
	st, serr := os.Stat(filepath.Dir(ua.Name))
	return serr == nil && st.IsDir()
}

// transientConnErr reports whether err is a connection the manager refused,
// reset or closed: what a manager re-executing itself does.
func transientConnErr(err error) bool {
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF, dbus.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// session is one live connection and the channel its signals arrive on.
type session struct {
	conn *dbus.Conn
	sigs chan *dbus.Signal
}

// connect tries every endpoint once.
func (c *Client) connect(ctx context.Context) (session, error) {
	eps := Endpoints(c.opts)
	if len(eps) == 0 {
		return session{}, fmt.Errorf("connect to the user manager: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set, and there is no %s/%d", userRuntimeBase, os.Geteuid())
	}
	var errs []error
	for _, ep := range eps {
		s, err := c.connectTo(ctx, ep)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if c.opts.Address != "" {
		return session{}, errors.Join(errs...) // the caller names the address
	}
	return session{}, fmt.Errorf("connect to the %s manager: %w", c.opts.Scope, errors.Join(errs...))
}

func (c *Client) connectTo(ctx context.Context, ep Endpoint) (session, error) {
	conn, err := c.opts.Dial(ctx, ep.Address)
	if err != nil {
		return session{}, err
	}
	fail := func(what string, err error) (session, error) {
		conn.Close()
		return session{}, fmt.Errorf("%s on %s: %w", what, ep.Address, err)
	}
	if ep.Bus {
		if err := conn.Hello(); err != nil {
			return fail("hello", err)
		}
	}
	if !ep.Bus {
		if err := kickConn(ctx, conn); err != nil {
			return fail("first call", err)
		}
	}
	// A big buffer: godbus starts a goroutine per signal when it is full.
	sigs := make(chan *dbus.Signal, 4096)
	conn.Signal(sigs)
	if ep.Bus {
		// A bus only forwards what was asked for; a private socket sends
		// everything once Subscribe is called.
		if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(busName), dbus.WithMatchInterface(ifaceManager)); err != nil {
			return fail("add match for manager signals", err)
		}
		if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(busName), dbus.WithMatchInterface(ifaceProps),
			dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace(managerPath+"/unit")); err != nil {
			return fail("add match for property changes", err)
		}
	}
	mgr := conn.Object(busName, managerPath)
	if err := mgr.CallWithContext(ctx, ifaceManager+".Subscribe", 0).Err; err != nil {
		return fail("subscribe", err)
	}
	var version string
	var v dbus.Variant
	if err := mgr.CallWithContext(ctx, ifaceProps+".Get", 0, ifaceManager, "Version").Store(&v); err != nil {
		return fail("read version", err)
	}
	version, _ = v.Value().(string)
	kind := ""
	var up dbus.Variant
	if err := mgr.CallWithContext(ctx, ifaceProps+".Get", 0, ifaceManager, "UnitPath").Store(&up); err == nil {
		paths, _ := up.Value().([]string)
		kind = scopeOfUnitPath(paths)
	}
	features, err := probeFeatures(ctx, conn)
	if err != nil {
		return fail("introspect", err)
	}
	pipe := &pipeline{address: ep.Address, bus: ep.Bus}
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		return fail("connect", ErrClosed)
	default:
	}
	old := c.pipe
	c.conn, c.endpoint, c.pipe, c.version, c.kind, c.features = conn, ep, pipe, version, kind, features
	close(c.up)
	c.mu.Unlock()
	if old != nil {
		old.close()
	}
	return session{conn: conn, sigs: sigs}, nil
}

// kickConn works around an sd-bus server stall on private sockets: when
// BEGIN and the first message arrive in one read, the manager leaves the
// message in its buffer until more data comes in. It sends Peer.Ping, again
// every kickInterval, until one is answered (a ping left in the buffer is
// answered together with the next; godbus drops the late reply). The
// pipeline does the same whenever replies stop coming (see exchange).
func kickConn(ctx context.Context, conn *dbus.Conn) error {
	obj := conn.Object(busName, managerPath)
	for {
		pctx, cancel := context.WithTimeout(ctx, kickInterval)
		err := obj.CallWithContext(pctx, "org.freedesktop.DBus.Peer.Ping", 0).Err
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
	}
}

// probeFeatures introspects the manager, and a loaded service if there is
// one, for the methods and properties that appeared in v254.
func probeFeatures(ctx context.Context, conn *dbus.Conn) (Features, error) {
	var xml string
	mgr := conn.Object(busName, managerPath)
	if err := mgr.CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil {
		return Features{}, err
	}
	f := Features{FDStoreDump: strings.Contains(xml, `name="DumpUnitFileDescriptorStore"`)}
	f.FDStorePreserve = f.FDStoreDump // both came in v254; refined below
	var units []unitStatus
	if err := mgr.CallWithContext(ctx, ifaceManager+".ListUnitsByPatterns", 0, []string{"loaded"}, []string{"*.service"}).Store(&units); err == nil {
		for _, u := range units {
			if u.LoadState != "loaded" {
				continue
			}
			if err := conn.Object(busName, u.Path).CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err == nil {
				f.FDStorePreserve = strings.Contains(xml, `name="FileDescriptorStorePreserve"`)
			}
			break
		}
	}
	if err := mgr.CallWithContext(ctx, ifaceManager+".ListUnitsByPatterns", 0, []string{"loaded"}, []string{"*.socket"}).Store(&units); err == nil {
		for _, u := range units {
			if u.LoadState != "loaded" {
				continue
			}
			if err := conn.Object(busName, u.Path).CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err == nil {
				f.SocketSettings = introspectedProps(xml, SocketSettingNames())
				f.SocketSettingsKnown = true
			}
			break
		}
	}
	return f, nil
}

// introspectedProps returns those of names that an introspection XML
// declares as properties.
func introspectedProps(xml string, names []string) []string {
	var have []string
	for _, n := range names {
		if strings.Contains(xml, `<property name="`+n+`"`) {
			have = append(have, n)
		}
	}
	return have
}

// supervise reads signals until the connection drops, then reconnects with
// backoff, until Close.
func (c *Client) supervise(s session) {
	defer c.wg.Done()
	for {
		c.readSignals(s)
		select {
		case <-c.closed:
			return
		default:
		}
		c.mu.Lock()
		addr := c.endpoint.Address
		c.conn = nil
		c.up = make(chan struct{})
		c.mu.Unlock()
		s.conn.Close()
		c.dispatch(Disconnected{Err: fmt.Errorf("connection to %s lost", addr)})
		var ok bool
		if s, ok = c.reconnect(); !ok {
			return
		}
		c.jobs.recheck(c)
		c.dispatch(Reconnected{Version: c.Version()})
	}
}

// Backoff bounds for reconnecting.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 2 * time.Second
)

func (c *Client) reconnect() (session, bool) {
	wait := backoffMin
	for {
		select {
		case <-c.closed:
			return session{}, false
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := c.connect(ctx)
		cancel()
		if err == nil {
			return s, true
		}
		wait = min(wait*2, backoffMax)
	}
}

// readSignals turns signals into events until the connection closes.
func (c *Client) readSignals(s session) {
	for sig := range s.sigs {
		if ev := decodeSignal(sig); ev != nil {
			c.dispatch(c.stamp(ev, time.Now()))
		}
	}
}

// stamp sets when a job signal arrived and starts reading a new job's
// type (a subscription delivers the JobNew once the read is done).
func (c *Client) stamp(ev Event, now time.Time) Event {
	switch e := ev.(type) {
	case JobNew:
		e.At = now
		e.typ = &jobType{done: make(chan struct{})}
		go func(jt *jobType) {
			defer close(jt.done)
			ctx, cancel := context.WithTimeout(context.Background(), jobTypeWait)
			defer cancel()
			jt.typ, _ = c.JobType(ctx, e.Job) // gone already: the type stays unknown
		}(e.typ)
		return e
	case JobRemoved:
		e.At = now
		return e
	}
	return ev
}

// dispatch hands an event to the job waiters and every subscriber without
// blocking.
func (c *Client) dispatch(ev Event) {
	if jr, ok := ev.(JobRemoved); ok {
		c.jobs.finished(jr)
	}
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.push(ev)
	}
}

// Version returns the manager's Version property, read at (re)connect.
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// ManagerScope says which kind of manager answered, "user" or "system",
// from where it loads units (its UnitPath: .../systemd/user or
// .../systemd/system); "" when it cannot be told.
func (c *Client) ManagerScope() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kind
}

// scopeOfUnitPath tells a user manager's unit search path from the system
// manager's.
func scopeOfUnitPath(paths []string) string {
	user, system := false, false
	for _, p := range paths {
		p = strings.TrimSuffix(p, "/")
		user = user || strings.HasSuffix(p, "/systemd/user")
		system = system || strings.HasSuffix(p, "/systemd/system")
	}
	switch {
	case user && !system:
		return "user"
	case system && !user:
		return "system"
	}
	return ""
}

// Features returns the optional APIs the manager has.
func (c *Client) Features() Features {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.features
}

// Endpoint returns where the client is (or was last) connected.
func (c *Client) Endpoint() Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoint
}

// Close closes the connections and ends every subscription.
func (c *Client) Close() error {
	c.closing.Do(func() {
		close(c.closed)
		c.mu.Lock()
		conn, pipe := c.conn, c.pipe
		subs := c.subs
		c.subs = map[*Subscription]struct{}{}
		c.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		if pipe != nil {
			pipe.close()
		}
		c.wg.Wait()
		for s := range subs {
			s.stop()
		}
		c.jobs.closeAll()
	})
	return nil
}

// goneCheck is how often a call waiting for a lost connection checks
// whether the manager's process still exists.
const goneCheck = 100 * time.Millisecond

// current waits until the client is connected and returns the connection
// and the pipeline. While disconnected it waits for the reconnection (a
// daemon-reexec keeps the manager's PID) unless the process that answered
// on the socket is gone: then nothing will reconnect soon, and it fails
// with ErrNotConnected at once.
func (c *Client) current(ctx context.Context) (*dbus.Conn, *pipeline, error) {
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	var tick <-chan time.Time
	for {
		c.mu.Lock()
		conn, pipe, up := c.conn, c.pipe, c.up
		c.mu.Unlock()
		if conn != nil {
			return conn, pipe, nil
		}
		if pid := pipe.peerPID(); pid > 0 {
			if processGone(pid) {
				return nil, nil, fmt.Errorf("%w: its process %d is gone", ErrNotConnected, pid)
			}
			if ticker == nil {
				ticker = time.NewTicker(goneCheck)
				tick = ticker.C
			}
		}
		select {
		case <-up:
		case <-tick:
		case <-c.closed:
			return nil, nil, ErrClosed
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for the manager connection: %w", ctx.Err())
		}
	}
}

// exitingWait is how long a call that gives up on a refused or reset
// connection waits for the manager's process to end, in case it is
// exiting: a process's sockets close before it is a zombie.
const exitingWait = 500 * time.Millisecond

// goneWithin reports whether pid is gone now or within d.
func goneWithin(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if processGone(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// processGone reports whether pid no longer runs (no such process, or a
// zombie). A process this one may not signal still runs.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false // unknown: keep waiting
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

// run executes calls pipelined, waiting for a connection if there is none
// and retrying if the connection breaks midway (the calls only read): once
// for any failure, and with backoff for connectRetryFor while the manager
// refuses or resets the connection (a daemon-reexec), as Connect does.
func (c *Client) run(ctx context.Context, calls []*call) error {
	c.calls.Add(int64(len(calls)))
	c.byName.add(calls)
	var err error
	start := time.Now()
	wait := backoffMin
	var last *pipeline // the pipeline of the last try
	for try := 0; ; try++ {
		if try > 0 {
			transient := transientConnErr(err)
			if !transient && socketVanished(err) && time.Since(start)+wait <= vanishedRetryFor {
				transient = true
			}
			if pid := last.peerPID(); transient && pid > 0 && processGone(pid) {
				// Refused or reset because the manager's process is gone
				// (killed, not re-executing: that keeps its PID): nothing
				// will answer soon, as current says when disconnected.
				// (Retried for 5 s, a rescan reported the loss a second
				// time: CI run 28's TestWatchShutdown/manager_gone.)
				return fmt.Errorf("%w: its process %d is gone (%w)", ErrNotConnected, pid, err)
			}
			if !transient && try > 1 || transient && time.Since(start)+wait > connectRetryFor {
				if transient {
					if pid := last.peerPID(); pid > 0 && goneWithin(pid, exitingWait) {
						// The manager was killed while this call waited
						// on it (a stopped manager's socket filled up):
						// its sockets close before its process is gone.
						// (CI run 31's TestWatchShutdown/manager_gone.)
						return fmt.Errorf("%w: its process %d is gone (%w)", ErrNotConnected, pid, err)
					}
					return fmt.Errorf("%w for %s (daemon-reexec in progress?): %w", ErrConnectionReset, time.Since(start).Round(100*time.Millisecond), err)
				}
				return err
			}
			for _, cl := range calls {
				cl.body, cl.err = nil, nil
			}
			select {
			case <-c.closed:
				return ErrClosed
			case <-ctx.Done():
				if transient {
					return fmt.Errorf("%w (gave up: %w): %w", ErrConnectionReset, ctx.Err(), err)
				}
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(wait*2, time.Second)
		}
		conn, pipe, cerr := c.current(ctx)
		if cerr != nil {
			return cerr
		}
		last = pipe
		if c.viaGodbus {
			err = errUnsupportedAddress
		} else {
			err = pipe.run(ctx, calls)
		}
		if errors.Is(err, errUnsupportedAddress) {
			err = runOnConn(ctx, conn, calls)
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

// call1 runs one call through the pipeline.
func (c *Client) call1(ctx context.Context, cl *call) error {
	if err := c.run(ctx, []*call{cl}); err != nil {
		return err
	}
	return cl.err
}
