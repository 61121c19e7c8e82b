package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/ui"
)

// TestEventToFrame is a measurement, not a test: with
// FDTOP_MEASURE_FRAMES=N it runs the dashboard in tmux on the demo of each
// systemd version with FDTOP_DEBUG_LOG set, restarts demo-handoff and
// demo-plain N times each from outside, and logs the latency from each
// event burst's newest event (when fdtop saw the manager's signal) to the
// first frame drawn with it: median, p90 and max, as issue 6 measured it.
//
//	FDTOP_MEASURE_FRAMES=15 CI=true FDTOP_SYSTEMD_254=... go test -count=1 -v -run TestEventToFrame ./cmd/fdtop/
func TestEventToFrame(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FDTOP_MEASURE_FRAMES"))
	if n <= 0 {
		t.Skip("the event → frame measurement runs with FDTOP_MEASURE_FRAMES=N (restarts per service)")
	}
	tm := newTmux(t)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 300*time.Millisecond)
		for _, m := range demo.Modes {
			sandboxtest.Traffic(t, cfg.Addr(m), 4, 50*time.Millisecond)
		}
		logPath := filepath.Join(t.TempDir(), "debug.log")
		term := tm.start(t, sandboxtest.Fdtop(t), append(sb.Env(), ui.DebugLogEnv+"="+logPath), "--user", "--address", sb.Address, "demo-*")
		term.waitFor(t, "the handoff service with its 4 connections", func(s string) bool {
			return rowWith(s, "demo-handoff.service", "4") != ""
		})
		for i := 0; i < n; i++ {
			for _, m := range []demo.Mode{demo.Handoff, demo.Plain} {
				if _, err := sb.Systemctl(ctx, "restart", m.Service()); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Let the last verdicts reach the screen.
		term.waitFor(t, "the last restart's verdict", func(s string) bool { return verdictLine(s) != "" })
		time.Sleep(time.Second) // a measurement, not a test: the tail of the last burst
		term.quit(t)
		l := frameLatencies(t, logPath)
		t.Logf("event → frame (View) over %d restarts: %s; bursts with a main PID change: %s", 2*n, latencyStats(l.view), latencyStats(l.mainPID))
		t.Logf("event → screen (the terminal write after that View, at %d frames a second): %s; %d bursts changed nothing on screen", ui.FrameRate, latencyStats(l.screen), l.unchanged)
	})
}

var (
	recvRe  = regexp.MustCompile(`recv gen=(\d+) kind=(\S+) n=\d+ event_ns=(\d+)`)
	frameRe = regexp.MustCompile(`frame gen=(\d+) frame_ns=(\d+)`)
	flushRe = regexp.MustCompile(`flush flush_ns=(\d+)`)
)

// latencies are one measurement's samples: event → View (the frame drawn
// with it) and event → screen (bubbletea's next write to the terminal
// after that View: it writes at its frame rate, when the frame changed).
type latencies struct {
	view, mainPID, screen []time.Duration
	unchanged             int // bursts whose frame changed nothing on screen
}

// frameLatencies reads a dashboard debug log: for every event burst, the
// time from its newest event to the first frame drawn at or past its
// generation, and to the first write to the terminal after that frame (a
// frame written no sooner than a second later changed nothing on screen:
// counted apart).
func frameLatencies(t *testing.T, path string) latencies {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type burst struct {
		gen   int
		kind  string
		event int64
	}
	var (
		out       latencies
		pending   []burst
		unflushed []burst // drawn, waiting for the write: event and view times
	)
	var drawnAt []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := recvRe.FindStringSubmatch(sc.Text()); m != nil {
			gen, _ := strconv.Atoi(m[1])
			ns, _ := strconv.ParseInt(m[3], 10, 64)
			pending = append(pending, burst{gen, m[2], ns})
			continue
		}
		if m := flushRe.FindStringSubmatch(sc.Text()); m != nil {
			ns, _ := strconv.ParseInt(m[1], 10, 64)
			for i, b := range unflushed {
				if time.Duration(ns-drawnAt[i]) > time.Second {
					out.unchanged++
					continue
				}
				out.screen = append(out.screen, time.Duration(ns-b.event))
			}
			unflushed, drawnAt = nil, nil
			continue
		}
		if m := frameRe.FindStringSubmatch(sc.Text()); m != nil {
			gen, _ := strconv.Atoi(m[1])
			ns, _ := strconv.ParseInt(m[2], 10, 64)
			rest := pending[:0]
			for _, b := range pending {
				if b.gen > gen {
					rest = append(rest, b)
					continue
				}
				d := time.Duration(ns - b.event)
				out.view = append(out.view, d)
				if b.kind == "event-main_pid" {
					out.mainPID = append(out.mainPID, d)
				}
				unflushed, drawnAt = append(unflushed, b), append(drawnAt, ns)
			}
			pending = rest
		}
	}
	return out
}

func latencyStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return strconv.Itoa(len(s)) + " bursts, median " + q(0.5).Round(10*time.Microsecond).String() +
		", p90 " + q(0.9).Round(10*time.Microsecond).String() + ", max " + s[len(s)-1].Round(10*time.Microsecond).String()
}
