package systemtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// launcherEnv carries the launch spec (JSON) to the re-executed test binary:
// Main sees it and runs the launcher instead of the tests.
const launcherEnv = "FDTOP_SYSTEMTEST_LAUNCHER"

// launchSpec is what the launcher does, in order: join the cgroups, make /
// private, mount a tmpfs on /run, copy Seed into the overlay's upper layer,
// mount the overlay of / on RunDir/root and exec Nspawn.
type launchSpec struct {
	// Cgroups are the cgroup.procs files to join (the subtree's roots).
	Cgroups []string
	// RunDir is the directory under the new /run tmpfs holding upper,
	// work and root (named after the container's tag, so a leaked mount
	// would be found by it).
	RunDir string
	// Seed is a host directory copied into the upper layer before the
	// overlay is mounted (unit masks, the ssh socket, a machine ID).
	Seed string
	// Lower is the overlay's lower layer: "/" (this host's root file
	// system alone, not the mounts on it) or a root file system tree.
	Lower string
	// Env is added to nspawn's environment (SYSTEMD_NSPAWN_*).
	Env []string
	// Nspawn is the systemd-nspawn command line, its --directory pointing
	// at RunDir/root.
	Nspawn []string
}

// launch is the body of the launcher: a re-execution of the test binary in
// a new mount namespace (Start's Unshareflags) that never returns on
// success (it becomes systemd-nspawn).
func launch(specJSON string, stderr io.Writer) int {
	var spec launchSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(stderr, "systemtest launcher: spec: %v\n", err)
		return 1
	}
	if err := launchMain(spec); err != nil {
		fmt.Fprintf(stderr, "systemtest launcher: %v\n", err)
		return 1
	}
	return 0 // not reached: exec replaced us
}

func launchMain(spec launchSpec) error {
	if len(spec.Nspawn) == 0 {
		return errors.New("no nspawn command")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range spec.Cgroups {
		if err := os.WriteFile(f, pid, 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", f, err)
		}
	}
	// Go's Unshareflags already made / private; again, so that no mount
	// below can ever propagate to the host.
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// The host's /run is on disk and nspawn refuses to clean its state
	// there: a tmpfs, gone with this namespace.
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on /run: %w", err)
	}
	upper, work, root := filepath.Join(spec.RunDir, "upper"), filepath.Join(spec.RunDir, "work"), filepath.Join(spec.RunDir, "root")
	for _, d := range []string{upper, work, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	if spec.Seed != "" {
		if err := copyTree(spec.Seed, upper); err != nil {
			return fmt.Errorf("seed the upper layer: %w", err)
		}
	}
	// nspawn refuses --volatile=overlay for /: the overlay is ours. The
	// lower layer is the root file system alone (not the mounts on it),
	// or a tree of its own.
	lower := spec.Lower
	if lower == "" {
		lower = "/"
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay of %s on %s: %w", lower, root, err)
	}
	return unix.Exec(spec.Nspawn[0], spec.Nspawn, append(os.Environ(), spec.Env...))
}

// copyTree copies the directories, regular files and symlinks of src into
// dst (which exists), keeping modes; everything is owned by the caller.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a directory, file or symlink", path)
		}
	})
}
