package activation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// EnvNotifySocket is the variable naming the manager's notification socket.
const EnvNotifySocket = "NOTIFY_SOCKET"

// MaxFDNameLen is the longest FDNAME= systemd accepts (FDNAME_MAX).
const MaxFDNameLen = 255

// maxFDsPerMessage is the kernel's limit on descriptors in one SCM_RIGHTS
// message (SCM_MAX_FD).
const maxFDsPerMessage = 253

// ErrNoNotifySocket is returned when NOTIFY_SOCKET is unset or empty: the
// process is not supervised by a manager that listens for notifications.
// Callers that also run outside systemd can ignore it with errors.Is.
var ErrNoNotifySocket = errors.New("activation: NOTIFY_SOCKET is not set")

// Notifier sends sd_notify(3) messages to one notification socket.
// The zero value is not usable; use NewNotifier or NotifierFromEnv.
type Notifier struct {
	addr string
}

// NewNotifier returns a Notifier for the socket address addr: an absolute
// path, or "@name" for an abstract socket.
func NewNotifier(addr string) (*Notifier, error) {
	if addr == "" {
		return nil, ErrNoNotifySocket
	}
	if addr[0] != '/' && addr[0] != '@' {
		return nil, fmt.Errorf("activation: notify socket %q: not an absolute path or @abstract name", addr)
	}
	if len(addr) < 2 {
		return nil, fmt.Errorf("activation: notify socket %q: empty name", addr)
	}
	if len(addr) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("activation: notify socket %q: address too long", addr)
	}
	return &Notifier{addr: addr}, nil
}

// NotifierFromEnv returns a Notifier for $NOTIFY_SOCKET, or ErrNoNotifySocket
// when it is unset.
func NotifierFromEnv() (*Notifier, error) {
	return NewNotifier(os.Getenv(EnvNotifySocket))
}

// Addr returns the socket address the Notifier sends to.
func (n *Notifier) Addr() string { return n.addr }

// Notify sends state (newline-separated VAR=value assignments) with fds
// attached as SCM_RIGHTS, like sd_pid_notify_with_fds(3). The descriptors
// stay open in this process; the receiver gets duplicates.
func (n *Notifier) Notify(state string, fds ...int) error {
	if state == "" {
		return errors.New("activation: notify: empty state")
	}
	if len(fds) > maxFDsPerMessage {
		return fmt.Errorf("activation: notify %q: %d fds, at most %d per message", firstLine(state), len(fds), maxFDsPerMessage)
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("activation: notify: create socket: %w", err)
	}
	defer unix.Close(sock)
	// A stuck manager must not block us forever (the receive queue of a
	// datagram socket can fill up).
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("activation: notify: set send timeout: %w", err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	to := &unix.SockaddrUnix{Name: n.addr}
	for {
		err = unix.Sendmsg(sock, []byte(state), oob, to, unix.MSG_NOSIGNAL)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("activation: notify %q to %s: %w", firstLine(state), n.addr, err)
	}
	return nil
}

// Ready sends READY=1.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sends STATUS=text; text must be a single line.
func (n *Notifier) Status(text string) error {
	if strings.ContainsAny(text, "\n\x00") {
		return fmt.Errorf("activation: status %q: contains a newline or NUL", text)
	}
	return n.Notify("STATUS=" + text)
}

// StoreFDs sends FDSTORE=1 with FDNAME=name and fds attached: the manager
// keeps duplicates in the service's file descriptor store (which needs
// FileDescriptorStoreMax= > 0) and passes them to the next instance with
// that name in LISTEN_FDNAMES. name must pass ValidateFDName.
func (n *Notifier) StoreFDs(name string, fds ...int) error {
	if err := ValidateFDName(name); err != nil {
		return err
	}
	if len(fds) == 0 {
		return fmt.Errorf("activation: store fds %q: no file descriptors", name)
	}
	return n.Notify("FDSTORE=1\nFDNAME="+name, fds...)
}

// RemoveFDs sends FDSTOREREMOVE=1 with FDNAME=name: the manager closes and
// forgets every store entry of that name.
func (n *Notifier) RemoveFDs(name string) error {
	if err := ValidateFDName(name); err != nil {
		return err
	}
	return n.Notify("FDSTOREREMOVE=1\nFDNAME=" + name)
}

// Barrier sends BARRIER=1 with the write end of a fresh pipe, closes it, and
// waits until the manager closes its copy (POLLHUP on the read end), like
// sd_notify_barrier(3): once it returns, the manager has processed every
// message sent before it. It fails when ctx ends first.
func (n *Notifier) Barrier(ctx context.Context) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("activation: barrier: create pipe: %w", err)
	}
	r, w := p[0], p[1]
	defer unix.Close(r)
	err := n.Notify("BARRIER=1", w)
	unix.Close(w)
	if err != nil {
		return err
	}
	return waitHangup(ctx, r)
}

// waitHangup polls fd until POLLHUP, checking ctx between short polls.
func waitHangup(ctx context.Context, fd int) error {
	const slice = 20 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("activation: barrier: manager did not answer: %w", err)
		}
		timeout := slice
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < timeout {
				timeout = max(left, time.Millisecond)
			}
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: 0}}
		nready, err := unix.Poll(pfd, int(timeout/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("activation: barrier: poll pipe: %w", err)
		}
		if nready > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			return nil
		}
	}
}

// ValidateFDName checks name as systemd's fdname_is_valid() does, and also
// rejects the empty name: at most MaxFDNameLen printable ASCII characters
// (0x20-0x7e), none of them ':'.
func ValidateFDName(name string) error {
	if name == "" {
		return errors.New("activation: fd name is empty")
	}
	if len(name) > MaxFDNameLen {
		return fmt.Errorf("activation: fd name %.20q...: %d characters, at most %d", name, len(name), MaxFDNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < ' ' || c >= 0x7f {
			return fmt.Errorf("activation: fd name %q: control or non-ASCII byte at %d", name, i)
		}
		if c == ':' {
			return fmt.Errorf("activation: fd name %q: contains ':'", name)
		}
	}
	return nil
}

// Notify sends state with fds attached to $NOTIFY_SOCKET; it returns
// ErrNoNotifySocket when that is unset.
func Notify(state string, fds ...int) error {
	n, err := NotifierFromEnv()
	if err != nil {
		return err
	}
	return n.Notify(state, fds...)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
