package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/activation/activationtest"
	"github.com/fdtop/fdtop/internal/syncbuf"
)

// child is the test binary running Main as a separate process, started
// the way systemd starts the unit's ExecStart.
type child struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
}

// startChild runs Main with args in a child process, passing files as
// LISTEN_FDS (fd 3 onwards) named names, and waits for READY=1 on mgr.
// It takes ownership of files.
func startChild(t *testing.T, mgr *activationtest.Manager, args string, files []*os.File, names []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"FDTOP_DEMO_SERVER_CHILD=1",
		"FDTOP_DEMO_SERVER_ARGS="+args,
		"NOTIFY_SOCKET="+mgr.Addr,
		// The race detector sleeps 1s at exit by default.
		"GORACE=atexit_sleep_ms=0",
	)
	if len(files) > 0 {
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	cmd.ExtraFiles = files
	c := &child{cmd: cmd, stderr: &syncbuf.Buffer{}}
	cmd.Stderr = c.stderr
	err := cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mgr.WaitFor(ctx, "READY", "1"); err != nil {
		t.Fatalf("child %d not ready: %v\nstderr:\n%s", cmd.Process.Pid, err, c.stderr)
	}
	return c
}

// stop sends sig and returns how long the child took to exit.
func (c *child) stop(t *testing.T, sig os.Signal) time.Duration {
	t.Helper()
	begin := time.Now()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := c.cmd.Wait()
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("child %d after %v: %v\nstderr:\n%s", c.cmd.Process.Pid, sig, err, c.stderr)
	}
	return took
}

// checkStopTime logs how long a stop took. Speed is measured by
// BenchmarkHandoffStop, never asserted in a test.
func checkStopTime(t *testing.T, took time.Duration) {
	t.Helper()
	t.Logf("child took %v to stop", took)
}

func TestProcessPlain(t *testing.T) {
	mgr, err := activationtest.NewManager(t.TempDir(), activationtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ch := startChild(t, mgr, "--mode plain --startup-delay 10ms --listen "+addr, nil, nil)
	c := dial(t, addr)
	c.send("hi\n")
	pid, count, text, err := c.reply()
	if err != nil || pid != ch.cmd.Process.Pid || count != 1 || text != "hi" {
		t.Fatalf("reply = %d %d %q %v; want %d 1 \"hi\"", pid, count, text, err, ch.cmd.Process.Pid)
	}
	checkStopTime(t, ch.stop(t, syscall.SIGINT))
}

// TestProcessHandoff runs real server processes under a fake manager:
// each is stopped with SIGTERM and the next gets the fd store in
// LISTEN_FDS, while a client keeps its connection.
func TestProcessHandoff(t *testing.T) {
	restarts := 5
	if n, err := strconv.Atoi(os.Getenv("FDTOP_SOAK_RESTARTS")); err == nil {
		restarts = n
	}
	sd := newFakeSystemd(t, activationtest.Options{StoreMax: 1024})
	next := func() *child {
		files := []*os.File{os.NewFile(uintptr(dupFD(t, sd.ln)), "listener")}
		names := []string{"demo-handoff.socket"}
		store, err := sd.mgr.PassStore()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range store {
			files = append(files, os.NewFile(uintptr(e.FD), e.Name))
			names = append(names, e.Name)
		}
		return startChild(t, sd.mgr, "--mode handoff --startup-delay 20ms", files, names)
	}
	ch := next()
	c := dial(t, sd.ln.Addr().String())
	var count uint64
	for r := range restarts {
		count++
		c.send(fmt.Sprintf("before %d\n", r))
		pid, got, text, err := c.reply()
		if err != nil || pid != ch.cmd.Process.Pid || got != count || text != fmt.Sprintf("before %d", r) {
			t.Fatalf("restart %d: reply = %d %d %q %v; want pid %d count %d", r, pid, got, text, err, ch.cmd.Process.Pid, count)
		}
		c.send(fmt.Sprintf("across %d\n", r))
		checkStopTime(t, ch.stop(t, syscall.SIGTERM))
		if !strings.Contains(ch.stderr.String(), "handed over connections") {
			t.Errorf("restart %d: no handoff in the log:\n%s", r, ch.stderr)
		}
		ch = next()
		count++
		if _, got, text, err := c.reply(); err != nil || got != count || text != fmt.Sprintf("across %d", r) {
			t.Fatalf("restart %d: reply after handoff = %d %q %v; want count %d", r, got, text, err, count)
		}
	}
	ch.stop(t, syscall.SIGTERM)
}

func TestProcessActivatedSIGTERM(t *testing.T) {
	sd := newFakeSystemd(t, activationtest.Options{})
	files := []*os.File{os.NewFile(uintptr(dupFD(t, sd.ln)), "listener")}
	ch := startChild(t, sd.mgr, "--mode activated --startup-delay 10ms", files, []string{"demo-activated.socket"})
	c := dial(t, sd.ln.Addr().String())
	c.send("x\n")
	c.expect(1, "x")
	checkStopTime(t, ch.stop(t, syscall.SIGTERM))
	if _, _, _, err := c.reply(); err == nil {
		t.Error("connection survived SIGTERM in activated mode")
	}
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown mode", []string{"--mode", "fast"}, 2},
		{"plain without listen", []string{"--mode", "plain"}, 2},
		{"activated with listen", []string{"--mode", "activated", "--listen", "127.0.0.1:1"}, 2},
		{"negative delay", []string{"--mode", "handoff", "--startup-delay", "-1s"}, 2},
		{"unknown flag", []string{"--port", "1"}, 2},
		{"help", []string{"--help"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := Main(tt.args, &bytes.Buffer{}, &stderr); got != tt.want {
				t.Errorf("Main(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
		})
	}
}
