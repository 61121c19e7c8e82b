package inspect_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/fdtop/fdtop/demo/activation"
)

// helperEnv names the mode the test binary runs in when a sandbox unit
// starts it as a service (see runHelper).
const helperEnv = "FDTOP_INSPECT_HELPER"

// helperExec is the ExecStart= line that runs this test binary as a helper
// service in mode.
func helperExec(mode string, args ...string) string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	line := "Environment=" + helperEnv + "=" + mode + "\nExecStart=" + exe
	for _, a := range args {
		line += " " + a
	}
	return line + "\n"
}

// runHelper runs the helper service named by $FDTOP_INSPECT_HELPER and
// reports whether it did (it never returns when it did, unless it failed).
//
//   - accept-store: accepts connections on the passed listener (fd 3) and
//     stores each accepted connection in the fd store (FDNAME=conn) while
//     keeping it, like journald's stdout streams.
//   - listen-seq PATH: binds a SOCK_SEQPACKET listener at PATH itself.
//   - store-mix PIPES: on a first start stores a memfd and one end of a
//     socketpair (keeping the other end), both ends of PIPES pipes and a
//     listening unix socket at $FDTOP_HELPER_PATH, closing its own copies
//     of all but the socketpair end; on a later start (passed fds) it
//     keeps what it was passed.
//   - serve: accepts on the passed listeners.
//   - serve-store: stores one end of two socket pairs as FDNAME=c-1 and
//     c-2 (keeping the other ends), then accepts on the passed listeners.
//   - prefork: starts a worker (this binary in mode worker) that inherits
//     the passed listener as fd 3 and serves it, then closes its own copy.
//   - worker: accepts on fd 3.
func runHelper() bool {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return false
	}
	if mode == "worker" {
		acceptForever(3)
	}
	if err := helper(mode, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		os.Exit(1)
	}
	select {}
}

func helper(mode string, args []string) error {
	n, err := activation.NotifierFromEnv()
	if err != nil {
		return err
	}
	passed, err := activation.ListenFDsWithNames(true)
	if err != nil {
		return err
	}
	switch mode {
	case "accept-store":
		if len(passed) == 0 {
			return fmt.Errorf("no listener passed")
		}
		if err := n.Ready(); err != nil {
			return err
		}
		for {
			c, _, err := unix.Accept(passed[0].FD)
			if err != nil {
				return fmt.Errorf("accept: %w", err)
			}
			if err := n.StoreFDs("conn", c); err != nil {
				return err
			}
		}
	case "listen-seq":
		l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(l, &unix.SockaddrUnix{Name: args[0]}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.Listen(l, 16); err != nil {
			return err
		}
		return n.Ready()
	case "store-mix":
		if len(passed) > 0 {
			return n.Ready() // keep what was passed
		}
		pipes, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		mfd, err := unix.MemfdCreate("fdtop-helper", unix.MFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("memfd: %w", err)
		}
		if err := n.StoreFDs("memfd", mfd); err != nil {
			return err
		}
		unix.Close(mfd)
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socketpair: %w", err)
		}
		if err := n.StoreFDs("pair", pair[0]); err != nil {
			return err
		}
		unix.Close(pair[0]) // pair[1] stays open in this process
		for i := 0; i < pipes; i++ {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				return fmt.Errorf("pipe: %w", err)
			}
			if err := n.StoreFDs("pipe", p[0], p[1]); err != nil {
				return err
			}
			unix.Close(p[0])
			unix.Close(p[1])
		}
		l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(l, &unix.SockaddrUnix{Name: os.Getenv("FDTOP_HELPER_PATH")}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.Listen(l, 16); err != nil {
			return err
		}
		if err := n.StoreFDs("lst", l); err != nil {
			return err
		}
		unix.Close(l)
		return n.Ready()
	case "serve-store":
		for _, name := range []string{"c-1", "c-2"} {
			pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socketpair: %w", err)
			}
			if err := n.StoreFDs(name, pair[0]); err != nil {
				return err
			}
			unix.Close(pair[0]) // pair[1] stays open in this process
		}
		if err := n.Ready(); err != nil {
			return err
		}
		for _, p := range passed {
			go acceptForever(p.FD)
		}
		return nil
	case "serve":
		for _, p := range passed {
			go acceptForever(p.FD)
		}
		return n.Ready()
	case "prefork":
		if len(passed) == 0 {
			return fmt.Errorf("no listener passed")
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		w := exec.Command(exe)
		w.Env = []string{helperEnv + "=worker"}
		w.ExtraFiles = []*os.File{os.NewFile(uintptr(passed[0].FD), "listener")}
		w.Stdout, w.Stderr = os.Stdout, os.Stderr
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		w.ExtraFiles[0].Close() // the worker serves it; the main process keeps no copy
		return n.Ready()
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// acceptForever accepts connections on fd and keeps them open (each
// accepted descriptor stays in the process: nothing closes it).
func acceptForever(fd int) {
	for {
		if _, _, err := unix.Accept(fd); err != nil {
			fmt.Fprintf(os.Stderr, "accept on fd %d: %v\n", fd, err)
			os.Exit(1)
		}
	}
}
