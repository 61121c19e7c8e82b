package activation

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ListenFDsStart is the first file descriptor number a manager passes
// (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// UnknownName is the name given to passed file descriptors when the manager
// did not set LISTEN_FDNAMES, as libsystemd does.
const UnknownName = "unknown"

// Environment variable names of the socket activation protocol.
const (
	EnvListenPID     = "LISTEN_PID"
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvListenPIDFDID = "LISTEN_PIDFDID"
)

// MaxListenFDs bounds the LISTEN_FDS count this package accepts; larger
// values are treated as malformed (no real fd table is that large).
const MaxListenFDs = 1 << 16

// ErrOtherProcess is returned (with no file descriptors) when LISTEN_PID names
// another process: the variables were inherited and are not meant for us.
var ErrOtherProcess = errors.New("activation: LISTEN_PID is set for another process")

// Passed is one file descriptor passed by the manager.
type Passed struct {
	// FD is the descriptor number in this process (3, 4, ...).
	FD int
	// Name is its entry in LISTEN_FDNAMES: the socket unit's
	// FileDescriptorName= (default: the socket unit's name), "connection"
	// for Accept=yes sockets, or the FDNAME= of a file descriptor store
	// entry ("stored" when it had none); UnknownName when the manager set
	// no names.
	Name string
}

// File wraps the descriptor in an *os.File that owns it.
func (p Passed) File() *os.File {
	return os.NewFile(uintptr(p.FD), p.Name)
}

// IsListener reports whether the descriptor is a socket in the listening
// state (SO_ACCEPTCONN), as sd_is_socket(3) checks.
func (p Passed) IsListener() bool {
	v, err := unix.GetsockoptInt(p.FD, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v == 1
}

// ListenFDsWithNames returns the file descriptors passed to this process by
// the manager, like sd_listen_fds_with_names(3). It sets FD_CLOEXEC on each
// of them. When unsetEnv is true it removes LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PIDFDID from the environment (whatever the
// outcome), so that child processes do not inherit them.
//
// It returns no descriptors and no error when LISTEN_PID or LISTEN_FDS is
// unset (not socket-activated), ErrOtherProcess when LISTEN_PID is another
// process's, and a descriptive error for malformed variables.
func ListenFDsWithNames(unsetEnv bool) ([]Passed, error) {
	if unsetEnv {
		defer func() {
			for _, k := range []string{EnvListenPID, EnvListenFDs, EnvListenFDNames, EnvListenPIDFDID} {
				os.Unsetenv(k)
			}
		}()
	}
	passed, err := parseListenEnv(os.LookupEnv, os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, p := range passed {
		if _, err := unix.FcntlInt(uintptr(p.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return nil, fmt.Errorf("activation: set FD_CLOEXEC on passed fd %d (%q): %w", p.FD, p.Name, err)
		}
	}
	return passed, nil
}

// parseListenEnv interprets the socket activation variables read through
// lookup for the process pid. It does not touch any file descriptor.
func parseListenEnv(lookup func(string) (string, bool), pid int) ([]Passed, error) {
	pidStr, ok := lookup(EnvListenPID)
	if !ok {
		return nil, nil
	}
	listenPID, err := strconv.Atoi(strings.TrimSpace(pidStr))
	if err != nil || listenPID <= 0 {
		return nil, fmt.Errorf("activation: parse %s=%q: not a process id", EnvListenPID, pidStr)
	}
	if listenPID != pid {
		return nil, fmt.Errorf("%w (%s=%d, this process is %d)", ErrOtherProcess, EnvListenPID, listenPID, pid)
	}
	fdsStr, ok := lookup(EnvListenFDs)
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(fdsStr))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("activation: parse %s=%q: not a non-negative count", EnvListenFDs, fdsStr)
	}
	if n > MaxListenFDs {
		return nil, fmt.Errorf("activation: %s=%d: more than %d file descriptors", EnvListenFDs, n, MaxListenFDs)
	}
	if n == 0 {
		return nil, nil
	}
	// An empty LISTEN_FDNAMES is treated like an unset one (libsystemd
	// would report a count mismatch; no manager sends it).
	names := make([]string, n)
	namesStr, ok := lookup(EnvListenFDNames)
	if ok && namesStr != "" {
		split := strings.Split(namesStr, ":")
		if len(split) != n {
			return nil, fmt.Errorf("activation: %s has %d names for %s=%d", EnvListenFDNames, len(split), EnvListenFDs, n)
		}
		copy(names, split)
	} else {
		for i := range names {
			names[i] = UnknownName
		}
	}
	passed := make([]Passed, n)
	for i := range passed {
		passed[i] = Passed{FD: ListenFDsStart + i, Name: names[i]}
	}
	return passed, nil
}
