package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/inspect"
)

// TestDoctorAddressAndStoreAsRoot: the doctor, as root in the booted
// system, names the process (and its unit) holding a socket unit's address,
// and finds a service sending FDSTORE=1 under FileDescriptorStoreMax=0 from
// the manager's journal line about it.
func TestDoctorAddressAndStoreAsRoot(t *testing.T) {
	c := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ports, err := demo.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	busy, store := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	units := map[string]string{
		// The holder: a plain demo server bound to busy, inside.
		"fdtdoc-holder.service": fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nExecStart=%s demo-server --mode plain --listen %s --startup-delay 10ms\n", FdtopPath, busy),
		"fdtdoc-busy.socket":    fmt.Sprintf("[Socket]\nListenStream=%s\n", busy),
		"fdtdoc-busy.service":   "[Service]\nExecStart=/bin/true\n",
		"fdtdoc-nostore.socket": fmt.Sprintf("[Socket]\nListenStream=%s\n", store),
		"fdtdoc-nostore.service": fmt.Sprintf("[Service]\nType=notify\nNotifyAccess=main\nExecStart=%s demo-server --mode handoff --startup-delay 10ms\nTimeoutStopSec=5\n",
			FdtopPath),
	}
	var names []string
	for name, content := range units {
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
	if out, err := c.Systemctl(ctx, "start", "fdtdoc-holder.service", "fdtdoc-nostore.socket", "fdtdoc-nostore.service"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	holder := mainPID(t, c, "fdtdoc-holder.service")
	_, _ = c.Systemctl(ctx, "start", "fdtdoc-busy.socket") // fails: the holder has the address
	waitState(t, c, "fdtdoc-busy.socket", "failed", "resources", nil)

	// A connection the handoff server offers to a store it does not have:
	// the manager refuses it and says so in the journal.
	conn, err := c.DialTCP(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatalf("fdtdoc-nostore did not answer: %v", err)
	}
	if out, err := c.Systemctl(ctx, "restart", "fdtdoc-nostore.service"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	var doc struct {
		Findings []inspect.Finding `json:"findings"`
	}
	var out string
	var code int
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code = doctor(t, c, Root, "--json", "fdtdoc-*")
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("--json does not decode: %v\n%s", err, out)
		}
		if findingOf(doc.Findings, "fdtdoc-nostore.service", "fdstore-disabled") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("fdtop doctor --json fdtdoc-*:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d with findings, want 1", code)
	}
	tests := []struct {
		unit, code string
		evidence   []string
		fix        string
	}{
		{"fdtdoc-busy.socket", "address-in-use",
			[]string{fmt.Sprintf("%s is held by pid %s (fdtop, fdtdoc-holder.service)", busy, holder), "log (journal): ", "Address already in use"},
			fmt.Sprintf("stop pid %s (fdtop) or change Listen*=, then systemctl reset-failed fdtdoc-busy.socket && systemctl start fdtdoc-busy.socket", holder)},
		{"fdtdoc-nostore.service", "fdstore-disabled",
			[]string{"FileDescriptorStoreMax=0", "log (journal): "},
			"systemctl edit fdtdoc-nostore.service"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			f := findingOf(doc.Findings, tt.unit, tt.code)
			if f == nil {
				t.Fatalf("no %s finding for %s in %+v", tt.code, tt.unit, doc.Findings)
			}
			all := strings.Join(f.Evidence, "\n")
			for _, want := range tt.evidence {
				if !strings.Contains(all, want) {
					t.Errorf("evidence lacks %q:\n%s", want, all)
				}
			}
			if !strings.Contains(f.Fix, tt.fix) {
				t.Errorf("fix %q lacks %q", f.Fix, tt.fix)
			}
		})
	}
}
