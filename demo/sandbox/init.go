package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InitMain is the body of the hidden `fdtop __sandbox-init` subcommand. It
// runs in the new mount namespace Start created, joins the sandbox's cgroups,
// mounts a tmpfs on /run/systemd with an empty /run/systemd/system (so the
// manager believes it may run), bind-mounts a non-default systemd binary over
// the compiled-in path, and execs the command after "--".
//
//	fdtop __sandbox-init [--cgroup PROCS_FILE]... [--mount-run-systemd]
//	      [--bind SRC:DST]... -- /usr/lib/systemd/systemd --user
func InitMain(args []string, stderr io.Writer) int {
	if err := initMain(args); err != nil {
		fmt.Fprintf(stderr, "fdtop %s: %v\n", InitCommand, err)
		return 1
	}
	return 0 // not reached: exec replaced us
}

func initMain(args []string) error {
	var cgroups, binds []string
	mountRun := false
	var argv []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--cgroup", "--bind":
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs a value", args[i])
			}
			if args[i] == "--cgroup" {
				cgroups = append(cgroups, args[i+1])
			} else {
				binds = append(binds, args[i+1])
			}
			i++
		case "--mount-run-systemd":
			mountRun = true
		case "--":
			argv = args[i+1:]
			i = len(args)
		default:
			return fmt.Errorf("unknown argument %q", args[i])
		}
	}
	if len(argv) == 0 {
		return errors.New("no command after --")
	}
	if os.Getpid() == 1 {
		return errors.New("refusing to run as PID 1")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range cgroups {
		if err := os.WriteFile(f, pid, 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", f, err)
		}
	}
	// Go's Unshareflags already made / private; do it again so a mount here
	// can never propagate to the host even if that changes.
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if mountRun {
		if err := os.MkdirAll("/run/systemd", 0o755); err != nil {
			return fmt.Errorf("mkdir /run/systemd: %w", err)
		}
		if err := unix.Mount("tmpfs", "/run/systemd", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on /run/systemd: %w", err)
		}
		if err := os.Mkdir("/run/systemd/system", 0o755); err != nil {
			return fmt.Errorf("mkdir /run/systemd/system: %w", err)
		}
	}
	for _, b := range binds {
		src, dst, ok := strings.Cut(b, ":")
		if !ok {
			return fmt.Errorf("--bind %q: want SRC:DST", b)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, dst, err)
		}
	}
	return unix.Exec(argv[0], argv, os.Environ())
}
