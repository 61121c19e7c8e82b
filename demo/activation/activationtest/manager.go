// Package activationtest provides a fake service manager for tests: it
// listens on a notification socket like systemd's, records READY/STATUS
// messages, answers BARRIER=1, and keeps a file descriptor store
// (FDSTORE=1, FDNAME=, FDSTOREREMOVE=1) whose entries it can pass on.
package activationtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// StoredName is the name systemd gives fd store entries sent without FDNAME=.
const StoredName = "stored"

var abstractSeq atomic.Uint64

// Message is one notification received by the Manager.
type Message struct {
	// State is the message text (newline-separated assignments).
	State string
	// FDs is how many file descriptors came with it.
	FDs int
}

// Field returns the value of assignment key in the message, and whether it
// was present.
func (m Message) Field(key string) (string, bool) {
	for line := range strings.SplitSeq(m.State, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// StoreEntry is one entry in the fake file descriptor store.
type StoreEntry struct {
	// Name is the entry's FDNAME (StoredName when none was given).
	Name string
	// FD is the Manager's own copy of the descriptor.
	FD int
}

// Manager is a fake service manager listening on a notification socket.
type Manager struct {
	// Addr is the socket address, suitable for NOTIFY_SOCKET.
	Addr string

	conn     *net.UnixConn
	messages chan Message
	done     chan struct{}

	mu          sync.Mutex
	store       []StoreEntry
	storeMax    int
	holdBarrier bool
	held        []int
	err         error
}

// Options tune a Manager's behaviour.
type Options struct {
	// Abstract binds an abstract socket ("@...") instead of a path.
	Abstract bool
	// StoreMax is FileDescriptorStoreMax=; 0 means unlimited.
	StoreMax int
	// HoldBarrier keeps the fds of BARRIER=1 messages open instead of
	// closing them, so Barrier calls never complete.
	HoldBarrier bool
}

// NewManager starts a Manager whose path socket lives in dir (ignored for
// abstract sockets). Stop it with Close.
func NewManager(dir string, opts Options) (*Manager, error) {
	addr := dir + "/notify"
	if opts.Abstract {
		addr = fmt.Sprintf("@fdtop-activationtest-%d-%d", os.Getpid(), abstractSeq.Add(1))
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("activationtest: listen on %s: %w", addr, err)
	}
	if err := conn.SetReadBuffer(8 << 20); err != nil {
		conn.Close()
		return nil, fmt.Errorf("activationtest: set read buffer of %s: %w", addr, err)
	}
	m := &Manager{
		Addr:        addr,
		conn:        conn,
		messages:    make(chan Message, 1<<16),
		done:        make(chan struct{}),
		storeMax:    opts.StoreMax,
		holdBarrier: opts.HoldBarrier,
	}
	go m.loop()
	return m, nil
}

func (m *Manager) loop() {
	defer close(m.done)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(253*4))
	for {
		n, oobn, flags, _, err := m.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.setErr(fmt.Errorf("activationtest: receive: %w", err))
			}
			return
		}
		fds, err := parseRights(oob[:oobn])
		if err != nil {
			m.setErr(err)
			continue
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			closeAll(fds)
			m.setErr(fmt.Errorf("activationtest: truncated message (flags %#x)", flags))
			continue
		}
		msg := Message{State: string(buf[:n]), FDs: len(fds)}
		m.handle(msg, fds)
		select {
		case m.messages <- msg:
		default: // nobody is reading: drop it, the store is what matters
		}
	}
}

func parseRights(oob []byte) ([]int, error) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("activationtest: parse control messages: %w", err)
	}
	var fds []int
	for i := range cmsgs {
		if cmsgs[i].Header.Level != unix.SOL_SOCKET || cmsgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&cmsgs[i])
		if err != nil {
			return nil, fmt.Errorf("activationtest: parse SCM_RIGHTS: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// handle applies a message to the store, taking ownership of fds.
func (m *Manager) handle(msg Message, fds []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := msg.Field("BARRIER"); ok {
		if m.holdBarrier {
			m.held = append(m.held, fds...)
		} else {
			closeAll(fds)
		}
		return
	}
	name, hasName := msg.Field("FDNAME")
	if v, _ := msg.Field("FDSTOREREMOVE"); v == "1" && hasName {
		m.store = slices.DeleteFunc(m.store, func(e StoreEntry) bool {
			if e.Name == name {
				unix.Close(e.FD)
				return true
			}
			return false
		})
	}
	if v, _ := msg.Field("FDSTORE"); v == "1" {
		if !hasName {
			name = StoredName
		}
		for _, fd := range fds {
			if m.storeMax > 0 && len(m.store) >= m.storeMax {
				unix.Close(fd)
				continue
			}
			m.store = append(m.store, StoreEntry{Name: name, FD: fd})
		}
		return
	}
	closeAll(fds)
}

func (m *Manager) setErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

// Err returns the first receive error, if any.
func (m *Manager) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Next returns the next message received, waiting until ctx ends.
func (m *Manager) Next(ctx context.Context) (Message, error) {
	select {
	case msg := <-m.messages:
		return msg, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("activationtest: wait for a message on %s: %w", m.Addr, ctx.Err())
	}
}

// WaitFor returns the first message, skipping others, that has the
// assignment key=value.
func (m *Manager) WaitFor(ctx context.Context, key, value string) (Message, error) {
	for {
		msg, err := m.Next(ctx)
		if err != nil {
			return Message{}, fmt.Errorf("activationtest: wait for %s=%s: %w", key, value, err)
		}
		if v, ok := msg.Field(key); ok && v == value {
			return msg, nil
		}
	}
}

// Store returns the names of the store's entries in order.
func (m *Manager) Store() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, len(m.store))
	for i, e := range m.store {
		names[i] = e.Name
	}
	return names
}

// PassStore returns duplicates of the store's entries, in order, as a
// manager passes them to the service's next instance; the store keeps its
// own copies. The caller owns the returned descriptors.
func (m *Manager) PassStore() ([]StoreEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]StoreEntry, 0, len(m.store))
	for _, e := range m.store {
		fd, err := unix.FcntlInt(uintptr(e.FD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, o := range out {
				unix.Close(o.FD)
			}
			return nil, fmt.Errorf("activationtest: duplicate store entry %q (fd %d): %w", e.Name, e.FD, err)
		}
		out = append(out, StoreEntry{Name: e.Name, FD: fd})
	}
	return out, nil
}

// Close stops the Manager and closes every descriptor it holds.
func (m *Manager) Close() error {
	err := m.conn.Close()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.store {
		unix.Close(e.FD)
	}
	m.store = nil
	closeAll(m.held)
	m.held = nil
	return err
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
