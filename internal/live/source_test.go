package live

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/ui"
)

// startLiveSource starts the dashboard's live model on the sandbox's
// manager, on the units patterns name, rescanning every interval; it stops
// when the test ends.
func startLiveSource(t *testing.T, sb *sandbox.Sandbox, patterns []string, interval time.Duration) *Source {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	client, b, err := Connect(ctx, Manager{User: true, Address: sb.Address, Proc: "/proc"}, patterns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	src, err := New(ctx, client, b, Options{Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestOnePWhenShown: the dashboard's live source lets the runtime run on
// one processor once its first picture from a host-wide pass is out, not
// before (not after a picture still filling: the pass that follows it
// uses every processor), and not when the user set GOMAXPROCS.
func TestOnePWhenShown(t *testing.T) {
	before := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(before)
	for _, env := range []string{"", "2"} {
		t.Run("GOMAXPROCS="+env, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", env)
			runtime.GOMAXPROCS(2)
			src := &Source{updates: make(chan ui.Update, 1), first: make(chan struct{}), whole: make(chan struct{})}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := src.OnePWhenShown(ctx)
			select {
			case <-done:
				t.Fatal("decided before the first picture")
			default:
			}
			if n := runtime.GOMAXPROCS(0); n != 2 {
				t.Fatalf("GOMAXPROCS %d before the first picture, want 2", n)
			}
			src.setPicture(false, func(*inspect.Snapshot) *inspect.Snapshot {
				return &inspect.Snapshot{Host: inspect.HostInfo{Filling: true}}
			})
			select {
			case <-src.first:
			default:
				t.Fatal("the picture still filling is not the first picture")
			}
			select {
			case <-done:
				t.Fatal("decided after a picture still filling")
			case <-time.After(50 * time.Millisecond):
			}
			if n := runtime.GOMAXPROCS(0); n != 2 {
				t.Fatalf("GOMAXPROCS %d after a picture still filling, want 2", n)
			}
			src.setPicture(false, func(*inspect.Snapshot) *inspect.Snapshot { return &inspect.Snapshot{} })
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("nothing decided 10 s after the first picture")
			}
			want := 1
			if env != "" {
				want = 2
			}
			if n := runtime.GOMAXPROCS(0); n != want {
				t.Errorf("GOMAXPROCS %d after the first picture, want %d", n, want)
			}
		})
	}
}

// TestFindingsWaitForPicture: the dashboard's doctor diagnoses the live
// model's picture; before the first one it waits (and asks nothing of its
// own: the source here has no manager, which a snapshot would need), and
// gives up when its context ends. On a real manager, once the picture is
// out, it diagnoses it: the healthy demo has no finding.
func TestFindingsWaitForPicture(t *testing.T) {
	s := &Source{first: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if fs, err := s.Findings(ctx); err == nil || fs != nil {
		t.Errorf("Findings before the first picture = %v, %v; want the context's error", fs, err)
	}

	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		src := startLiveSource(t, sb, []string{"demo-*"}, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fs, err := src.Findings(ctx)
		if err != nil || len(fs) != 0 {
			t.Errorf("Findings on the healthy demo = %+v, %v; want none", fs, err)
		}
		if src.Current() == nil {
			t.Error("Findings returned before the model had a picture")
		}
	})
}

// TestActionErrorsSaidOnce: the errors of actions come without the
// "ACTION UNIT:" the dashboard puts before them; a failed job is a result
// with the unit's reason, not an error that repeats it.
func TestActionErrorsSaidOnce(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	if err := sb.WriteUnit("fails.service", "[Service]\nType=oneshot\nExecStart=/bin/false\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatal(err)
	}
	src := startLiveSource(t, sb, []string{"fails.service"}, time.Second)
	_, err := src.Act(ctx, ui.ActionRestart, "no-such.service", false)
	if err == nil || err.Error() != "no such unit" {
		t.Errorf("restart of a unit that does not exist: %v, want \"no such unit\"", err)
	}
	res, err := src.Act(ctx, ui.ActionStart, "fails.service", false)
	if err != nil || res.Result != "failed" || res.Message != "unit result: exit-code" {
		t.Errorf("start of a failing unit: result %+v, error %v; want result failed, message \"unit result: exit-code\", no error", res, err)
	}
}

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestActWaitsForTheHostPass: an action asked for while the picture is
// still filling (the units-first picture) starts no job until the
// host-wide pass is in, so the handoff's "before" is a view taken before
// the job; it gives up with its context. (The Source here has no
// manager: a job started would panic.)
func TestActWaitsForTheHostPass(t *testing.T) {
	s := &Source{first: make(chan struct{}), whole: make(chan struct{}), updates: make(chan ui.Update, 1)}
	s.actions = newActions(nil, nil, s.Current)
	s.actions.whole = s.whole
	s.setPicture(false, func(*inspect.Snapshot) *inspect.Snapshot {
		return &inspect.Snapshot{Host: inspect.HostInfo{Filling: true}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Act(ctx, ui.ActionRestart, "web.service", false); err == nil || !strings.Contains(err.Error(), "waiting for the host-wide pass") {
		t.Errorf("restart while filling = %v, want it to wait for the host-wide pass until its context ends", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.waitWhole(context.Background()) }()
	s.setPicture(false, func(*inspect.Snapshot) *inspect.Snapshot { return &inspect.Snapshot{} })
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("waitWhole after the whole picture = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an action still waits after the host-wide picture")
	}
}

// TestLiveUnitsFirst: on a real manager, the dashboard's live model
// publishes its units first, marked still filling, and then the picture
// of its host-wide pass, not filling.
func TestLiveUnitsFirst(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
	src := startLiveSource(t, sb, []string{"demo-*"}, time.Second)
	timeout := time.After(30 * time.Second)
	var pictures []*inspect.Snapshot
	for len(pictures) == 0 || pictures[len(pictures)-1].Host.Filling {
		select {
		case u := <-src.Updates():
			if u.Err != nil {
				t.Fatalf("update error: %v", u.Err)
			}
			if u.Snapshot != nil {
				pictures = append(pictures, u.Snapshot)
			}
		case <-timeout:
			t.Fatalf("no picture without filling in 30 s; %d pictures", len(pictures))
		}
	}
	first := pictures[0]
	if !first.Host.Filling {
		t.Fatalf("the first picture is not marked still filling (holders %q)", first.Host.HoldersSource)
	}
	if len(first.Sockets) == 0 || first.Host.HoldersSource != "" {
		t.Errorf("the first picture: %d socket units, holders source %q; want the demo's units, read without a host-wide pass", len(first.Sockets), first.Host.HoldersSource)
	}
	last := pictures[len(pictures)-1]
	if last.Host.HoldersSource == "" {
		t.Errorf("the picture after filling has no holders source: not from a host-wide pass")
	}
}
