// Package tmuxtest runs programs in terminals of a test's own tmux server,
// to drive a dashboard as a person would: start it, type keys, read the
// screen.
package tmuxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// Server is a tmux server of the test's own (-L), killed when the test
// ends.
type Server struct {
	bin, socket, conf string
	env               []string
	n                 atomic.Int32
}

// New makes the server (tmux starts it with the first session), named
// prefix and this process's PID. Its commands, and so the programs its
// sessions run, get env and LANG=C.UTF-8; nil env means this process's
// environment without tmux's own variables. Without tmux the test is
// unavailable (a failure under CI=true).
func New(t testing.TB, prefix string, env []string) *Server {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		sandboxtest.Unavailable(t, "tmux not found: apt-get install tmux")
	}
	conf := filepath.Join(t.TempDir(), "tmux.conf")
	// Keep a pane whose program exited, so a failure shows its last words;
	// keep the server when its last session is killed, so the next
	// new-session never meets a server on its way out.
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g history-limit 0\nset -s exit-empty off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if env == nil {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "TMUX=") && !strings.HasPrefix(kv, "TMUX_PANE=") {
				env = append(env, kv)
			}
		}
	}
	s := &Server{bin: bin, socket: fmt.Sprintf("%s-%d", prefix, os.Getpid()), conf: conf, env: append(env, "LANG=C.UTF-8")}
	t.Cleanup(func() {
		_ = s.Command("kill-server").Run()
		// tmux leaves its socket file behind.
		dir := os.Getenv("TMUX_TMPDIR")
		if dir == "" {
			dir = "/tmp"
		}
		_ = os.Remove(filepath.Join(dir, fmt.Sprintf("tmux-%d", os.Getuid()), s.socket))
	})
	return s
}

// Command is a tmux command to this server.
func (s *Server) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(s.bin, append([]string{"-L", s.socket, "-f", s.conf}, args...)...)
	cmd.Env = s.env
	return cmd
}

// NewSession runs argv in a new detached session of w×h, named prefix and
// a number, killed when the test ends; it returns the session's name.
func (s *Server) NewSession(t testing.TB, prefix string, w, h int, argv ...string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, s.n.Add(1))
	args := append([]string{"new-session", "-d", "-s", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)}, argv...)
	for try := 1; ; try++ {
		out, err := s.Command(args...).CombinedOutput()
		if err == nil {
			break
		}
		// A server still exiting (started by an older tmux config) is
		// worth another try; anything else is not.
		if try == 3 || !strings.Contains(string(out), "server exited unexpectedly") {
			t.Fatalf("tmux new-session: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _ = s.Command("kill-session", "-t", name).Run() })
	return name
}

// Capture is the screen of session name.
func (s *Server) Capture(t testing.TB, name string) string {
	t.Helper()
	out, err := s.Command("capture-pane", "-p", "-t", name).Output()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

// SendKey types one key (a tmux key name, or text) into session name.
func (s *Server) SendKey(t testing.TB, name, key string) {
	t.Helper()
	if out, err := s.Command("send-keys", "-t", name, key).CombinedOutput(); err != nil {
		t.Fatalf("tmux send-keys %q: %v: %s", key, err, out)
	}
}

// Dead reports that the program of session name has exited.
func (s *Server) Dead(name string) bool {
	out, err := s.Command("display-message", "-p", "-t", name, "#{pane_dead}").Output()
	return err == nil && strings.TrimSpace(string(out)) == "1"
}
