package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect/agent"
)

// TestAgentEnds runs `fdtop agent` on a real sandbox manager, its stdin a
// pipe, with the live model running (after "watch"), and ends it with
// SIGTERM, SIGINT, SIGHUP or by closing its stdin. It must end within
// exitWithin with 128+signal (0 when stdin closed), print nothing on
// stderr, and leave no process of its own behind.
func TestAgentEnds(t *testing.T) {
	bin := sandboxtest.Fdtop(t)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 100*time.Millisecond)
	tests := []struct {
		name string
		sig  syscall.Signal // 0: close stdin
		code int
	}{
		{"SIGTERM", syscall.SIGTERM, 143},
		{"SIGINT", syscall.SIGINT, 130},
		{"SIGHUP", syscall.SIGHUP, 129},
		{"stdin closed", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, agentCommand, "--user", "--address", sb.Address, "--interval", "200ms", "demo-*")
			cmd.Env = append(os.Environ(), sb.Env()...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			t.Cleanup(func() {
				if !exited(pid) {
					cmd.Process.Kill()
					cmd.Wait()
				}
			})
			// Read until the live model has sent its first picture.
			lines := make(chan agent.Message, 64)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				sc.Buffer(make([]byte, 64*1024), 16<<20)
				for sc.Scan() {
					var m agent.Message
					if json.Unmarshal(sc.Bytes(), &m) == nil {
						lines <- m
					}
				}
				io.Copy(io.Discard, stdout)
			}()
			if _, err := fmt.Fprintf(stdin, "{\"type\":%q,\"id\":1}\n", agent.MsgWatch); err != nil {
				t.Fatalf("write watch: %v", err)
			}
			deadline := time.After(30 * time.Second)
			for updated := false; !updated; {
				select {
				case m, ok := <-lines:
					if !ok {
						cmd.Wait()
						t.Fatalf("agent ended before its first update; stderr: %s", errb.String())
					}
					if m.Type == agent.MsgError {
						t.Fatalf("agent error: %s", m.Error)
					}
					updated = m.Type == agent.MsgUpdate
				case <-deadline:
					t.Fatalf("no update from the agent in 30 s; stderr: %s", errb.String())
				}
			}
			kids := descendants(pid)

			sent := time.Now()
			if tc.sig != 0 {
				err = syscall.Kill(pid, tc.sig)
			} else {
				err = stdin.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range lines {
				}
			}()
			waited := make(chan error, 1)
			go func() { <-done; waited <- cmd.Wait() }()
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				t.Fatalf("agent (pid %d) still running 10 s after %s (stuck)", pid, tc.name)
			}
			took := time.Since(sent)
			t.Logf("ended %v after %s", took, tc.name)
			if took > exitWithin {
				t.Errorf("agent took %v to end after %s, want at most %v", took, tc.name, exitWithin)
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("agent printed on stderr: %q", errb.String())
			}
			for _, k := range kids {
				if !exited(k) {
					t.Errorf("process %d of the agent left running", k)
				}
			}
		})
	}
}

// TestDoctorEndsOnSignal ends `fdtop doctor` with each termination signal
// while it waits on a real sandbox manager that does not answer (stopped
// with SIGSTOP beforehand, so the doctor is certainly mid-work when hit):
// it must end within exitWithin with 128+signal and print nothing.
func TestDoctorEndsOnSignal(t *testing.T) {
	bin := sandboxtest.Fdtop(t)
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	sandboxtest.InstallDemo(t, sb, 100*time.Millisecond)
	if err := syscall.Kill(sb.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(sb.PID, syscall.SIGCONT) })
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}, {syscall.SIGHUP, 129}} {
		t.Run(strings.ToUpper(sigName(tc.sig)), func(t *testing.T) {
			cmd := exec.Command(bin, "doctor", "--user", "--address", sb.Address)
			cmd.Env = append(os.Environ(), sb.Env()...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			// Dialling the manager comes after the signal handling is set up.
			pid := cmd.Process.Pid
			for deadline := time.Now().Add(10 * time.Second); !hasSocket(pid); {
				if time.Now().After(deadline) || exited(pid) {
					t.Fatalf("the doctor never dialled the manager; stderr: %s", errb.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			select {
			case <-waited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-waited
				t.Fatalf("doctor still running 10 s after SIG%s", strings.ToUpper(sigName(tc.sig)))
			}
			took := time.Since(sent)
			t.Logf("ended %v after SIG%s", took, strings.ToUpper(sigName(tc.sig)))
			if took > exitWithin {
				t.Errorf("doctor took %v to end, want at most %v", took, exitWithin)
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if errb.Len() > 0 || out.Len() > 0 {
				t.Errorf("doctor printed after the signal: stdout %q, stderr %q", out.String(), errb.String())
			}
		})
	}
}

// hasSocket reports whether pid has a socket open.
func hasSocket(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); strings.HasPrefix(l, "socket:") {
			return true
		}
	}
	return false
}

// descendants lists the processes pid started, and theirs.
func descendants(pid int) []int {
	var out []int
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		var c int
		if _, err := fmt.Sscan(f, &c); err == nil {
			out = append(out, c)
			out = append(out, descendants(c)...)
		}
	}
	return out
}
