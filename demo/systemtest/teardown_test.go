package systemtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// startOwn boots a container of the test's own (not the shared one) with a
// process left running in it both ways a test leaves one: a transient
// unit (in the container's cgroups) and an nsenter child (in its PID
// namespace only). It returns the container and the PIDs that must be
// gone after teardown.
func startOwn(t *testing.T) (*Container, []int) {
	t.Helper()
	Require(t)
	fdtop := os.Getenv(helperFdtopEnv) // the parent's build, in the child
	if fdtop == "" {
		fdtop = sandboxtest.Fdtop(t)
	}
	c, err := Start(context.Background(), Options{Fdtop: fdtop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // the test closes it; this if it fails first
	ctx := context.Background()
	if out, err := c.Run(ctx, Root, "systemd-run", "--unit=fdtop-sleeper", "sleep", "1000"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lingering := c.Command(ctx, Unprivileged, "sleep", "1000")
	if err := lingering.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = lingering.Wait() }()
	pids := []int{c.Launcher, c.Leader, lingering.Process.Pid}
	deadline := time.Now().Add(10 * time.Second)
	for len(pids) < 5 && time.Now().Before(deadline) {
		pids = pids[:3]
		for _, p := range inNamespaces(provenNamespaces(c.st, c.cg)) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(b)) == "sleep" {
				pids = append(pids, p)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) != 5 {
		t.Fatalf("want two sleep processes in the container, found %v", pids[3:])
	}
	return c, pids
}

// TestTeardownLeavesNothing: Close powers the container off and leaves no
// process (not even one nsenter put in its PID namespace only), mount
// namespace, cgroup or temp dir.
func TestTeardownLeavesNothing(t *testing.T) {
	c, pids := startOwn(t)
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if c.PoweredOff > 0 {
		t.Logf("powered off in %v", c.PoweredOff.Round(time.Millisecond))
	} else {
		t.Log("no poweroff within 20 s: killed")
	}
	for _, pid := range pids {
		if sandbox.Alive(pid) {
			t.Errorf("pid %d still alive after Close", pid)
		}
	}
	for _, err := range c.Leftovers() {
		t.Error(err)
	}
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("%s still exists", c.Dir)
	}
}

// helperEnv makes TestReapAfterOwnerKilled, run in a child test binary,
// boot a container, print its dir and PIDs, and SIGKILL itself;
// helperFdtopEnv hands it the parent's fdtop binary (a build of its own
// would be left behind by the SIGKILL).
const (
	helperEnv      = "FDTOP_SYSTEMTEST_DIE_HOLDING"
	helperFdtopEnv = "FDTOP_SYSTEMTEST_FDTOP"
)

// TestReapAfterOwnerKilled: a test binary SIGKILLed while its container is
// up leaves it behind; the next start (ReapStale) tears it down completely.
func TestReapAfterOwnerKilled(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		c, pids := startOwn(t)
		fmt.Printf("DIR %s PIDS %s\n", c.Dir, strings.Trim(fmt.Sprint(pids), "[]"))
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	Require(t)
	fdtop := sandboxtest.Fdtop(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^TestReapAfterOwnerKilled$", "-test.v")
	child.Env = append(os.Environ(), helperEnv+"=1", helperFdtopEnv+"="+fdtop)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "DIR "); ok {
			d, ps, _ := strings.Cut(rest, " PIDS ")
			dir = d
			for _, f := range strings.Fields(ps) {
				p, _ := strconv.Atoi(f)
				pids = append(pids, p)
			}
		}
	}
	werr := child.Wait()
	if dir == "" {
		t.Fatalf("the child never reported its container (exit: %v)", werr)
	}
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want SIGKILL", werr)
	}
	var st state
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("the dead owner's state: %v", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	var alive []int
	for _, p := range pids {
		if sandbox.Alive(p) {
			alive = append(alive, p)
		}
	}
	t.Logf("after the owner's SIGKILL, alive of %v: %v", pids, alive)

	ReapStale()
	for _, p := range pids {
		if sandbox.Alive(p) {
			t.Errorf("pid %d still alive after ReapStale", p)
		}
	}
	cg, err := sandbox.OwnCgroups(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	// The dead owner's namespaces are freed by now and their numbers may
	// be another's: only those a process of the subtree still holds count.
	if left := inNamespaces(provenNamespaces(st, cg)); len(left) > 0 {
		t.Errorf("processes left in the container's namespaces: %v", left)
	}
	if d := cg.Dirs(); len(d) > 0 {
		t.Errorf("cgroups left: %v", d)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s still exists", dir)
	}
}
