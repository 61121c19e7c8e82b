package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/demo/activation"
	"golang.org/x/sys/unix"
)

// Mode selects how the server gets its listener and what it does on stop.
type Mode string

// The server's modes.
const (
	// ModePlain binds its own listener after start-up: connection attempts
	// during a restart are refused.
	ModePlain Mode = "plain"
	// ModeActivated takes its listener from the socket unit: connection
	// attempts queue during a restart, but established clients are dropped.
	ModeActivated Mode = "activated"
	// ModeHandoff is ModeActivated plus handing established connections to
	// the next instance through the file descriptor store.
	ModeHandoff Mode = "handoff"
	// ModeStoredListener needs no socket unit: its first instance binds
	// the listener itself and stores it in the file descriptor store
	// (FDSTORE=1, FDNAME=listener); every later one takes it from
	// LISTEN_FDNAMES, binding only when it is missing. Connection attempts
	// queue during a restart (the manager holds the listener), established
	// clients are dropped.
	ModeStoredListener Mode = "stored-listener"
)

// Names used in the file descriptor store.
const (
	// StateFDName is the FDNAME of the memfd holding the encoded Handoff.
	StateFDName = "state"
	// ConnFDNamePrefix starts the FDNAME of a stored connection,
	// followed by its decimal id.
	ConnFDNamePrefix = "conn-"
	// StateMemfdName is the memfd's own name, visible in /proc/PID/fd.
	StateMemfdName = "fdtop-state"
	// ListenerFDName is the FDNAME of the listener ModeStoredListener
	// keeps in the store.
	ListenerFDName = "listener"
)

// maxLine bounds a request line; longer ones close the connection.
const maxLine = 64 << 10

// barrierTimeout bounds the wait for the manager after storing fds.
const barrierTimeout = time.Second

// Config configures one server instance.
type Config struct {
	// Mode is plain, activated, handoff or stored-listener.
	Mode Mode
	// Listen is the TCP address plain mode binds, e.g. 127.0.0.1:8001,
	// and stored-listener mode binds when no stored listener was passed.
	Listen string
	// StartupDelay is the simulated start-up work done before serving.
	StartupDelay time.Duration
}

// environment is what the process received from its manager, passed in
// explicitly so tests can fake it.
type environment struct {
	// passed are the LISTEN_FDS descriptors; run takes ownership.
	passed []activation.Passed
	// notifier is nil when there is no NOTIFY_SOCKET.
	notifier *activation.Notifier
	// pid is written in replies.
	pid int
	// onReady, when set, is called with the listener's address once serving.
	onReady func(net.Addr)
	// onStartup, when set, is called once the passed fds are taken, as the
	// simulated start-up work begins (tests stop an instance there).
	onStartup func()
	// onRead, when set, is called after each read from a client with the
	// connection's id and its unanswered bytes (tests wait on it).
	onRead func(id uint64, pending string)
	// onClose, when set, is called with a connection's id once it is
	// closed and forgotten (tests wait on it).
	onClose func(id uint64)
	// extra, when set (handoff mode), delivers SIGUSR1, which stores a
	// fresh memfd in the fd store as extra-N, and SIGUSR2, which removes
	// every extra-N entry (FDSTOREREMOVE): the truth oracle (demo/oracle)
	// changes the store at random moments with them.
	extra <-chan os.Signal
}

type server struct {
	cfg      Config
	env      environment
	log      *slog.Logger
	stopping chan struct{}

	wg     sync.WaitGroup // connection handlers
	mu     sync.Mutex
	conns  map[uint64]*clientConn
	nextID uint64

	// passedListener is the listening descriptor as passed (kept open).
	passedListener *os.File
	// passedState is the handed-over state memfd as passed (kept open).
	passedState *os.File

	// restoredNames are the fd store entries this instance was started
	// with. They leave the store only once the instance is ready, so a
	// crash during start-up still leaves them there for the next try.
	restoredNames []string

	// extras are the extra-N entries in the store (environment.extra).
	extraMu sync.Mutex
	extras  []string
	extraN  int

	// stored is set when this instance bound the listener and sent it to
	// the store (stored-listener mode's first start).
	stored bool
}

// clientConn is one client connection. Its buffers and counter belong to
// its handler goroutine while it runs, and to shutdown after s.wg.Wait.
type clientConn struct {
	id      uint64
	nc      net.Conn
	count   uint64
	pending []byte
	unsent  []byte
}

// run is the whole life of one server instance: restore, start up, serve
// until ctx ends, then hand over or drop the connections.
func run(ctx context.Context, cfg Config, env environment, log *slog.Logger) error {
	s := &server{
		cfg:      cfg,
		env:      env,
		log:      log,
		stopping: make(chan struct{}),
		conns:    make(map[uint64]*clientConn),
		nextID:   1,
	}
	ln, err := s.takePassed()
	if err != nil {
		return err
	}
	if cfg.Mode == ModeStoredListener && ln == nil {
		// First start (or the store was discarded by a stop): bind, and
		// hand a copy to the manager at once, so that from now on the
		// listener outlives every instance.
		if ln, err = s.bindAndStore(); err != nil {
			return err
		}
	}
	// Simulated start-up work: the same in every mode.
	timer := time.NewTimer(cfg.StartupDelay)
	if env.onStartup != nil {
		env.onStartup()
	}
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
		log.Info("stopped during start-up")
		if ln != nil {
			ln.Close()
		}
		return s.shutdown(ctx)
	}
	if cfg.Mode == ModePlain {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			s.shutdown(ctx)
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	s.mu.Lock()
	restored := len(s.conns)
	for _, c := range s.conns {
		s.startHandler(c)
	}
	s.mu.Unlock()

	s.notify(func(n *activation.Notifier) error { return n.Ready() })
	s.removeRestored()
	status := fmt.Sprintf("serving on %s, mode %s, pid %d", ln.Addr(), cfg.Mode, env.pid)
	switch {
	case cfg.Mode != ModeStoredListener:
	case s.stored:
		status += ", listener bound and stored as " + ListenerFDName
	case s.passedListener != nil:
		status += ", listener from the fd store (" + ListenerFDName + ")"
	default:
		status += ", listener not stored"
	}
	if restored > 0 {
		status += fmt.Sprintf(", %d connections restored", restored)
	}
	s.notify(func(n *activation.Notifier) error { return n.Status(status) })
	log.Info("ready", "addr", ln.Addr().String(), "mode", string(cfg.Mode), "restored", restored)
	if env.onReady != nil {
		env.onReady(ln.Addr())
	}

	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		s.acceptLoop(ln)
	}()
	if cfg.Mode == ModeHandoff && env.extra != nil && env.notifier != nil {
		go s.extraLoop(ctx)
	}
	<-ctx.Done()
	close(s.stopping)
	ln.Close()
	<-acceptDone
	return s.shutdown(ctx)
}

// takePassed sorts the descriptors from the manager: it returns the
// listener (nil in plain mode) and, in handoff mode, restores the stored
// connections and their state, removing them from the store.
func (s *server) takePassed() (net.Listener, error) {
	var (
		ln       net.Listener
		state    *Handoff
		stored   []string // store entries to remove
		restored = map[uint64]net.Conn{}
	)
	for _, p := range s.env.passed {
		f := p.File()
		switch {
		case s.cfg.Mode == ModeHandoff && p.Name == StateFDName:
			s.log.Info("fdstore", "op", "got", "name", p.Name, "inode", inodeOf(f))
			stored = append(stored, p.Name)
			data, err := readStateFile(f)
			// Kept open until exit, so the memfd stays visible at its
			// passed fd number (fdtop shows "passed fd N = state").
			s.passedState = f
			if err != nil {
				s.log.Warn("cannot read handed-over state", "err", err)
				continue
			}
			var h Handoff
			if err := h.UnmarshalBinary(data); err != nil {
				s.log.Warn("cannot decode handed-over state", "err", err)
				continue
			}
			state = &h
		case s.cfg.Mode == ModeHandoff && strings.HasPrefix(p.Name, ExtraFDNamePrefix):
			// An extra-N entry: it stays in the store (not ours to use).
			s.log.Info("fdstore", "op", "got", "name", p.Name, "inode", inodeOf(f))
			f.Close()
			s.extraMu.Lock()
			if !slices.Contains(s.extras, p.Name) {
				s.extras = append(s.extras, p.Name)
			}
			s.extraMu.Unlock()
		case s.cfg.Mode == ModeHandoff && strings.HasPrefix(p.Name, ConnFDNamePrefix):
			s.log.Info("fdstore", "op", "got", "name", p.Name, "inode", inodeOf(f))
			stored = append(stored, p.Name)
			id, err := strconv.ParseUint(strings.TrimPrefix(p.Name, ConnFDNamePrefix), 10, 64)
			if err != nil || id == 0 || restored[id] != nil {
				s.log.Warn("dropping stored connection with a bad name", "fd", p.FD, "name", p.Name)
				f.Close()
				continue
			}
			nc, err := net.FileConn(f)
			if err != nil {
				f.Close()
				s.log.Warn("dropping stored connection", "name", p.Name, "err", err)
				continue
			}
			// Keep the passed descriptor open next to Go's dup, so the
			// connection stays at the fd number it was passed on; both
			// close together.
			restored[id] = &passedConn{Conn: nc, passed: f}
		case ln == nil && s.cfg.Mode != ModePlain && p.IsListener() &&
			(s.cfg.Mode != ModeStoredListener || p.Name == ListenerFDName):
			l, err := net.FileListener(f)
			if err != nil {
				f.Close()
				s.closeRestored(restored)
				return nil, fmt.Errorf("use passed listener fd %d (%q): %w", p.FD, p.Name, err)
			}
			ln = l
			// Keep the passed descriptor itself open (net.FileListener
			// served from a dup): the listener stays at the fd number the
			// manager passed it on, as in any sd_listen_fds server, which
			// is what fdtop shows as "passed fd 3 = ...".
			s.passedListener = f
			s.log.Info("using passed listener", "fd", p.FD, "name", p.Name, "addr", l.Addr().String())
		default:
			s.log.Warn("closing unexpected passed fd", "fd", p.FD, "name", p.Name, "mode", string(s.cfg.Mode))
			f.Close()
		}
	}
	if (s.cfg.Mode == ModeActivated || s.cfg.Mode == ModeHandoff) && ln == nil {
		s.closeRestored(restored)
		return nil, fmt.Errorf("mode %s: no listening socket among %d passed fds (LISTEN_FDS): run it from a .socket unit", s.cfg.Mode, len(s.env.passed))
	}

	byID := map[uint64]ConnState{}
	if state != nil {
		s.nextID = max(s.nextID, state.NextID)
		for _, cs := range state.Conns {
			byID[cs.ID] = cs
		}
	}
	for id, nc := range restored {
		cs, ok := byID[id]
		if !ok {
			s.log.Warn("restored connection has no saved state, counting from 0", "id", id)
		}
		s.conns[id] = &clientConn{id: id, nc: nc, count: cs.Count, pending: cs.Pending, unsent: cs.Unsent}
		s.nextID = max(s.nextID, id+1)
	}
	if len(state.connsMissing(restored)) > 0 {
		s.log.Warn("saved state for connections not passed back (closed or over FileDescriptorStoreMax)", "ids", state.connsMissing(restored))
	}
	// The restored entries leave the store once this instance is ready
	// (see removeRestored): they are ours then, and go back in on the next
	// stop.
	s.restoredNames = stored
	if len(stored) > 0 {
		s.log.Info("restored handed-over connections", "conns", len(s.conns), "state", state != nil)
	}
	return ln, nil
}

func (h *Handoff) connsMissing(have map[uint64]net.Conn) []uint64 {
	if h == nil {
		return nil
	}
	var ids []uint64
	for _, c := range h.Conns {
		if have[c.ID] == nil {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func (s *server) closeRestored(m map[uint64]net.Conn) {
	for _, nc := range m {
		nc.Close()
	}
}

// bindAndStore binds the stored-listener mode's listener and sends it to
// the fd store as ListenerFDName. Without a notify socket (or when the
// manager refuses it) the listener still serves, but closes with this
// instance.
func (s *server) bindAndStore() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.log.Info("no stored listener passed: bound one", "addr", ln.Addr().String())
	if s.env.notifier == nil {
		s.log.Warn("no NOTIFY_SOCKET: the listener cannot be stored and closes with this instance")
		return ln, nil
	}
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("store listener %s: %w", ln.Addr(), err)
	}
	var sendErr error
	var ino uint64
	if err := raw.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil {
			ino = st.Ino
		}
		sendErr = s.env.notifier.StoreFDs(ListenerFDName, int(fd))
	}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("store listener %s: %w", ln.Addr(), err)
	}
	if sendErr != nil {
		s.log.Warn("cannot store the listener: it closes with this instance", "err", sendErr)
		return ln, nil
	}
	s.log.Info("fdstore", "op", "store", "name", ListenerFDName, "inode", ino)
	s.stored = true
	return ln, nil
}

// notify sends a message when there is a notify socket, logging failures.
func (s *server) notify(send func(*activation.Notifier) error) {
	if s.env.notifier == nil {
		return
	}
	if err := send(s.env.notifier); err != nil {
		s.log.Warn("notify failed", "err", err)
	}
}

func (s *server) acceptLoop(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.stopping:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			s.log.Warn("accept failed", "err", err)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		c := &clientConn{id: s.nextID, nc: nc}
		s.nextID++
		s.conns[c.id] = c
		s.startHandler(c)
		s.mu.Unlock()
	}
}

// startHandler starts c's goroutine; s.mu must be held.
func (s *server) startHandler(c *clientConn) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveConn(c)
	}()
}

// serveConn answers c's lines until the client goes away or the server
// stops. On stop it leaves c open, in s.conns, with its buffers intact.
func (s *server) serveConn(c *clientConn) {
	buf := make([]byte, 16<<10)
	for {
		if len(c.unsent) > 0 {
			n, err := c.nc.Write(c.unsent)
			c.unsent = c.unsent[n:]
			if err != nil {
				s.endConn(c, "write", err)
				return
			}
			c.unsent = nil
		}
		if s.processLines(c) {
			continue
		}
		if len(c.pending) > maxLine {
			s.log.Warn("closing connection: line too long", "id", c.id, "bytes", len(c.pending))
			s.endConn(c, "read", errLineTooLong)
			return
		}
		n, err := c.nc.Read(buf)
		c.pending = append(c.pending, buf[:n]...)
		if s.env.onRead != nil && n > 0 {
			s.env.onRead(c.id, string(c.pending))
		}
		if err != nil {
			s.processLines(c)
			if !isDeadline(err) && len(c.unsent) > 0 {
				// Best effort: answer what came along with EOF.
				c.nc.Write(c.unsent)
			}
			s.endConn(c, "read", err)
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// processLines answers every complete line in c.pending, appending the
// replies to c.unsent; it reports whether there was any.
func (s *server) processLines(c *clientConn) bool {
	found := false
	for {
		i := bytes.IndexByte(c.pending, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(c.pending[:i], []byte("\r"))
		c.count++
		c.unsent = fmt.Appendf(c.unsent, "%d %d %s\n", s.env.pid, c.count, line)
		c.pending = c.pending[i+1:]
		found = true
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return found
}

func isDeadline(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// endConn records why c's handler stopped: the handoff deadline keeps the
// connection, anything else closes it.
func (s *server) endConn(c *clientConn, op string, err error) {
	select {
	case <-s.stopping:
		if isDeadline(err) {
			return // kept for the handoff
		}
	default:
	}
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	c.nc.Close()
	s.log.Debug("connection closed", "id", c.id, "op", op, "err", err, "count", c.count)
	if s.env.onClose != nil {
		s.env.onClose(c.id)
	}
}

// shutdown stops every handler, then hands the connections over (handoff
// mode) or closes them.
func (s *server) shutdown(ctx context.Context) error {
	start := time.Now()
	s.notify(func(n *activation.Notifier) error { return n.Stopping() })
	s.mu.Lock()
	for _, c := range s.conns {
		c.nc.SetDeadline(start)
	}
	s.mu.Unlock()
	s.wg.Wait()

	s.mu.Lock()
	conns := make([]*clientConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	nextID := s.nextID
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *clientConn) int { return compareUint(a.id, b.id) })
	defer func() {
		for _, c := range conns {
			c.nc.Close()
		}
	}()

	if s.cfg.Mode != ModeHandoff {
		s.log.Info("stopping, dropping connections", "conns", len(conns))
		return nil
	}
	if s.env.notifier == nil {
		s.log.Warn("no NOTIFY_SOCKET: cannot hand over, dropping connections", "conns", len(conns))
		return nil
	}
	// Stopped during start-up: what this instance restored is still in
	// the store. Take it out first; everything goes back in below, with
	// the new state.
	s.removeRestored()
	h := Handoff{NextID: nextID}
	for _, c := range conns {
		ino, err := storeConn(s.env.notifier, c)
		if err != nil {
			s.log.Warn("cannot store connection, dropping it", "id", c.id, "err", err)
			continue
		}
		s.log.Info("fdstore", "op", "store", "name", ConnFDNamePrefix+strconv.FormatUint(c.id, 10), "inode", ino)
		h.Conns = append(h.Conns, ConnState{ID: c.id, Count: c.count, Pending: c.pending, Unsent: c.unsent})
	}
	if ino, err := storeState(s.env.notifier, h); err != nil {
		s.log.Warn("cannot store handoff state", "err", err)
	} else {
		s.log.Info("fdstore", "op", "store", "name", StateFDName, "inode", ino)
	}
	// Wait until the manager has processed the FDSTORE messages: after we
	// exit it may handle our death before reading them.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), barrierTimeout)
	defer cancel()
	if err := s.env.notifier.Barrier(bctx); err != nil {
		s.log.Warn("barrier after storing fds failed", "err", err)
	}
	s.log.Info("handed over connections", "conns", len(h.Conns), "took", time.Since(start).String())
	return nil
}

// removeRestored takes the entries this instance restored out of the fd
// store (FDSTOREREMOVE), now that it serves them itself.
func (s *server) removeRestored() {
	for _, name := range s.restoredNames {
		s.notify(func(n *activation.Notifier) error { return n.RemoveFDs(name) })
		s.log.Info("fdstore", "op", "remove", "name", name)
	}
	s.restoredNames = nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// storeConn sends c's socket to the fd store as conn-<id> and returns its
// inode.
func storeConn(n *activation.Notifier, c *clientConn) (uint64, error) {
	name := ConnFDNamePrefix + strconv.FormatUint(c.id, 10)
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("store %s: %T has no file descriptor", name, c.nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", name, err)
	}
	var sendErr error
	var ino uint64
	if err := raw.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil {
			ino = st.Ino
		}
		sendErr = n.StoreFDs(name, int(fd))
	}); err != nil {
		return 0, fmt.Errorf("store %s: %w", name, err)
	}
	return ino, sendErr
}

// inodeOf is the inode of an open file, 0 when it cannot be read.
func inodeOf(f *os.File) uint64 {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	return st.Ino
}

// ExtraFDNamePrefix names the memfds SIGUSR1 stores (environment.extra).
const ExtraFDNamePrefix = "extra-"

// extraLoop stores and removes extra-N entries on SIGUSR1 and SIGUSR2,
// logging each with its inode, until ctx ends.
func (s *server) extraLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-s.env.extra:
			s.extraMu.Lock()
			if sig == syscall.SIGUSR1 {
				s.extraN++
				name := fmt.Sprintf("%s%d-%d", ExtraFDNamePrefix, s.env.pid, s.extraN)
				f, err := writeMemfd("fdtop-extra", []byte(name))
				if err != nil {
					s.log.Warn("cannot make an extra memfd", "err", err)
				} else {
					ino := inodeOf(f)
					if err := s.env.notifier.StoreFDs(name, int(f.Fd())); err != nil {
						s.log.Warn("cannot store an extra memfd", "err", err)
					} else {
						s.extras = append(s.extras, name)
						s.log.Info("fdstore", "op", "store", "name", name, "inode", ino)
					}
					f.Close()
				}
			} else {
				for _, name := range s.extras {
					s.notify(func(n *activation.Notifier) error { return n.RemoveFDs(name) })
					s.log.Info("fdstore", "op", "remove", "name", name)
				}
				s.extras = nil
			}
			s.log.Info("extras", "signal", sig.String(), "stored", len(s.extras))
			s.extraMu.Unlock()
		}
	}
}

// storeState sends h, in a memfd, to the fd store as StateFDName.
func storeState(n *activation.Notifier, h Handoff) (uint64, error) {
	data, err := h.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("encode handoff state: %w", err)
	}
	f, err := writeMemfd(StateMemfdName, data)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return inodeOf(f), n.StoreFDs(StateFDName, int(f.Fd()))
}

// passedConn is a restored connection that also keeps the descriptor it was
// passed on open, closing both together.
type passedConn struct {
	net.Conn
	passed *os.File
}

// Close closes Go's connection and the passed descriptor.
func (c *passedConn) Close() error {
	err := c.Conn.Close()
	c.passed.Close()
	return err
}

// SyscallConn gives the connection's descriptor for storing it again.
func (c *passedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor", c.Conn)
	}
	return sc.SyscallConn()
}
