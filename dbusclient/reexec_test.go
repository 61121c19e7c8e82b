package dbusclient_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestConnectDuringReexec: while the manager re-executes itself again and
// again, every Connect and Load succeeds: a refused or reset connection is
// retried with backoff instead of failing as "no manager answers".
func TestConnectDuringReexec(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var reexecs, done atomic.Int32
		wg.Add(1)
		go func() {
			// A daemon-reexec after every third finished run: the
			// connects meet the manager before, during and after each.
			defer wg.Done()
			last := int32(-3)
			for ctx.Err() == nil {
				if done.Load() < last+3 {
					runtime.Gosched()
					time.Sleep(time.Millisecond)
					continue
				}
				last = done.Load()
				if _, err := sb.Systemctl(context.Background(), "daemon-reexec"); err == nil {
					reexecs.Add(1)
				}
			}
		}()
		const runs = 30
		failed := 0
		for i := 0; i < runs; i++ {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := dbusclient.Connect(cctx, dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
			if err == nil {
				_, err = c.Load(cctx, nil, false)
				c.Close()
			}
			ccancel()
			done.Add(1)
			if err != nil {
				failed++
				t.Errorf("run %d: %v", i, err)
			}
		}
		cancel()
		wg.Wait()
		if reexecs.Load() < 2 {
			t.Errorf("only %d daemon-reexec ran during the %d connects", reexecs.Load(), runs)
		}
		t.Logf("%d connects and loads across %d daemon-reexec: %d failed", runs, reexecs.Load(), failed)
	})
}

// TestLoadWhileRefused: a read whose connection the manager refuses (its
// socket is there but not listening, as during a daemon-reexec) is retried
// with backoff, and succeeds once the manager listens again.
func TestLoadWhileRefused(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := dbusclient.Connect(ctx, dbusclient.Options{Scope: dbusclient.User, Address: sb.Address})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sock, ok := strings.CutPrefix(sb.Address, "unix:path=")
		if !ok || strings.ContainsAny(sock, ",;") {
			t.Fatalf("sandbox address %q is not a plain unix:path=", sb.Address)
		}
		// Swap the manager's socket for one bound but not listening: a
		// connect to it is refused. The manager keeps its own listener.
		if err := os.Rename(sock, sock+".away"); err != nil {
			t.Fatal(err)
		}
		restore := func() error { os.Remove(sock); return os.Rename(sock+".away", sock) }
		defer restore()
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
			t.Fatal(err)
		}
		before := dbusclient.PipelineDials()
		done := make(chan error, 1)
		go func() {
			_, err := c.Load(ctx, nil, false)
			done <- err
		}()
		// Two refused dials: the read has been retried at least once.
		for dbusclient.PipelineDials() < before+2 {
			select {
			case err := <-done:
				t.Fatalf("Load returned while the socket refused: %v", err)
			case <-ctx.Done():
				t.Fatal("Load never dialled twice")
			case <-time.After(time.Millisecond):
			}
		}
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Load after the manager listened again: %v", err)
		}
	})
}

// TestConnectWhileSocketVanished: a re-executing manager unlinks its private
// socket and binds it again; a Connect that lands in between finds no file.
// It waits for the socket to come back (here, after two failed dials) and
// connects; a socket that stays away fails with the dial's own error, not as
// a manager that refuses; a missing directory fails at once.
func TestConnectWhileSocketVanished(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		sock, ok := strings.CutPrefix(sb.Address, "unix:path=")
		if !ok || strings.ContainsAny(sock, ",;") {
			t.Fatalf("sandbox address %q is not a plain unix:path=", sb.Address)
		}
		var dials atomic.Int32
		opts := dbusclient.Options{Scope: dbusclient.User, Address: sb.Address,
			Dial: func(ctx context.Context, address string) (*dbus.Conn, error) {
				dials.Add(1)
				return dbusclient.DialAddress(ctx, address)
			}}
		if err := os.Rename(sock, sock+".away"); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore := func() error {
			if restored {
				return nil
			}
			restored = true
			return os.Rename(sock+".away", sock)
		}
		defer restore()

		// Stays away: the dial's error, after about vanishedRetryFor.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := dbusclient.Connect(ctx, opts)
		if err == nil || !errors.Is(err, syscall.ENOENT) || errors.Is(err, dbusclient.ErrConnectionReset) {
			t.Errorf("Connect with the socket gone: %v, want the dial's ENOENT", err)
		}
		if n := dials.Load(); n < 2 {
			t.Errorf("Connect with the socket gone dialled %d times, want retries", n)
		}
		t.Logf("socket gone: %d dials in %s: %v", dials.Load(), time.Since(start).Round(time.Millisecond), err)

		// Comes back: Connect succeeds.
		dials.Store(0)
		done := make(chan error, 1)
		go func() {
			c, err := dbusclient.Connect(ctx, opts)
			if err == nil {
				_, err = c.Load(ctx, nil, false)
				c.Close()
			}
			done <- err
		}()
		for dials.Load() < 2 {
			select {
			case err := <-done:
				t.Fatalf("Connect returned while the socket was gone: %v", err)
			case <-ctx.Done():
				t.Fatal("Connect never dialled twice")
			case <-time.After(time.Millisecond):
			}
		}
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Connect once the socket was back: %v", err)
		}

		// No directory: no manager, at once.
		dials.Store(0)
		opts.Address = "unix:path=" + filepath.Join(t.TempDir(), "gone", "private")
		if _, err := dbusclient.Connect(ctx, opts); err == nil || !errors.Is(err, syscall.ENOENT) {
			t.Errorf("Connect to a missing directory: %v, want ENOENT", err)
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("Connect to a missing directory dialled %d times, want 1", n)
		}
	})
}

// TestUserManagerFromRunUser: with neither DBUS_SESSION_BUS_ADDRESS nor
// XDG_RUNTIME_DIR set (sudo, su), --user finds the user's manager in its
// runtime directory /run/user/UID (here a stand-in pointing at the
// sandbox's runtime directory).
func TestUserManagerFromRunUser(t *testing.T) {
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		base := t.TempDir()
		if err := os.Symlink(sb.RuntimeDir, filepath.Join(base, strconv.Itoa(os.Geteuid()))); err != nil {
			t.Fatal(err)
		}
		defer dbusclient.SetUserRuntimeBase(base)()
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		t.Setenv("XDG_RUNTIME_DIR", "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := dbusclient.Connect(ctx, dbusclient.Options{Scope: dbusclient.User})
		if err != nil {
			t.Fatalf("connect --user without XDG_RUNTIME_DIR: %v", err)
		}
		defer c.Close()
		if !strings.HasPrefix(sb.Version, c.Version()) && c.Version() != sb.Version {
			t.Errorf("connected to systemd %q, the sandbox runs %q", c.Version(), sb.Version)
		}
	})
}
