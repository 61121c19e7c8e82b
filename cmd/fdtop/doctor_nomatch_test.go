package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestDoctorMatchingNothing (issue 20, case 9): the doctor given patterns
// that match no unit checked nothing: it says so and exits 4, never "no
// findings ... here" with exit 0; its JSON says nothing was checked and
// which patterns matched nothing. A pattern that matches beside one that
// does not checks what it matched and lists the other as not checked.
func TestDoctorMatchingNothing(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		bin := sandboxtest.Fdtop(t)
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		doctor := func(args ...string) (string, int) {
			out, err := exec.Command(bin, append([]string{"doctor", "--user", "--address", sb.Address}, args...)...).Output()
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				return string(out), ee.ExitCode()
			case err != nil:
				t.Fatalf("doctor %q: %v", args, err)
			}
			return string(out), 0
		}
		for _, p := range []string{"nonexistent*", "journald"} {
			out, code := doctor(p)
			if code != 4 || strings.Contains(out, "no findings") || !strings.Contains(out, "nothing checked") || !strings.Contains(out, "no unit matches '"+p+"'") {
				t.Errorf("doctor %s: exit %d, want 4, saying nothing was checked and why:\n%s", p, code, out)
			}
			out, code = doctor("--json", p)
			var got struct {
				Findings  []json.RawMessage `json:"findings"`
				Unchecked []string          `json:"unchecked"`
				Unmatched []string          `json:"unmatched_patterns"`
				Nothing   bool              `json:"nothing_checked"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("doctor --json %s: %v\n%s", p, err, out)
			}
			if code != 4 || !got.Nothing || len(got.Unchecked) != 1 || len(got.Unmatched) != 1 || got.Unmatched[0] != p {
				t.Errorf("doctor --json %s: exit %d, %+v; want exit 4, nothing_checked, the pattern unmatched and not checked", p, code, got)
			}
		}
		out, code := doctor("--json", "journald", "demo-h*")
		if code == 4 || !strings.Contains(out, `"unmatched_patterns"`) || strings.Contains(out, `"nothing_checked"`) {
			t.Errorf("doctor --json journald demo-h*: exit %d, want the matched units checked and journald listed unmatched:\n%s", code, out)
		}
	})
}
