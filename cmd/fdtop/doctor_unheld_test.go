package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/inspect"
)

// TestDoctorSocketNotListening (issue 20, case 9): demo-activated.socket
// stopped while its service runs, then started again: the manager refuses
// ("Socket service demo-activated.service already active, refusing"), the
// socket stays inactive and only the service holds the listener. The
// doctor finds it (socket-not-listening, with the manager's line), where it
// said nothing.
func TestDoctorSocketNotListening(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		sandboxtest.InstallDemo(t, sb, 50*time.Millisecond)
		sock, svc := demo.Activated.Socket(), demo.Activated.Service()
		if _, err := sb.Systemctl(ctx, "start", svc); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, "stop", sock); err != nil {
			t.Fatal(err)
		}
		if out, err := sb.Systemctl(ctx, "start", sock); err == nil {
			t.Fatalf("the socket's start was not refused: %s", out)
		}
		state, _ := sb.Systemctl(ctx, "show", "-p", "ActiveState", sock, svc)
		out, err := exec.Command(sandboxtest.Fdtop(t), "doctor", "--json", "--user", "--address", sb.Address, "demo-activated*").Output()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("doctor: %v\n%s", err, out)
		}
		var got struct {
			Findings []inspect.Finding `json:"findings"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var f *inspect.Finding
		for i := range got.Findings {
			if got.Findings[i].Code == "socket-not-listening" && got.Findings[i].Unit == sock {
				f = &got.Findings[i]
			}
		}
		if f == nil {
			t.Fatalf("no socket-not-listening finding on %s (the manager: %s); findings:\n%s", sock, strings.ReplaceAll(state, "\n", " "), out)
		}
		ev := strings.Join(f.Evidence, "\n")
		if !strings.Contains(ev, "already active, refusing") || !strings.Contains(ev, "the manager does not hold it") {
			t.Errorf("evidence lacks the manager's refusal or the unheld listener:\n%s", ev)
		}
	})
}
