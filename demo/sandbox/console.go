package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// console is a pseudo-terminal bind-mounted over /dev/console in the
// sandbox's mount namespace. A user manager writes its own log (a socket
// that failed to bind, an FDSTORE=1 it refused) to /dev/console, not to its
// stderr, and the sandbox has no journal: the console's output is copied to
// the manager's log (manager.log, or Options.Log) so it can be read there.
type console struct {
	master, slave *os.File
	copied        chan struct{}
}

// openConsole allocates the pseudo-terminal and starts copying what is
// written to it into w, carriage returns removed.
func openConsole(w io.Writer) (*console, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty number: %w", err)
	}
	// Held open by us as well: the master reads EIO only once every
	// holder of the terminal has closed it, so not between two opens of
	// /dev/console by the manager.
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open pty %d: %w", n, err)
	}
	c := &console{master: master, slave: slave, copied: make(chan struct{})}
	go func() {
		defer close(c.copied)
		buf := make([]byte, 4096)
		for {
			k, err := master.Read(buf)
			if k > 0 {
				_, _ = w.Write(bytes.ReplaceAll(buf[:k], []byte("\r"), nil))
			}
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

// path is the terminal to bind-mount over /dev/console.
func (c *console) path() string { return c.slave.Name() }

// close ends the copy once the manager, the last other holder, is gone.
func (c *console) close() {
	c.slave.Close()
	select {
	case <-c.copied:
	case <-time.After(2 * time.Second): // a service still holds the terminal
	}
	c.master.Close()
}
