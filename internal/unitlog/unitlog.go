// Package unitlog reads a unit's last log lines: from the journal where
// there is one, else from files (the manager's own log when its stderr is a
// file, and a service's StandardOutput=/StandardError= file). The demo's
// sandbox has no journal; its services write to files.
package unitlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Line is one log line.
type Line struct {
	// Time is when it was logged; zero when the source has no time.
	Time time.Time
	// Priority is the syslog priority (0 emerg … 7 debug), -1 when unknown.
	Priority int
	// Source is where it was read: "journal", "manager log" or a file path.
	Source string
	// Message is the text, unsanitized.
	Message string
}

// JournalSocket is where journald listens; its presence means there is a
// journal to ask.
const JournalSocket = "/run/systemd/journal/socket"

// Reader finds and reads units' logs.
type Reader struct {
	// User asks the user manager's units (journalctl --user-unit).
	User bool
	// ManagerPID is the manager's process; its stderr, when a file, is
	// the manager's log where there is no journal.
	ManagerPID int
	// Proc is the procfs root, "/proc" when empty.
	Proc string
	// NoJournal skips the journal even if there is one.
	NoJournal bool
	// Journalctl is the journalctl program, "journalctl" when empty.
	Journalctl string
	// Socket is journald's socket, JournalSocket when empty.
	Socket string

	// poll makes Follow poll files even where inotify works (tests of
	// the fallback).
	poll bool
	// stat, when set, replaces stat(2) of followed files (tests count
	// them).
	stat func(path string, st *unix.Stat_t) error
}

func (r Reader) journalctl() string {
	if r.Journalctl != "" {
		return r.Journalctl
	}
	return "journalctl"
}

// HasJournal reports whether the journal is there to be asked.
func (r Reader) HasJournal() bool {
	if r.NoJournal {
		return false
	}
	socket := r.Socket
	if socket == "" {
		socket = JournalSocket
	}
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	_, err := exec.LookPath(r.journalctl())
	return err == nil
}

// Last returns up to n last lines about unit: the journal's (the manager's
// messages about it and its output), or else the manager log's lines about
// it followed by the unit's output files (unitFiles are its FragmentPath
// and drop-ins, where StandardOutput=/StandardError= are looked up). ok is
// false when no source was found: the log is unknown, not empty.
func (r Reader) Last(ctx context.Context, unit string, unitFiles []string, n int) (lines []Line, ok bool, err error) {
	if r.HasJournal() {
		lines, err := r.journal(ctx, unit, n)
		return lines, err == nil, err
	}
	if path := r.managerLog(); path != "" {
		ok = true
		ml, err := tailFile(path, n*50)
		if err != nil {
			return nil, false, err
		}
		prefix := unit + ": "
		var mine []Line
		for _, l := range ml {
			if strings.HasPrefix(l, prefix) {
				mine = append(mine, Line{Priority: -1, Source: "manager log", Message: l})
			}
		}
		lines = append(lines, lastN(mine, n)...)
	}
	for _, f := range OutputFiles(unitFiles) {
		fl, err := tailFile(f, n)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		ok = true
		for _, l := range fl {
			lines = append(lines, Line{Priority: -1, Source: f, Message: l})
		}
	}
	return lines, ok, nil
}

func lastN(ls []Line, n int) []Line {
	if len(ls) > n {
		return ls[len(ls)-n:]
	}
	return ls
}

// managerLog is the manager's stderr when it is a regular file ("" else).
func (r Reader) managerLog() string {
	if r.ManagerPID <= 0 {
		return ""
	}
	proc := r.Proc
	if proc == "" {
		proc = "/proc"
	}
	target, err := os.Readlink(filepath.Join(proc, strconv.Itoa(r.ManagerPID), "fd", "2"))
	if err != nil || !filepath.IsAbs(target) {
		return ""
	}
	if fi, err := os.Stat(target); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return target
}

// OutputFiles returns the files named by StandardOutput= and
// StandardError= (file:, append:, truncate:) in the given unit files, the
// last setting winning, without duplicates.
func OutputFiles(unitFiles []string) []string {
	var stdout, stderr string
	for _, uf := range unitFiles {
		data, err := os.ReadFile(uf)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok {
				continue
			}
			path := ""
			for _, p := range []string{"file:", "append:", "truncate:"} {
				if strings.HasPrefix(val, p) {
					path = strings.TrimPrefix(val, p)
				}
			}
			switch strings.TrimSpace(key) {
			case "StandardOutput":
				stdout = path
			case "StandardError":
				stderr = path
			}
		}
	}
	var out []string
	for _, p := range []string{stdout, stderr} {
		if p != "" && (len(out) == 0 || out[0] != p) {
			out = append(out, p)
		}
	}
	return out
}

// tailFile returns the last n lines of a file (reading at most its last
// 256 KiB).
func tailFile(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	lines, partial, err := tailOf(f, fi.Size(), math.MaxInt)
	if err != nil {
		return nil, err
	}
	if partial != "" {
		lines = append(lines, partial) // the last words of a process that died mid-line
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// journal runs journalctl -o json for the unit's last n lines.
func (r Reader) journal(ctx context.Context, unit string, n int) ([]Line, error) {
	sel := "-u"
	if r.User {
		sel = "--user-unit"
	}
	cmd := exec.CommandContext(ctx, r.journalctl(), sel, unit, "-n", strconv.Itoa(n), "-o", "json", "--no-pager", "-q")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, journalError(sel, unit, stderr.Bytes(), err)
	}
	var lines []Line
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if l, ok := ParseJSON(sc.Bytes()); ok {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// journalError says why journalctl failed: its first line on stderr
// ("No journal files were opened due to insufficient permissions." for a
// user outside the systemd-journal group) and its exit status.
func journalError(sel, unit string, stderr []byte, err error) error {
	msg, _, _ := strings.Cut(strings.TrimSpace(string(stderr)), "\n")
	if msg == "" {
		return fmt.Errorf("journalctl %s %s: %w", sel, unit, err)
	}
	return fmt.Errorf("journalctl %s %s: %s (%w)", sel, unit, msg, err)
}

// ParseJSON decodes one line of journalctl -o json. MESSAGE may be a
// string or, when not valid UTF-8, an array of bytes.
func ParseJSON(b []byte) (Line, bool) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Line{}, false
	}
	l := Line{Priority: -1, Source: "journal"}
	l.Message = field(raw["MESSAGE"])
	if p, err := strconv.Atoi(field(raw["PRIORITY"])); err == nil {
		l.Priority = p
	}
	if us, err := strconv.ParseInt(field(raw["__REALTIME_TIMESTAMP"]), 10, 64); err == nil {
		l.Time = time.UnixMicro(us)
	}
	return l, true
}

// field decodes a journal JSON field: a string, an array of bytes, or
// null (too large to show).
func field(m json.RawMessage) string {
	if len(m) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	var bs []byte
	var ints []int
	if json.Unmarshal(m, &ints) == nil {
		for _, i := range ints {
			bs = append(bs, byte(i))
		}
		return string(bs)
	}
	return ""
}
