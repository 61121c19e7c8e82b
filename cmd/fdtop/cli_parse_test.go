package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// parse runs a command built by newCmd on args with its run replaced:
// what the flags and patterns parsed to, or the exit status of a mistake.
func parse[T any](t *testing.T, newCmd func(*ioStreams, func(*T) int) *cobra.Command, args ...string) (*T, int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ios := &ioStreams{Out: &out, Err: &errb}
	var got *T
	cmd := newCmd(ios, func(o *T) int { got = o; return exitOK })
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	if err := cmd.Execute(); err != nil {
		return nil, exitUsage, err.Error()
	}
	return got, exitOK, out.String()
}

// TestOptionsAnywhere: options come before and after the patterns (GNU
// getopt, as systemctl), -- ends them, short and long forms are one flag.
func TestOptionsAnywhere(t *testing.T) {
	t.Run("snapshot pattern then --json", func(t *testing.T) {
		o, code, msg := parse(t, NewCmdSnapshot, "web*", "--json")
		if code != 0 || !o.JSON || !reflect.DeepEqual(o.Patterns, []string{"web*"}) {
			t.Fatalf("exit %d (%s), options %+v; want --json and pattern web*", code, msg, o)
		}
	})
	t.Run("watch --json --user after a pattern", func(t *testing.T) {
		o, code, msg := parse(t, NewCmdWatch, "--json", "demo-*", "--user", "--interval", "300ms")
		if code != 0 || !o.JSON || !o.Manager.user || o.Interval != 300*time.Millisecond || !o.IntervalSet || !reflect.DeepEqual(o.Patterns, []string{"demo-*"}) {
			t.Fatalf("exit %d (%s), options %+v", code, msg, o)
		}
	})
	t.Run("watch interval default is not set", func(t *testing.T) {
		o, _, _ := parse(t, NewCmdWatch, "x")
		if o.IntervalSet || o.Interval != 2*time.Second {
			t.Fatalf("interval %v set %v, want the default 2s, not set", o.Interval, o.IntervalSet)
		}
	})
	t.Run("-- ends options", func(t *testing.T) {
		o, code, _ := parse(t, NewCmdSnapshot, "--user", "--", "--json", "-H")
		if code != 0 || o.JSON || !reflect.DeepEqual(o.Patterns, []string{"--json", "-H"}) {
			t.Fatalf("exit %d, options %+v; want patterns --json and -H", code, o)
		}
	})
	t.Run("-H and --host, commas and repeats", func(t *testing.T) {
		o, code, _ := parse(t, NewCmdSnapshot, "-H", "a,b", "web*", "--host=c", "-Hd")
		if code != 0 || !reflect.DeepEqual([]string(o.Fleet.hosts), []string{"a", "b", "c", "d"}) {
			t.Fatalf("exit %d, hosts %q", code, o.Fleet.hosts)
		}
	})
	t.Run("rollout flags around UNIT", func(t *testing.T) {
		o, code, _ := parse(t, NewCmdRollout, "--probe", "web.service", "-H", "w1,w2", "--max-refused", "3", "--pause=1s")
		if code != 0 || o.Unit != "web.service" || !o.Probe || o.MaxRefused != 3 || o.Pause != time.Second || len(o.Fleet.hosts) != 2 || o.Timeout != 2*time.Minute {
			t.Fatalf("exit %d, options %+v", code, o)
		}
	})
	t.Run("rollout wants one UNIT", func(t *testing.T) {
		if _, code, msg := parse(t, NewCmdRollout, "a.service", "b.service"); code != exitUsage || !strings.Contains(msg, `unexpected argument "b.service"`) {
			t.Fatalf("exit %d, %q", code, msg)
		}
	})
	t.Run("demo takes no argument", func(t *testing.T) {
		if _, code, msg := parse(t, NewCmdDemo, "extra"); code != exitUsage || !strings.Contains(msg, `unexpected argument "extra"`) {
			t.Fatalf("exit %d, %q", code, msg)
		}
		o, _, _ := parse(t, NewCmdDemo, "--dashboard=false")
		if o.Dashboard || o.StartupDelay != 500*time.Millisecond {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("dashboard -H a,b --user", func(t *testing.T) {
		o, code, _ := parse(t, NewCmdRoot, "-H", "a,b", "--user")
		if code != 0 || !o.Manager.user || !reflect.DeepEqual([]string(o.Fleet.hosts), []string{"a", "b"}) || len(o.Patterns) != 0 {
			t.Fatalf("exit %d, options %+v", code, o)
		}
	})
	t.Run("dashboard patterns around flags", func(t *testing.T) {
		o, code, _ := parse(t, NewCmdRoot, "web*", "--read-only", "api*", "--interval=5s")
		if code != 0 || !o.View.readOnly || o.View.interval != 5*time.Second || !reflect.DeepEqual(o.Patterns, []string{"web*", "api*"}) {
			t.Fatalf("exit %d, options %+v", code, o)
		}
	})
	t.Run("agent args parse as the agent's", func(t *testing.T) {
		mf := managerFlags{user: true, all: true, address: "unix:path=/x"}
		args := agentArgs(&mf, 3*time.Second, []string{"--weird", "web*"})
		o, code, _ := parse(t, NewCmdAgent, args...)
		if code != 0 || !o.Manager.user || !o.Manager.all || o.Manager.address != "unix:path=/x" || o.Interval != 3*time.Second ||
			!reflect.DeepEqual(o.Patterns, []string{"--weird", "web*"}) {
			t.Fatalf("exit %d, options %+v from %q", code, o, args)
		}
	})
}

// TestHelp: --help, -h and 'help CMD' print the GNU-style help on stdout
// and exit 0; 'fdtop --help' lists every command.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}} {
		code, out, errOut := runFdtop(args...)
		if code != 0 || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range []string{"fdtop snapshot", "fdtop watch", "fdtop rollout", "fdtop replay", "fdtop doctor", "fdtop demo", "Dashboard options:", "--read-only", "Exit codes:"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q lacks %q:\n%s", args, want, out)
			}
		}
	}
	for _, cmd := range []string{"snapshot", "watch", "rollout", "replay", "doctor", "demo"} {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			code, out, _ := runFdtop(args...)
			if code != 0 || !strings.HasPrefix(out, "Usage: fdtop "+cmd+" ") || !strings.Contains(out, "\nOptions:\n") || !strings.Contains(out, "-h, --help") {
				t.Errorf("%q: exit %d:\n%s", args, code, out)
			}
		}
	}
}

// TestFirstArgumentNamesTheCommand: only the first argument names a
// command, as before: a pattern spelled like one is a pattern.
func TestFirstArgumentNamesTheCommand(t *testing.T) {
	missing := "unix:path=" + t.TempDir() + "/systemd/private"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"dashboard on units named demo", []string{"--user", "--address", missing, "demo"}, 1, "fdtop: no systemd manager answers at " + missing},
		{"snapshot of units named watch", []string{"snapshot", "--address", missing, "watch"}, 1, "fdtop snapshot: no systemd manager answers"},
		{"watch -H refuses --probe", []string{"watch", "-H", "web1", "--probe"}, 2, "fdtop watch: --probe with -H:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, msg := runFdtop(tt.args...)
			if code != tt.code || !strings.HasPrefix(msg, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, msg, tt.code, tt.want)
			}
			checkOneLine(t, msg)
		})
	}
}
