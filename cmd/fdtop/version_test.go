package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestBuildVersion: the version comes from the module's version when the
// build has one, else from the VCS revision (and whether the tree was
// modified), else it is the development version.
func TestBuildVersion(t *testing.T) {
	rev := "a6164d0c1a2b3c4d5e6f708192a3b4c5d6e7f809"
	settings := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, devVersion},
		{"devel, no vcs", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, devVersion},
		{"devel, clean", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("false")}, devVersion + "+a6164d0c1a2b"},
		{"devel, modified", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("true")}, devVersion + "+a6164d0c1a2b.dirty"},
		{"go install @v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "1.2.3"},
		{"pseudo-version", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207180927-a6164d0c1a2b+dirty"}}, "0.0.0-20261207180927-a6164d0c1a2b+dirty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildVersion(tt.bi, tt.bi != nil); got != tt.want {
				t.Errorf("buildVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVersionOfRealBuilds: a binary built from a git checkout names the
// revision it was built from; -ldflags -X main.version overrides the
// version.
func TestVersionOfRealBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fdtop twice")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed to build from a checkout: %v", err)
	}
	// A copy of this tree committed in a repository of its own: go
	// stamps VCS information only where .git is a directory (not in a
	// git worktree), and the code under test may not be committed yet.
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("not in a git checkout: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// tar keeps the fixtures' symlinks as they are.
	copyTree := exec.Command("sh", "-c", `git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$1"`, "sh", src)
	copyTree.Dir = strings.TrimSpace(string(top))
	if out, err := copyTree.CombinedOutput(); err != nil {
		t.Fatalf("copy the tree: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "t"}} {
		cmd := exec.Command(git, args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command(git, "rev-parse", "HEAD")
	cmd.Dir = src
	head, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, out string, args ...string) string {
		t.Helper()
		cmd := exec.Command("go", append(append([]string{"build", "-buildvcs=true", "-o", out}, args...), "./cmd/fdtop")...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		b, err := exec.Command(out, "--version").Output()
		if err != nil {
			t.Fatalf("fdtop --version: %v", err)
		}
		return string(b)
	}
	t.Run("revision", func(t *testing.T) {
		got := build(t, filepath.Join(dir, "fdtop"))
		if !strings.Contains(got, "revision "+strings.TrimSpace(string(head))) || strings.Contains(got, "modified") {
			t.Errorf("fdtop --version of a clean build of %s:\n%s", head, got)
		}
		if first, _, _ := strings.Cut(got, "\n"); !strings.Contains(first, string(head[:12])) {
			t.Errorf("version line %q does not name the revision %s", first, head[:12])
		}
	})
	t.Run("ldflags", func(t *testing.T) {
		got := build(t, filepath.Join(dir, "fdtop-x"), "-ldflags", "-X main.version=9.9.9-test")
		if first, _, _ := strings.Cut(got, "\n"); first != "fdtop 9.9.9-test" {
			t.Errorf("fdtop --version with -X main.version=9.9.9-test: %q", got)
		}
	})
}
