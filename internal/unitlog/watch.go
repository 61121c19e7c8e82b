package unitlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// watchMask is what a followed file's directory is watched for: a file
// written, created, renamed in or out, deleted, closed after writing, or
// its attributes changed (a truncation by some tools).
const watchMask = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB

// watcher follows files through inotify watches on their directories, so
// a file created later, truncated or replaced by a rotation is still seen,
// and nothing is read while nothing is written.
type watcher struct {
	file  *os.File                       // the inotify descriptor, read through Go's poller
	dirs  map[int]string                 // watched directories by watch descriptor
	names map[int]map[string][]*followed // followed files by watch descriptor and name
	files []*followed                    // in Follow's order
	moved map[uint32]*followed           // renamed away, by cookie, until the rename's other half
}

// watchFiles watches the directories of files (and of their symlinks'
// targets). An error means inotify cannot be used here (not available, no
// watch left, a directory missing): the caller polls.
func watchFiles(files []*followed) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &watcher{
		file:  os.NewFile(uintptr(fd), "inotify"),
		dirs:  map[int]string{},
		names: map[int]map[string][]*followed{},
		files: files,
		moved: map[uint32]*followed{},
	}
	// A deadline is what ends a read when ctx ends; without the poller
	// (no deadline) the watch could not be stopped.
	if err := w.file.SetReadDeadline(time.Time{}); err != nil {
		w.close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	for _, f := range files {
		paths := []string{f.path}
		if real, err := filepath.EvalSymlinks(f.path); err == nil && real != f.path {
			paths = append(paths, real)
		}
		for _, p := range paths {
			dir, name := filepath.Dir(p), filepath.Base(p)
			wd, err := unix.InotifyAddWatch(fd, dir, watchMask)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
			}
			if w.names[wd] == nil {
				w.dirs[wd] = dir
				w.names[wd] = map[string][]*followed{}
			}
			if !slices.Contains(w.names[wd][name], f) {
				w.names[wd][name] = append(w.names[wd][name], f)
			}
		}
	}
	return w, nil
}

// close closes the inotify descriptor (again is harmless).
func (w *watcher) close() {
	w.file.Close()
}

// follow sends the files' new lines as inotify reports changes to them,
// until ctx ends (true) or the watch breaks (false: a watched directory
// was removed or unmounted, or reading failed); the caller then polls.
func (w *watcher) follow(ctx context.Context, out chan<- Line) bool {
	stop := context.AfterFunc(ctx, func() { w.file.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.file.Read(buf)
		if ctx.Err() != nil {
			return true
		}
		if err != nil {
			return false
		}
		lines, ok := w.handle(buf[:n])
		for _, l := range lines {
			if !send(ctx, out, l) {
				return true
			}
		}
		if !ok {
			return false
		}
	}
}

// handle reads a batch of inotify events and returns the new lines of the
// files they name; ok is false when the watch broke.
func (w *watcher) handle(buf []byte) (lines []Line, ok bool) {
	ok = true
	changed := map[*followed]bool{}
	if len(w.moved) > 16 { // renamed out of the watched directories: no other half comes
		clear(w.moved)
	}
	for len(buf) >= unix.SizeofInotifyEvent {
		wd := int(int32(binary.NativeEndian.Uint32(buf[0:])))
		mask := binary.NativeEndian.Uint32(buf[4:])
		cookie := binary.NativeEndian.Uint32(buf[8:])
		size := int(binary.NativeEndian.Uint32(buf[12:]))
		if len(buf) < unix.SizeofInotifyEvent+size {
			break
		}
		name := string(buf[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+size])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		buf = buf[unix.SizeofInotifyEvent+size:]
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0: // events were lost: look at every file
			for _, f := range w.files {
				changed[f] = true
			}
			continue
		case mask&(unix.IN_IGNORED|unix.IN_UNMOUNT) != 0:
			ok = false
			continue
		}
		if f := w.moved[cookie]; f != nil && mask&unix.IN_MOVED_TO != 0 && cookie != 0 {
			// The followed file renamed within watched directories
			// (rotated): what was written to it before is read there.
			delete(w.moved, cookie)
			lines = append(lines, f.drain(filepath.Join(w.dirs[wd], name))...)
		}
		for _, f := range w.names[wd][name] {
			changed[f] = true
			if mask&unix.IN_DELETE != 0 {
				// Gone: a file made there later is new even if it
				// gets the same inode number.
				f.dev, f.ino = 0, 0
			}
			if mask&unix.IN_MOVED_FROM != 0 && cookie != 0 {
				w.moved[cookie] = f
			}
		}
	}
	for _, f := range w.files {
		if changed[f] {
			lines = append(lines, f.more()...)
		}
	}
	return lines, ok
}
