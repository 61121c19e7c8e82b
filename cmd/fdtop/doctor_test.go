package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// runDoctorCmd runs fdtop doctor against the sandbox and returns its
// findings (from --json), its text output and its exit code.
func runDoctorCmd(t *testing.T, sb *sandbox.Sandbox, patterns ...string) ([]inspect.Finding, string, int) {
	t.Helper()
	bin := sandboxtest.Fdtop(t)
	code := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("fdtop doctor: %v", err)
		}
		return 0
	}
	args := append([]string{"doctor", "--user", "--address", sb.Address, "--json"}, patterns...)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	jcode := code(err)
	var res struct {
		Findings []inspect.Finding `json:"findings"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("doctor --json (exit %d) does not decode: %v\n%s\nstderr: %s", jcode, err, out, stderr.String())
	}
	text, err := exec.Command(bin, append([]string{"doctor", "--user", "--address", sb.Address}, patterns...)...).Output()
	if tcode := code(err); tcode != jcode {
		t.Errorf("doctor exits %d with --json, %d without", jcode, tcode)
	}
	return res.Findings, string(text), jcode
}

// waitResult waits until unit's Result property is want.
func waitResult(t *testing.T, sb *sandbox.Sandbox, unit, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	got := ""
	for time.Now().Before(deadline) {
		if poke != nil {
			poke()
		}
		out, err := sb.Systemctl(context.Background(), "show", "-p", "Result", "--value", unit)
		if got = strings.TrimSpace(out); err == nil && got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: Result %q, want %q", unit, got, want)
}

func findingOf(fs []inspect.Finding, unit, code string) *inspect.Finding {
	for i := range fs {
		if fs[i].Unit == unit && fs[i].Code == code {
			return &fs[i]
		}
	}
	return nil
}

func evidenceHas(f *inspect.Finding, sub string) bool {
	for _, e := range f.Evidence {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

// TestDoctor drives units of a real manager into each failure the doctor
// names and checks the finding, its evidence and its fix; the healthy demo
// has none (exit 0).
func TestDoctor(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), 2, 100*time.Millisecond)

		findings, text, code := runDoctorCmd(t, sb, "demo-*")
		if code != 0 || len(findings) != 0 {
			t.Fatalf("healthy demo: exit %d, findings %+v\n%s", code, findings, text)
		}
		if !strings.Contains(text, "no findings: nothing keeps socket activation") {
			t.Errorf("healthy demo text: %q", text)
		}

		ports, err := demo.FreePorts(5)
		if err != nil {
			t.Fatal(err)
		}
		addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
		held, err := net.Listen("tcp", addr(1)) // the address another process holds
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		// A unix name another process holds: an abstract one, which the
		// manager cannot take over (a path it unlinks and binds again).
		unixName := fmt.Sprintf("@fdtop-doc-%d-%d", os.Getpid(), ports[4])
		heldUnix, err := net.Listen("unix", unixName)
		if err != nil {
			t.Fatal(err)
		}
		defer heldUnix.Close()
		failLog := filepath.Join(sb.Dir, "doc-fail.log")
		units := map[string]string{
			"doc-trig.socket":    fmt.Sprintf("[Socket]\nListenStream=%s\nTriggerLimitBurst=2\nTriggerLimitIntervalSec=60s\n", addr(0)),
			"doc-trig.service":   "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/true\n",
			"doc-busy.socket":    fmt.Sprintf("[Socket]\nListenStream=%s\n", addr(1)),
			"doc-busy.service":   "[Service]\nExecStart=/bin/true\n",
			"doc-unix.socket":    fmt.Sprintf("[Socket]\nListenStream=%s\n", unixName),
			"doc-unix.service":   "[Service]\nExecStart=/bin/true\n",
			"doc-fail.service":   fmt.Sprintf("[Service]\nExecStart=/bin/sh -c 'echo boom; printf \"\\\\033[31mred\\\\033]0;title\\\\007\\\\n\" >&2; exit 3'\nStandardOutput=append:%s\nStandardError=append:%s\n", failLog, failLog),
			"doc-acc.socket":     fmt.Sprintf("[Socket]\nListenStream=%s\nAccept=yes\n", addr(2)),
			"doc-nostore.socket": fmt.Sprintf("[Socket]\nListenStream=%s\n", addr(3)),
			"doc-nostore.service": fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nExecStart=%s demo-server --mode handoff --startup-delay 10ms\nTimeoutStopSec=5\n",
				sandboxtest.Fdtop(t)),
		}
		for name, content := range units {
			if err := sb.WriteUnit(name, content); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "start", "doc-trig.socket", "doc-acc.socket", "doc-nostore.socket", "doc-nostore.service"); err != nil {
			t.Fatal(err)
		}
		_, _ = sb.Systemctl(ctx, "start", "doc-busy.socket") // fails: address in use
		_, _ = sb.Systemctl(ctx, "start", "doc-unix.socket") // fails: address in use
		_, _ = sb.Systemctl(ctx, "start", "doc-fail.service")
		dial := func(i int) func() {
			return func() {
				if c, err := net.DialTimeout("tcp", addr(i), time.Second); err == nil {
					_, _ = c.Write([]byte("hi\n"))
					_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					_, _ = c.Read(make([]byte, 64))
					c.Close()
				}
			}
		}
		waitResult(t, sb, "doc-trig.socket", "trigger-limit-hit", dial(0))
		waitResult(t, sb, "doc-busy.socket", "resources", nil)
		waitResult(t, sb, "doc-unix.socket", "resources", nil)
		waitResult(t, sb, "doc-fail.service", "exit-code", nil)
		waitResult(t, sb, "doc-acc.socket", "resources", dial(2))

		// A connection the handoff server offers to a store it does not
		// have: the manager refuses it and says so in its log.
		c, err := net.Dial("tcp", addr(3))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("doc-nostore did not answer: %v", err)
		}
		if _, err := sb.Systemctl(ctx, "restart", "doc-nostore.service"); err != nil {
			t.Fatal(err)
		}

		var text2 string
		deadline := time.Now().Add(20 * time.Second)
		for {
			findings, text2, code = runDoctorCmd(t, sb, "doc-*")
			if findingOf(findings, "doc-nostore.service", "fdstore-disabled") != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if code != 1 {
			t.Errorf("doctor exit %d with findings, want 1", code)
		}
		tests := []struct {
			unit, code string
			evidence   []string // substrings some evidence line has
			fix        string
		}{
			{"doc-trig.socket", "trigger-limit-hit", []string{"Result=trigger-limit-hit", "Trigger limit hit"},
				"systemctl --user reset-failed doc-trig.socket && systemctl --user start doc-trig.socket"},
			{"doc-busy.socket", "address-in-use", []string{fmt.Sprintf("held by pid %d", os.Getpid()), "Address already in use"},
				fmt.Sprintf("stop pid %d", os.Getpid())},
			{"doc-unix.socket", "address-in-use", []string{fmt.Sprintf("%s is held by pid %d", unixName, os.Getpid()), "listening on " + unixName},
				fmt.Sprintf("stop pid %d", os.Getpid())},
			{"doc-fail.service", "service-failed", []string{"exited with status 3", "boom"}, "systemctl --user restart doc-fail.service"},
			{"doc-acc.socket", "accept-no-template", []string{"doc-acc@.service"}, "doc-acc@.service"},
			{"doc-nostore.service", "fdstore-disabled", []string{"FileDescriptorStoreMax=0"}, "FileDescriptorStoreMax="},
		}
		for _, tt := range tests {
			f := findingOf(findings, tt.unit, tt.code)
			if f == nil {
				t.Errorf("no %s finding for %s; got %+v", tt.code, tt.unit, findings)
				continue
			}
			for _, e := range tt.evidence {
				if !evidenceHas(f, e) {
					t.Errorf("%s %s: no evidence with %q: %q", tt.unit, tt.code, e, f.Evidence)
				}
			}
			if !strings.Contains(f.Fix, tt.fix) {
				t.Errorf("%s %s: fix %q, want it to contain %q", tt.unit, tt.code, f.Fix, tt.fix)
			}
		}
		// The failing service's stderr had escape sequences: the JSON keeps
		// them, the text shows them escaped.
		if f := findingOf(findings, "doc-fail.service", "service-failed"); f != nil && !evidenceHas(f, "\x1b[31mred") {
			t.Errorf("JSON evidence lost the exact log line: %q", f.Evidence)
		}
		if strings.ContainsAny(text2, "\x1b\x07") || !strings.Contains(text2, `\e[31mred`) {
			t.Errorf("text output not sanitized or line missing:\n%s", text2)
		}
	})
}
