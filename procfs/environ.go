package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// HandoffEnv is the socket-activation environment of a process: the
// LISTEN_* variables systemd sets (sd_listen_fds(3)), and nothing else from
// the environment, which may hold secrets.
type HandoffEnv struct {
	// ListenPID is LISTEN_PID: the process the descriptors were meant for.
	ListenPID int
	// ListenFDs is LISTEN_FDS: how many descriptors were passed, from fd 3.
	ListenFDs int
	// Names are the colon-separated LISTEN_FDNAMES.
	Names []string
	// PidFDID is LISTEN_PIDFDID (newer systemd): the pidfd inode id of the
	// intended process; 0 if unset.
	PidFDID uint64
	// Passed decodes the above: fd N was passed under name X.
	Passed []PassedFD
	// ForThisProcess reports that LISTEN_PID names the process itself rather
	// than an ancestor whose environment it inherited.
	ForThisProcess bool
}

// PassedFD is one descriptor passed by the service manager.
type PassedFD struct {
	// FD is the descriptor number in the receiving process (3, 4, ...).
	FD int
	// Name is its LISTEN_FDNAMES entry; empty if no names were given.
	Name string
}

// listenFDsStart is SD_LISTEN_FDS_START.
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS so a corrupt value cannot allocate much.
const maxListenFDs = 1 << 16

// parseHandoffEnv extracts the LISTEN_* variables from a NUL-separated
// environ block. It reads no other variable and copies nothing else out of b.
// It returns nil if no LISTEN_* variable is present.
func parseHandoffEnv(b []byte, pid int) *HandoffEnv {
	var h HandoffEnv
	found := false
	var names string
	for len(b) > 0 {
		entry := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			entry, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !bytes.HasPrefix(entry, []byte("LISTEN_")) {
			continue
		}
		key, val, ok := bytes.Cut(entry, []byte("="))
		if !ok {
			continue
		}
		switch string(key) {
		case "LISTEN_PID":
			if v, err := strconv.Atoi(string(val)); err == nil {
				h.ListenPID = v
				found = true
			}
		case "LISTEN_FDS":
			if v, err := strconv.Atoi(string(val)); err == nil && v >= 0 && v <= maxListenFDs {
				h.ListenFDs = v
				found = true
			}
		case "LISTEN_FDNAMES":
			names = string(val)
			found = true
		case "LISTEN_PIDFDID":
			if v, err := strconv.ParseUint(string(val), 10, 64); err == nil {
				h.PidFDID = v
				found = true
			}
		}
	}
	if !found {
		return nil
	}
	if names != "" {
		h.Names = strings.Split(names, ":")
	}
	h.ForThisProcess = pid != 0 && h.ListenPID == pid
	h.Passed = make([]PassedFD, h.ListenFDs)
	for i := range h.Passed {
		h.Passed[i].FD = listenFDsStart + i
		if i < len(h.Names) {
			h.Passed[i].Name = h.Names[i]
		}
	}
	return &h
}

// Handoff reads the LISTEN_* variables of pid. It returns nil, nil if the
// process has none. Only those variables are kept: the read buffer is
// cleared before returning.
func (p FS) Handoff(pid int) (*HandoffEnv, error) {
	path := p.path(strconv.Itoa(pid), "environ")
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := readSmall(path, (*bp)[:0])
	if cap(b) > cap(*bp) {
		*bp = b[:0]
	}
	defer clear(b[:cap(b)])
	if err != nil {
		return nil, fmt.Errorf("read environ of pid %d: %w", pid, err)
	}
	return parseHandoffEnv(b, pid), nil
}
