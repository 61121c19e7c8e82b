package inspect_test

import (
	"fmt"
	"os"
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
func runHelper() bool {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return false
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
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}
