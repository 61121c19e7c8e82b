package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
)

// doctorUnits are the units of TestDoctorAsRoot: a socket whose service
// fails at once and whose trigger limit is small, a service that fails
// with a log line, an Accept=yes socket without its template, and a
// healthy socket with its service.
var doctorUnits = map[string]string{
	"fdtdoc-trig.socket":  "[Socket]\nListenStream=/run/fdtdoc-trig.sock\nTriggerLimitBurst=2\nTriggerLimitIntervalSec=1min\n",
	"fdtdoc-trig.service": "[Service]\nExecStart=/bin/false\n",
	"fdtdoc-fail.service": "[Service]\nExecStart=/bin/sh -c 'echo \"fdtdoc-fail: cannot open /etc/fdtdoc.conf\"; exit 3'\n",
	"fdtdoc-acc.socket":   "[Socket]\nListenStream=/run/fdtdoc-acc.sock\nAccept=yes\n",
	"fdtok.socket":        "[Socket]\nListenStream=/run/fdtok.sock\n",
	"fdtok.service":       "[Service]\nExecStart=/bin/sleep infinity\n",
}

// doctor runs `fdtop doctor ARGS...` inside as u and returns its output
// and exit status.
func doctor(t *testing.T, c *Container, u User, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := c.Command(ctx, u, append([]string{FdtopPath, "doctor"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("fdtop doctor %v: %v: %s", args, err, stderr.String())
	}
	if code > 1 {
		t.Fatalf("fdtop doctor %v: exit %d: %s", args, code, stderr.String())
	}
	if code == 1 && len(out) == 0 {
		return stderr.String(), code // a runtime error, said on stderr
	}
	return string(out), code
}

// waitState waits until `systemctl show` of unit has ActiveState and
// Result as wanted, or fails with what it had.
func waitState(t *testing.T, c *Container, unit, active, result string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		out, _ = c.Systemctl(context.Background(), "show", "-p", "ActiveState", "-p", "Result", unit)
		if strings.Contains(out, "ActiveState="+active+"\n") && strings.Contains(out, "Result="+result+"\n") {
			return
		}
		if poke != nil {
			poke()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never became %s/%s: %q", unit, active, result, out)
}

func findingOf(fs []inspect.Finding, unit, code string) *inspect.Finding {
	for i := range fs {
		if fs[i].Unit == unit && fs[i].Code == code {
			return &fs[i]
		}
	}
	return nil
}

// TestDoctorAsRoot: `fdtop doctor` as root on the booted system's manager,
// with journald: a socket driven into trigger-limit-hit, a failing service
// (exit status and its journal line in the evidence), an Accept=yes socket
// without a template; exit 1 with them, exit 0 on a healthy socket; the
// printed trigger-limit fix, run, makes the socket listen again.
func TestDoctorAsRoot(t *testing.T) { ForEach(t, testDoctorAsRoot) }

func testDoctorAsRoot(t *testing.T, c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var names []string
	for name, content := range doctorUnits {
		if err := c.WriteUnit(name, content); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	t.Cleanup(func() {
		_, _ = c.Systemctl(context.Background(), append([]string{"stop"}, names...)...)
		_, _ = c.Systemctl(context.Background(), append([]string{"reset-failed"}, names...)...)
	})
	if out, err := c.Systemctl(ctx, "daemon-reload"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := c.Systemctl(ctx, "start", "fdtdoc-trig.socket", "fdtdoc-acc.socket", "fdtok.socket", "fdtok.service", "fdtdoc-fail.service"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitState(t, c, "fdtdoc-fail.service", "failed", "exit-code", nil)
	waitJournal(t, c, "fdtdoc-fail.service", "fdtdoc-fail: cannot open /etc/fdtdoc.conf")
	// Each connection triggers the service, which fails without taking
	// it: the socket stays readable and triggers again, past the limit.
	trigSock := c.Path("/run/fdtdoc-trig.sock")
	waitState(t, c, "fdtdoc-trig.socket", "failed", "trigger-limit-hit", func() {
		if conn, err := net.DialTimeout("unix", trigSock, time.Second); err == nil {
			conn.Close()
		}
	})

	t.Run("healthy demo", func(t *testing.T) {
		demoUnits(t, c)
		out, code := doctor(t, c, Root, "demo-*")
		if code != 0 || !strings.Contains(out, "no findings") {
			t.Errorf("exit %d on the healthy demo, want 0 and no findings:\n%s", code, out)
		}
	})

	t.Run("healthy", func(t *testing.T) {
		out, code := doctor(t, c, Root, "fdtok*")
		if code != 0 {
			t.Errorf("exit %d on a healthy socket and service, want 0:\n%s", code, out)
		}
		if !strings.Contains(out, "no findings") {
			t.Errorf("no 'no findings' line:\n%s", out)
		}
	})

	out, code := doctor(t, c, Root, "--json", "fdtdoc-*")
	if code != 1 {
		t.Errorf("exit %d with findings, want 1", code)
	}
	t.Logf("fdtop doctor --json fdtdoc-*:\n%s", out)
	var doc struct {
		Findings []inspect.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json does not decode: %v", err)
	}
	// The JSON field names are promises: check them on the raw object.
	var raw struct {
		Findings []map[string]json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range raw.Findings {
		for _, k := range []string{"unit", "code", "problem", "evidence", "fix"} {
			if _, ok := f[k]; !ok {
				t.Errorf("a finding without %q: %v", k, f)
			}
		}
	}

	tests := []struct {
		unit, code string
		evidence   []string // each in some evidence line
		fix        string   // the fix, exactly when it is a command
		fixHas     string
	}{
		{unit: "fdtdoc-trig.socket", code: "trigger-limit-hit",
			evidence: []string{"Result=trigger-limit-hit", "log (journal): ", "Trigger limit hit"},
			fix:      "systemctl reset-failed fdtdoc-trig.socket && systemctl start fdtdoc-trig.socket"},
		{unit: "fdtdoc-fail.service", code: "service-failed",
			evidence: []string{"Result=exit-code", "main process exited with status 3", "log (journal): fdtdoc-fail: cannot open /etc/fdtdoc.conf"},
			fixHas:   "systemctl restart fdtdoc-fail.service"},
		{unit: "fdtdoc-acc.socket", code: "accept-no-template",
			evidence: []string{"Accept=yes", "fdtdoc-acc@.service"},
			fixHas:   "systemctl edit --force --full fdtdoc-acc@.service"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			f := findingOf(doc.Findings, tt.unit, tt.code)
			if f == nil {
				t.Fatalf("no %s finding for %s in %+v", tt.code, tt.unit, doc.Findings)
			}
			if f.Problem == "" {
				t.Error("empty problem")
			}
			all := strings.Join(f.Evidence, "\n")
			for _, want := range tt.evidence {
				if !strings.Contains(all, want) {
					t.Errorf("evidence lacks %q:\n%s", want, all)
				}
			}
			if tt.fix != "" && f.Fix != tt.fix {
				t.Errorf("fix %q, want %q", f.Fix, tt.fix)
			}
			if !strings.Contains(f.Fix, tt.fixHas) {
				t.Errorf("fix %q lacks %q", f.Fix, tt.fixHas)
			}
		})
	}

	// A plain user may not read the system journal: the finding stands,
	// its log is unknown with journalctl's reason (not an error, not
	// "no log").
	t.Run("unprivileged", func(t *testing.T) {
		out, code := doctor(t, c, Unprivileged, "--json", "fdtdoc-fail*")
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		var doc struct {
			Findings []inspect.Finding `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("--json does not decode: %v\n%s", err, out)
		}
		f := findingOf(doc.Findings, "fdtdoc-fail.service", "service-failed")
		if f == nil {
			t.Fatalf("no service-failed finding:\n%s", out)
		}
		all := strings.Join(f.Evidence, "\n")
		for _, want := range []string{"main process exited with status 3", "log: unknown (journalctl -u fdtdoc-fail.service: No journal files were opened due to insufficient permissions"} {
			if !strings.Contains(all, want) {
				t.Errorf("evidence lacks %q:\n%s", want, all)
			}
		}
	})

	// No finding is a clean bill only where the doctor saw everything: as
	// a plain user, dbus.service's processes (another user's) and the
	// system journal are not readable, and it says so instead.
	t.Run("unprivileged, nothing found", func(t *testing.T) {
		text, code := doctor(t, c, Unprivileged, "dbus*")
		if code != 0 {
			t.Errorf("exit %d, want 0:\n%s", code, text)
		}
		for _, want := range []string{"no findings in what fdtop could read; not checked:", "  - the descriptors of dbus.service: processes not readable (run as root)"} {
			if !strings.Contains(text, want) {
				t.Errorf("the doctor's text lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "nothing keeps socket activation") {
			t.Errorf("a blind doctor gives a clean bill:\n%s", text)
		}
		out, _ := doctor(t, c, Unprivileged, "--json", "dbus*")
		var doc struct {
			Unchecked []string `json:"unchecked"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("--json does not decode: %v\n%s", err, out)
		}
		if len(doc.Unchecked) == 0 || !strings.Contains(doc.Unchecked[0], "dbus.service") {
			t.Errorf("--json unchecked = %q, want dbus.service's descriptors", doc.Unchecked)
		}
		root, code := doctor(t, c, Root, "dbus*")
		if code != 0 || !strings.Contains(root, "no findings: nothing keeps socket activation or a handoff from working here") {
			t.Errorf("as root: exit %d:\n%s", code, root)
		}
	})

	t.Run("text", func(t *testing.T) {
		text, code := doctor(t, c, Root, "fdtdoc-trig*")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(text, "fix:      systemctl reset-failed fdtdoc-trig.socket && systemctl start fdtdoc-trig.socket") {
			t.Errorf("the text output does not print the fix:\n%s", text)
		}
	})

	t.Run("fix", func(t *testing.T) {
		f := findingOf(doc.Findings, "fdtdoc-trig.socket", "trigger-limit-hit")
		if f == nil {
			t.Skip("no finding to fix (reported above)")
		}
		if out, err := c.Run(ctx, Root, "sh", "-c", f.Fix); err != nil {
			t.Fatalf("the printed fix %q: %v: %s", f.Fix, err, out)
		}
		waitState(t, c, "fdtdoc-trig.socket", "active", "success", nil)
		var found bool
		for _, l := range listening(t, c) {
			found = found || l.addr == "/run/fdtdoc-trig.sock"
		}
		if !found {
			t.Errorf("after the fix, nothing listens on /run/fdtdoc-trig.sock")
		}
		if out, code := doctor(t, c, Root, "fdtdoc-trig.socket"); strings.Contains(out, "trigger-limit-hit") {
			t.Errorf("after the fix (exit %d) the doctor still says trigger-limit-hit:\n%s", code, out)
		}
	})
}
