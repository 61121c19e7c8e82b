package sshtest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/demo/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestHosts: each host answers on its own loopback address with its own
// environment, through the fleet's client configuration; an unreachable
// target is refused.
func TestHosts(t *testing.T) {
	f := New(t)
	tests := []struct{ name, env string }{
		{"first", "FDTOP_TEST_HOST=one"},
		{"second", "FDTOP_TEST_HOST=two"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := f.AddHost(t, tc.env)
			if seen[h.Addr] {
				t.Fatalf("address %s used twice", h.Addr)
			}
			seen[h.Addr] = true
			if !strings.HasPrefix(h.Addr, "127.0.0.") || h.Addr == "127.0.0.1" {
				t.Fatalf("host address %s: want 127.0.0.N, N >= 2", h.Addr)
			}
			args := append(strings.Fields(f.SSH()), "-p", itoa(h.Port), h.Addr, "echo $FDTOP_TEST_HOST $HOME")
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("ssh %s: %v: %s\nsshd: %s", h.Target, err, out, h.Log())
			}
			want := strings.TrimPrefix(tc.env, "FDTOP_TEST_HOST=") + " " + h.Home
			if got := strings.TrimSpace(string(out)); got != want {
				t.Fatalf("session env = %q, want %q", got, want)
			}
		})
	}
	bad := f.Unreachable(t)
	host, port, _ := strings.Cut(bad, ":")
	args := append(strings.Fields(f.SSH()), "-p", port, host, "true")
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused") {
		t.Fatalf("ssh to %s: err %v, output %q; want connection refused", bad, err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
