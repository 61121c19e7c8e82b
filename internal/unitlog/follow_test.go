package unitlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// followModes are the two ways Follow follows files: inotify, and the
// polling it falls back to where inotify cannot be used.
var followModes = []struct {
	name string
	poll bool
}{{"inotify", false}, {"poll", true}}

// fileFollow is a Follow of two output files of a unit: a (stdout, in the
// directory sub) and b (stderr, beside sub), counting the stats of each.
type fileFollow struct {
	t      *testing.T
	dir    string
	a, b   string
	ch     <-chan Line
	cancel context.CancelFunc
	mu     sync.Mutex
	stats  map[string]int
	syncs  int
}

func newFileFollow(t *testing.T) *fileFollow {
	t.Helper()
	dir := t.TempDir()
	return &fileFollow{t: t, dir: dir, a: filepath.Join(dir, "sub", "a.log"), b: filepath.Join(dir, "b.log"), stats: map[string]int{}}
}

// start follows a and b (n lines of history).
func (ff *fileFollow) start(poll bool, n int) {
	t := ff.t
	t.Helper()
	frag := filepath.Join(ff.dir, "web.service")
	unit := fmt.Sprintf("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n", ff.a, ff.b)
	if err := os.WriteFile(frag, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	r := Reader{NoJournal: true, poll: poll, stat: func(path string, st *unix.Stat_t) error {
		ff.mu.Lock()
		ff.stats[path]++
		ff.mu.Unlock()
		return statPath(path, st)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	ch, ok, err := r.Follow(ctx, []string{"web.service"}, []string{frag}, n)
	if err != nil || !ok {
		cancel()
		t.Fatalf("Follow: ok %v, %v", ok, err)
	}
	ff.ch, ff.cancel = ch, cancel
	t.Cleanup(func() { ff.stop() })
}

// stop cancels the follow and waits for its channel to close.
func (ff *fileFollow) stop() {
	ff.t.Helper()
	ff.cancel()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, open := <-ff.ch:
			if !open {
				return
			}
		case <-timeout:
			ff.t.Fatal("Follow's channel not closed 10 s after cancel")
		}
	}
}

func (ff *fileFollow) statsOf(path string) int {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.stats[path]
}

// expect waits for the next lines, "a: text" or "b: text".
func (ff *fileFollow) expect(want ...string) {
	t := ff.t
	t.Helper()
	for _, w := range want {
		select {
		case l, open := <-ff.ch:
			if !open {
				t.Fatalf("channel closed waiting for %q", w)
			}
			got := l.Message
			switch l.Source {
			case ff.a:
				got = "a: " + got
			case ff.b:
				got = "b: " + got
			}
			if got != w {
				t.Fatalf("line %q (from %s), want %q", got, l.Source, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line in 10 s, want %q", w)
		}
	}
}

// write appends s to path, creating it.
func (ff *fileFollow) write(path, s string) {
	ff.t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		ff.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		ff.t.Fatal(err)
	}
}

// sync writes a line to b and waits for it: what was written to a before
// has been read (a's change is seen first: it came first, and a is
// checked before b).
func (ff *fileFollow) sync() {
	ff.t.Helper()
	ff.syncs++
	line := fmt.Sprintf("sync %d", ff.syncs)
	ff.write(ff.b, line+"\n")
	ff.expect("b: " + line)
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFollowFileChanges: lines appended, a file created after Follow
// started, truncated, replaced by a rotation, deleted and created again,
// written in two pieces, in a directory that did not exist at first or
// that was removed and made again: every new line arrives once, whole;
// with inotify and with the polling it falls back to.
func TestFollowFileChanges(t *testing.T) {
	tests := []struct {
		name        string
		inotifyOnly bool
		setup       func(ff *fileFollow) // before Follow
		history     []string
		steps       func(ff *fileFollow)
	}{
		{name: "appended",
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old 1\nold 2\nold 3\n")
			},
			history: []string{"a: old 2", "a: old 3"},
			steps: func(ff *fileFollow) {
				ff.write(ff.a, "new 1\nnew 2\n")
				ff.expect("a: new 1", "a: new 2")
				ff.write(ff.a, "new 3\n")
				ff.expect("a: new 3")
			}},
		{name: "created later",
			setup: func(ff *fileFollow) { mkdir(t, filepath.Dir(ff.a)) },
			steps: func(ff *fileFollow) {
				ff.sync() // following, the file still missing
				ff.write(ff.a, "first\n")
				ff.expect("a: first")
				ff.write(ff.a, "second\n")
				ff.expect("a: second")
			}},
		{name: "truncated",
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old 1\nold 2\n")
			},
			history: []string{"a: old 1", "a: old 2"},
			steps: func(ff *fileFollow) {
				do(t, os.Truncate(ff.a, 0))
				ff.write(ff.a, "after\n")
				ff.expect("a: after")
			}},
		{name: "rotated",
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old\n")
			},
			history: []string{"a: old"},
			steps: func(ff *fileFollow) {
				ff.write(ff.a, "before rotation\n")
				ff.expect("a: before rotation")
				do(t, os.Rename(ff.a, ff.a+".1"))
				ff.write(ff.a, "new 1\nnew 2\n")
				ff.expect("a: new 1", "a: new 2")
				ff.write(ff.a+".1", "to the old file\n") // no longer followed
				ff.write(ff.a, "new 3\n")
				ff.expect("a: new 3")
			}},
		{name: "replaced by a rename onto it",
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old 1\n")
			},
			history: []string{"a: old 1"},
			steps: func(ff *fileFollow) {
				ff.write(ff.a+".new", "replacement 1\nreplacement 2\n")
				do(t, os.Rename(ff.a+".new", ff.a))
				ff.expect("a: replacement 1", "a: replacement 2")
			}},
		{name: "rotated right after a write",
			inotifyOnly: true, // a poll can miss what was written before the rename
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old\n")
			},
			history: []string{"a: old"},
			steps: func(ff *fileFollow) {
				ff.write(ff.a, "last old\n")
				do(t, os.Rename(ff.a, ff.a+".1"))
				ff.write(ff.a, "new 1\n")
				ff.expect("a: last old", "a: new 1")
			}},
		{name: "deleted, created again longer",
			inotifyOnly: true, // polling cannot tell a reused inode number from an append
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old 1\nold 2\n")
			},
			history: []string{"a: old 1", "a: old 2"},
			steps: func(ff *fileFollow) {
				do(t, os.Remove(ff.a))
				ff.write(ff.a, "again 1\nagain 2\nagain 3\n")
				ff.expect("a: again 1", "a: again 2", "a: again 3")
			}},
		{name: "deleted, created again",
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old 1\nold 2\nold 3\nold 4\n")
			},
			history: []string{"a: old 3", "a: old 4"},
			steps: func(ff *fileFollow) {
				do(t, os.Remove(ff.a))
				ff.sync()
				// Shorter than before: polling reads it all even if the
				// inode number was reused.
				ff.write(ff.a, "again\n")
				ff.expect("a: again")
			}},
		{name: "a line in two pieces",
			setup: func(ff *fileFollow) { mkdir(t, filepath.Dir(ff.a)) },
			steps: func(ff *fileFollow) {
				ff.sync() // following (not reading the history)
				ff.write(ff.a, "new \x1b[31mre")
				ff.sync() // the piece has been read
				ff.write(ff.a, "d\x1b[0m\n")
				ff.expect("a: new \x1b[31mred\x1b[0m")
			}},
		{name: "directory missing at start", // inotify cannot watch it: polled
			steps: func(ff *fileFollow) {
				ff.sync()
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "first\n")
				ff.expect("a: first")
			}},
		{name: "directory removed, made again", // the watch ends: polled
			setup: func(ff *fileFollow) {
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "old\n")
			},
			history: []string{"a: old"},
			steps: func(ff *fileFollow) {
				do(t, os.RemoveAll(filepath.Dir(ff.a)))
				// Two syncs: a whole poll after the removal has found a
				// gone (the new file may get the inode number it freed).
				ff.sync()
				ff.sync()
				mkdir(t, filepath.Dir(ff.a))
				ff.write(ff.a, "in the new directory\n")
				ff.expect("a: in the new directory")
			}},
	}
	for _, mode := range followModes {
		for _, tt := range tests {
			if tt.inotifyOnly && mode.poll {
				continue
			}
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				ff := newFileFollow(t)
				if tt.setup != nil {
					tt.setup(ff)
				}
				ff.start(mode.poll, 2)
				ff.expect(tt.history...)
				tt.steps(ff)
				ff.stop()
			})
		}
	}
}

// inotifyFDs counts this process's open inotify descriptors.
func inotifyFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestFollowCancel: when ctx ends the channel is closed (the follower's
// goroutine has returned) and the inotify descriptor is closed.
func TestFollowCancel(t *testing.T) {
	for _, mode := range followModes {
		t.Run(mode.name, func(t *testing.T) {
			before := inotifyFDs(t)
			ff := newFileFollow(t)
			mkdir(t, filepath.Dir(ff.a))
			ff.start(mode.poll, 2)
			ff.sync()
			want := before + 1 // the follower's
			if mode.poll {
				want = before
			}
			if got := inotifyFDs(t); got != want {
				t.Errorf("while following: %d inotify fds, want %d", got, want)
			}
			ff.stop()
			if got := inotifyFDs(t); got != before {
				t.Errorf("after cancel: %d inotify fds, want %d as before", got, before)
			}
		})
	}
}

// TestFollowNoPolling: with inotify, a file nothing is written to is not
// looked at (not even a stat) while lines come and go in another one;
// polling looks at every file at each tick.
func TestFollowNoPolling(t *testing.T) {
	for _, mode := range followModes {
		t.Run(mode.name, func(t *testing.T) {
			ff := newFileFollow(t)
			mkdir(t, filepath.Dir(ff.a))
			ff.write(ff.a, "quiet\n")
			ff.start(mode.poll, 2)
			ff.expect("a: quiet")
			ff.sync() // following
			before := ff.statsOf(ff.a)
			for range 5 {
				ff.sync()
			}
			stats := ff.statsOf(ff.a) - before
			if !mode.poll && stats != 0 {
				t.Errorf("%d stats of a file nothing was written to, while another was followed", stats)
			}
			if mode.poll && stats == 0 {
				t.Error("polling: no stat of the quiet file (this test would not see polling)")
			}
			if ff.statsOf(ff.b) == 0 {
				t.Error("no stat of the file written to: the counter counts nothing")
			}
		})
	}
}

// TestTailOf: the history of a file followed is its complete lines up to
// the size it had when opened; what comes after (written meanwhile) and an
// incomplete last line are left for the follow to read once.
func TestTailOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	const content = "one\ntwo\nthr" + "ee\nfour\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		size    int64
		n       int
		lines   []string
		partial string
	}{
		{int64(len("one\ntwo\nthr")), 5, []string{"one", "two"}, "thr"}, // "ee\nfour\n" written after the size was taken
		{int64(len(content)), 5, []string{"one", "two", "three", "four"}, ""},
		{int64(len(content)), 2, []string{"three", "four"}, ""},
		{2, 5, nil, "on"},
		{0, 5, nil, ""},
	} {
		lines, partial, err := tailOf(f, tt.size, tt.n)
		if err != nil || !slices.Equal(lines, tt.lines) || partial != tt.partial {
			t.Errorf("tailOf(size %d, %d) = %q, %q, %v; want %q, %q", tt.size, tt.n, lines, partial, err, tt.lines, tt.partial)
		}
	}
}

// TestFollowPartialHistory: a last line not yet complete when the follow
// starts is not history: it arrives whole, once, when it is complete.
func TestFollowPartialHistory(t *testing.T) {
	for _, mode := range followModes {
		t.Run(mode.name, func(t *testing.T) {
			ff := newFileFollow(t)
			mkdir(t, filepath.Dir(ff.a))
			ff.write(ff.a, "done\nhal")
			ff.start(mode.poll, 5)
			ff.expect("a: done")
			ff.write(ff.a, "f\n")
			ff.expect("a: half")
			ff.sync()
		})
	}
}
