package unitlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FollowInterval is how often followed files are checked for new lines
// where inotify is not available (elsewhere they are read when inotify
// says they changed).
const FollowInterval = 200 * time.Millisecond

// Follow sends the units' last n log lines, then new ones as they come,
// until ctx ends; the channel is closed then. With a journal it runs one
// `journalctl -u UNIT… -o json -n N -f --no-pager` (history and follow in
// one process: no gap between them); without one it follows the manager's
// log (its lines about the units) and the units' output files (named in
// unitFiles: fragments and drop-ins), read when inotify reports a change
// in their directories (polled every FollowInterval where inotify cannot
// be used). ok is false when no source was found.
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
	stat := r.stat
	if stat == nil {
		stat = statPath
	}
	var files []*followed
	if path := r.managerLog(); path != "" {
		var prefixes []string
		for _, u := range units {
			prefixes = append(prefixes, u+": ")
		}
		files = append(files, &followed{path: path, source: "manager log", stat: stat, keep: func(l string) bool {
			for _, p := range prefixes {
				if strings.HasPrefix(l, p) {
					return true
				}
			}
			return false
		}})
	}
	for _, f := range OutputFiles(unitFiles) {
		files = append(files, &followed{path: f, source: f, stat: stat})
	}
	if len(files) == 0 {
		close(out)
		return out, false, nil
	}
	go func() {
		defer close(out)
		// The watch is set before the history is read, so nothing written
		// in between is missed.
		var w *watcher
		if !r.poll {
			w, _ = watchFiles(files) // nil: no inotify here (or no watch left): poll
		}
		if w != nil {
			defer w.close()
		}
		for _, f := range files {
			for _, l := range f.start(n) {
				if !send(ctx, out, l) {
					return
				}
			}
		}
		if w != nil {
			if w.follow(ctx, out) {
				return
			}
			// The watch broke (a watched directory went away): poll.
			w.close()
			for _, f := range files {
				for _, l := range f.more() {
					if !send(ctx, out, l) {
						return
					}
				}
			}
		}
		poll(ctx, out, files)
	}()
	return out, true, nil
}

// poll checks the files for new lines every FollowInterval until ctx
// ends: the follower where inotify is not available.
func poll(ctx context.Context, out chan<- Line, files []*followed) {
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
}

func send(ctx context.Context, out chan<- Line, l Line) bool {
	select {
	case out <- l:
		return true
	case <-ctx.Done():
		return false
	}
}

// followed is one file being followed: which file (inode) it was, where
// its last read ended and the start of a line not yet complete.
type followed struct {
	path, source string
	keep         func(string) bool // nil keeps every line
	stat         func(path string, st *unix.Stat_t) error
	dev, ino     uint64 // the file read so far; 0 when there was none
	offset       int64
	partial      string
}

// statPath is stat(2) by path.
func statPath(path string, st *unix.Stat_t) error {
	for {
		err := unix.Stat(path, st)
		if err != unix.EINTR {
			return err
		}
	}
}

func (f *followed) line(s string) (Line, bool) {
	if f.keep != nil && !f.keep(s) {
		return Line{}, false
	}
	return Line{Priority: -1, Source: f.source, Message: s}, true
}

// start returns the last n (kept) complete lines and remembers where the
// file ends. The history and that end are taken from one open file, up to
// the size it had then: a line written meanwhile is read once, by the
// next more, never both as history and as new.
func (f *followed) start(n int) []Line {
	fd, err := os.Open(f.path)
	if err != nil {
		return nil
	}
	defer fd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return nil
	}
	want := n
	if f.keep != nil {
		want = n * 50 // most manager lines are about other units
	}
	lines, partial, err := tailOf(fd, st.Size, want)
	if err != nil {
		return nil
	}
	f.dev, f.ino, f.offset, f.partial = uint64(st.Dev), st.Ino, st.Size, partial
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

// tailOf returns the last n complete lines of the first size bytes of f
// (within its last 256 KiB) and the incomplete line after them.
func tailOf(f *os.File, size int64, n int) (lines []string, partial string, err error) {
	const window = 256 << 10
	from := max(0, size-window)
	data := make([]byte, size-from)
	got, err := f.ReadAt(data, from)
	if err != nil && err != io.EOF {
		return nil, "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	data = data[:got]
	if from > 0 {
		i := bytes.IndexByte(data, '\n')
		data = data[i+1:] // a partial first line (all of it when i < 0)
	}
	end := bytes.LastIndexByte(data, '\n')
	partial = string(data[end+1:])
	if end < 0 {
		return nil, partial, nil
	}
	lines = strings.Split(string(data[:end]), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, partial, nil
}

// more returns the complete lines written since the last call: from the
// start again if the file was truncated, from the start of a new file
// that replaced it (rotated, or created since). It costs one stat when
// nothing changed; the file is opened only when its size or inode did.
func (f *followed) more() []Line {
	var st unix.Stat_t
	if err := f.stat(f.path, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Gone: whatever is made there next is a new file, even on
			// the inode number the old one freed.
			f.dev, f.ino, f.offset, f.partial = 0, 0, 0, ""
		}
		return nil
	}
	switch {
	case uint64(st.Dev) != f.dev || st.Ino != f.ino:
		f.dev, f.ino, f.offset, f.partial = uint64(st.Dev), st.Ino, 0, ""
	case st.Size == f.offset:
		return nil
	case st.Size < f.offset:
		f.offset, f.partial = 0, ""
	}
	return f.read(f.path)
}

// drain returns the rest of the file followed so far, now at path (it
// was renamed there), when it is still that file.
func (f *followed) drain(path string) []Line {
	var st unix.Stat_t
	if err := f.stat(path, &st); err != nil || uint64(st.Dev) != f.dev || st.Ino != f.ino || st.Size <= f.offset {
		return nil
	}
	return f.read(path)
}

// read returns the complete lines of the file at path from f.offset on
// (at most 1 MiB of them), if it is still the file f follows.
func (f *followed) read(path string) []Line {
	const maxRead = 1 << 20
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil
	}
	if uint64(st.Dev) != f.dev || st.Ino != f.ino { // replaced between stat and open
		f.dev, f.ino, f.offset, f.partial = uint64(st.Dev), st.Ino, 0, ""
	}
	if st.Size < f.offset {
		f.offset, f.partial = 0, ""
	}
	size := min(st.Size-f.offset, maxRead)
	if size <= 0 {
		return nil
	}
	data := make([]byte, size)
	got := 0
	for got < len(data) {
		n, err := unix.Pread(fd, data[got:], f.offset+int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break
		}
		got += n
	}
	data = data[:got]
	f.offset += int64(got)
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
