package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// TestSSHHosts: -H completes from ~/.ssh/config's Host names and
// known_hosts' hosts, patterns and hashed names left out.
func TestSSHHosts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("config", "# fleet\nHost web1 web2 *.internal !bad\n  HostName 10.0.0.1\nhost db1\nMatch all\n")
	write("known_hosts", "web1,192.0.2.1 ssh-ed25519 AAAA\n|1|hashed= ssh-ed25519 AAAA\n[cache1]:2222 ssh-ed25519 AAAA\n@cert-authority *.example ssh-ed25519 AAAA\n")
	got := sshHosts(dir)
	want := []string{"192.0.2.1", "cache1:2222", "db1", "web1", "web2"}
	if !slices.Equal(got, want) {
		t.Errorf("sshHosts = %q, want %q", got, want)
	}
	if got := sshHosts(filepath.Join(dir, "none")); len(got) != 0 {
		t.Errorf("no ssh dir: %q, want nothing", got)
	}
}

// TestCompletionInBash: `fdtop completion bash` in a real bash with
// bash-completion completes subcommands, flags and unit names from the
// manager the typed flags name (--user: the sandbox's user manager), as
// systemctl's completion does.
func TestCompletionInBash(t *testing.T) {
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		sandboxtest.Unavailable(t, "bash-completion is not installed (%v): apt-get install bash-completion", err)
	}
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	installWeb(t, sb, "keeps", demo.Handoff, 50*time.Millisecond)
	bin := sandboxtest.Fdtop(t)
	complete := func(t *testing.T, line string) []string {
		t.Helper()
		script := `source ` + bashCompletion + `
source <(fdtop completion bash)
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<<"$COMP_LINE"
case "$COMP_LINE" in *" ") COMP_WORDS+=("") ;; esac
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_fdtop fdtop "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
		cmd.Env = append(append(os.Environ(), sb.Env()...), "LINE="+line, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s%s", line, err, out, stderr.String())
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		line      string
		want, not []string
	}{
		{"fdtop sna", []string{"snapshot"}, nil},
		{"fdtop snapshot --js", []string{"--json"}, nil},
		{"fdtop snapshot --user kee", []string{"keeps.service", "keeps.socket"}, nil},
		{"fdtop watch kee --user --json kee", []string{"keeps.service", "keeps.socket"}, nil},
		{"fdtop doctor --user keeps.so", []string{"keeps.socket"}, []string{"keeps.service"}},
		// Without --user the system manager is asked: the sandbox's units
		// are not there.
		{"fdtop snapshot kee", nil, []string{"keeps.service", "keeps.socket"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			checkCompletions(t, complete(t, tc.line), tc.want, tc.not)
		})
	}
}

// TestCompletionInZshAndFish: `fdtop completion zsh` and `fdtop completion
// fish` in a real zsh and fish complete subcommands, flags and unit names
// from the manager the typed flags name. Fish answers `complete -C LINE`;
// zsh's completion widgets need a terminal, so _fdtop is called with
// words and CURRENT set and _describe, the builtin it hands its
// candidates to, prints them instead.
func TestCompletionInZshAndFish(t *testing.T) {
	sb := sandboxtest.Start(t, sandboxtest.Versions()[0])
	installWeb(t, sb, "keeps", demo.Handoff, 50*time.Millisecond)
	bin := sandboxtest.Fdtop(t)
	shells := []struct {
		name string
		argv []string // runs the shell on $LINE
		sep  string   // what ends a candidate in its output (a description follows)
	}{
		{"zsh", []string{"zsh", "-f", "-c", `autoload -U compinit && compinit -u -D
source <(fdtop completion zsh)
_describe() { print -rl -- ${(P)2} }
words=(${(z)LINE}); [[ $LINE == *" " ]] && words+=("")
CURRENT=${#words}
_fdtop`}, ":"},
		{"fish", []string{"fish", "--no-config", "-c", `fdtop completion fish | source; complete -C "$LINE"`}, "\t"},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			if _, err := exec.LookPath(sh.name); err != nil {
				sandboxtest.Unavailable(t, "%s is not installed (%v): apt-get install %s", sh.name, err, sh.name)
			}
			for _, tc := range []struct {
				line      string
				want, not []string
			}{
				{"fdtop sna", []string{"snapshot"}, nil},
				{"fdtop snapshot --js", []string{"--json"}, nil},
				{"fdtop snapshot --user kee", []string{"keeps.service", "keeps.socket"}, nil},
				{"fdtop doctor --user keeps.so", []string{"keeps.socket"}, []string{"keeps.service"}},
				{"fdtop snapshot kee", nil, []string{"keeps.service", "keeps.socket"}},
			} {
				t.Run(tc.line, func(t *testing.T) {
					cmd := exec.Command(sh.argv[0], sh.argv[1:]...)
					cmd.Env = append(append(os.Environ(), sb.Env()...), "LINE="+tc.line, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
					var stderr strings.Builder
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						t.Fatalf("%s completion of %q: %v\n%s%s", sh.name, tc.line, err, out, stderr.String())
					}
					var got []string
					for _, l := range strings.Split(string(out), "\n") {
						if w, _, _ := strings.Cut(l, sh.sep); w != "" {
							got = append(got, w)
						}
					}
					if stderr.Len() > 0 {
						t.Logf("%s said on stderr: %s", sh.name, stderr.String())
					}
					checkCompletions(t, got, tc.want, tc.not)
				})
			}
		})
	}
}

// checkCompletions: the candidates a shell offered include every one of
// want and none of not.
func checkCompletions(t *testing.T, got, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("completions %q lack %q", got, w)
		}
	}
	for _, w := range not {
		if slices.Contains(got, w) {
			t.Errorf("completions %q include %q", got, w)
		}
	}
}
