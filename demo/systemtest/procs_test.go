package systemtest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// startInNewNamespaces starts `sleep 1000` in a mount and PID namespace of
// its own, as a container's PID 1 (or a sandbox's manager) is. It is reaped
// as soon as it dies (done is closed then) and killed when the test ends.
func startInNewNamespaces(t *testing.T) (cmd *exec.Cmd, done <-chan struct{}) {
	t.Helper()
	cmd = exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(reaped)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-reaped
	})
	return cmd, reaped
}

// recordOf is the state a container made of pid would record.
func recordOf(pid int) state {
	return state{
		Launcher: pid, Leader: pid,
		LauncherNS: nsLink(pid, "mnt"), LeaderMnt: nsLink(pid, "mnt"), LeaderPID: nsLink(pid, "pid"),
	}
}

// TestTeardownSparesRecycledNamespaces: the kernel gives a freed
// namespace's inode number to the next namespace created, so once a
// container is gone the numbers it recorded can name a stranger's (another
// test package's fresh sandbox manager, which then died "signal: killed").
// A teardown of a container that has no process left in its cgroups must
// not kill the stranger; while a process of its cgroups is in the recorded
// namespaces, it kills what is in them.
func TestTeardownSparesRecycledNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		sandboxtest.Unavailable(t, "namespaces need root")
	}
	t.Run("recycled", func(t *testing.T) {
		old, oldDone := startInNewNamespaces(t)
		st := recordOf(old.Process.Pid)
		_ = old.Process.Kill()
		<-oldDone

		// The next namespaces created get the freed numbers, unless another
		// process on the host takes them first: try a few times.
		var stranger *exec.Cmd
		for try := 0; try < 50 && stranger == nil; try++ {
			c, cDone := startInNewNamespaces(t)
			if n := recordOf(c.Process.Pid); n.LeaderMnt == st.LeaderMnt || n.LeaderPID == st.LeaderPID {
				stranger = c
				break
			}
			_ = c.Process.Kill()
			<-cDone
		}
		if stranger == nil {
			t.Fatalf("no new namespace reused %s or %s in 50 tries", st.LeaderMnt, st.LeaderPID)
		}
		if errs := teardown(nil, st); len(errs) > 0 {
			t.Errorf("teardown: %v", errs)
		}
		if !sandbox.Alive(stranger.Process.Pid) {
			t.Errorf("teardown killed pid %d, a stranger in a namespace that reused %s or %s", stranger.Process.Pid, st.LeaderMnt, st.LeaderPID)
		}
	})
	t.Run("in the subtree", func(t *testing.T) {
		// A process of the cgroup subtree proves its namespaces: teardown
		// kills it and one that only shares them (as nsenter makes).
		cg, err := sandbox.OwnCgroups(fmt.Sprintf("fdtop-nstest-%d", os.Getpid()))
		if err != nil {
			t.Fatal(err)
		}
		procs, err := cg.Create("")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cg.Kill(5 * time.Second)
			if err := cg.Remove(); err != nil {
				t.Error(err)
			}
		})
		member, memberDone := startInNewNamespaces(t)
		for _, f := range procs {
			if err := os.WriteFile(f, []byte(strconv.Itoa(member.Process.Pid)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st := recordOf(member.Process.Pid)
		guest := exec.Command("nsenter", "--target", strconv.Itoa(member.Process.Pid), "--mount", "--", "sleep", "1000")
		if err := guest.Start(); err != nil {
			t.Fatal(err)
		}
		guestDone := make(chan struct{})
		go func() {
			_ = guest.Wait()
			close(guestDone)
		}()
		t.Cleanup(func() {
			_ = guest.Process.Kill()
			<-guestDone
		})
		// nsenter execs sleep once it is in the namespace.
		for deadline := time.Now().Add(5 * time.Second); nsLink(guest.Process.Pid, "mnt") != st.LeaderMnt; {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d never joined %s", guest.Process.Pid, st.LeaderMnt)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if errs := teardown(cg, st); len(errs) > 0 {
			t.Errorf("teardown: %v", errs)
		}
		for name, done := range map[string]<-chan struct{}{"cgroup member": memberDone, "namespace guest": guestDone} {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("the %s survived teardown", name)
			}
		}
	})
}
