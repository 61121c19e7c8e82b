package unitlog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// FollowInterval is how often followed files are checked for new lines.
const FollowInterval = 200 * time.Millisecond

// Follow sends the units' last n log lines, then new ones as they come,
// until ctx ends; the channel is closed then. With a journal it runs one
// `journalctl -u UNIT… -o json -n N -f --no-pager` (history and follow in
// one process: no gap between them); without one it follows the manager's
// log (its lines about the units) and the units' output files (named in
// unitFiles: fragments and drop-ins). ok is false when no source was found.
// When journalctl fails (a user who may not read the system journal), the
// last line sent says so, at priority 3 from source "journalctl": the log
// is unknown, not empty.
func (r Reader) Follow(ctx context.Context, units, unitFiles []string, n int) (<-chan Line, bool, error) {
	out := make(chan Line, 256)
	if r.HasJournal() {
		args := []string{}
		sel := "-u"
		if r.User {
			sel = "--user-unit"
		}
		for _, u := range units {
			args = append(args, sel, u)
		}
		args = append(args, "-o", "json", "-n", strconv.Itoa(n), "-f", "--no-pager", "-q")
		cmd := exec.CommandContext(ctx, r.journalctl(), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, false, fmt.Errorf("journalctl: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return nil, false, fmt.Errorf("start journalctl: %w", err)
		}
		go func() {
			defer close(out)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			for sc.Scan() {
				if l, ok := ParseJSON(sc.Bytes()); ok && !send(ctx, out, l) {
					break
				}
			}
			if err := cmd.Wait(); err != nil && ctx.Err() == nil {
				err = journalError(sel, strings.Join(units, " "+sel+" "), stderr.Bytes(), err)
				send(ctx, out, Line{Time: time.Now(), Priority: 3, Source: "journalctl", Message: "the log is unknown: " + err.Error()})
			}
		}()
		return out, true, nil
	}
	var files []*followed
	if path := r.managerLog(); path != "" {
		var prefixes []string
		for _, u := range units {
			prefixes = append(prefixes, u+": ")
		}
		files = append(files, &followed{path: path, source: "manager log", keep: func(l string) bool {
			for _, p := range prefixes {
				if strings.HasPrefix(l, p) {
					return true
				}
			}
			return false
		}})
	}
	for _, f := range OutputFiles(unitFiles) {
		files = append(files, &followed{path: f, source: f})
	}
	if len(files) == 0 {
		close(out)
		return out, false, nil
	}
	go func() {
		defer close(out)
		for _, f := range files {
			for _, l := range f.start(n) {
				if !send(ctx, out, l) {
					return
				}
			}
		}
		t := time.NewTicker(FollowInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, f := range files {
				for _, l := range f.more() {
					if !send(ctx, out, l) {
						return
					}
				}
			}
		}
	}()
	return out, true, nil
}

func send(ctx context.Context, out chan<- Line, l Line) bool {
	select {
	case out <- l:
		return true
	case <-ctx.Done():
		return false
	}
}

// followed is one file being followed: where its last read ended and the
// start of a line not yet complete.
type followed struct {
	path, source string
	keep         func(string) bool // nil keeps every line
	offset       int64
	partial      string
}

func (f *followed) line(s string) (Line, bool) {
	if f.keep != nil && !f.keep(s) {
		return Line{}, false
	}
	return Line{Priority: -1, Source: f.source, Message: s}, true
}

// start returns the last n (kept) lines and remembers where the file ends.
func (f *followed) start(n int) []Line {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil
	}
	f.offset = fi.Size()
	want := n
	if f.keep != nil {
		want = n * 50 // most manager lines are about other units
	}
	lines, err := tailFile(f.path, want)
	if err != nil {
		return nil
	}
	var out []Line
	for _, s := range lines {
		if l, ok := f.line(s); ok {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// more returns the complete lines written since the last call (from the
// start again if the file was truncated).
func (f *followed) more() []Line {
	file, err := os.Open(f.path)
	if err != nil {
		return nil
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || fi.Size() == f.offset {
		return nil
	}
	if fi.Size() < f.offset {
		f.offset, f.partial = 0, ""
	}
	const maxRead = 1 << 20
	if _, err := file.Seek(f.offset, io.SeekStart); err != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(file, maxRead))
	if err != nil {
		return nil
	}
	f.offset += int64(len(data))
	text := f.partial + string(data)
	parts := strings.Split(text, "\n")
	f.partial = parts[len(parts)-1]
	var out []Line
	for _, s := range parts[:len(parts)-1] {
		if l, ok := f.line(s); ok {
			out = append(out, l)
		}
	}
	return out
}
