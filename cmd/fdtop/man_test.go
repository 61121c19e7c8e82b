package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const manDir = "../../docs/man"

// overstrike is nroff's bold and underline: a character, a backspace, and
// the character shown.
var overstrike = regexp.MustCompile(".\x08")

// TestManPagesCurrent: docs/man holds exactly the pages the command
// definitions make (run `go generate ./cmd/fdtop` after changing a flag).
func TestManPagesCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := writeManPages(dir); err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil || len(want) < 8 {
		t.Fatalf("generated %d pages (%v)", len(want), err)
	}
	have, _ := filepath.Glob(filepath.Join(manDir, "*.1"))
	if len(have) != len(want) {
		t.Errorf("docs/man has %d pages, the definitions make %d: run go generate ./cmd/fdtop", len(have), len(want))
	}
	for _, p := range want {
		gen, _ := os.ReadFile(p)
		cur, err := os.ReadFile(filepath.Join(manDir, filepath.Base(p)))
		if err != nil || !bytes.Equal(gen, cur) {
			t.Errorf("docs/man/%s is not current (%v): run go generate ./cmd/fdtop", filepath.Base(p), err)
		}
	}
}

// TestManPagesRender: man -l renders every page without a warning, with
// its name, synopsis and options.
func TestManPagesRender(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Fatalf("man (the man-db package) is needed to render the pages: %v", err)
	}
	pages, _ := filepath.Glob(filepath.Join(manDir, "*.1"))
	if len(pages) == 0 {
		t.Fatal("no pages in docs/man")
	}
	for _, p := range pages {
		t.Run(filepath.Base(p), func(t *testing.T) {
			cmd := exec.Command("man", "-l", "-Tutf8", p)
			cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil || errb.Len() > 0 {
				t.Fatalf("man -l %s: %v\n%s", p, err, errb.String())
			}
			text := overstrike.ReplaceAllString(out.String(), "") // bold and underline as a terminal would show them
			for _, want := range []string{"NAME", "SYNOPSIS", "OPTIONS", "fdtop"} {
				if !strings.Contains(text, want) {
					t.Errorf("rendered page lacks %q:\n%s", want, text)
				}
			}
		})
	}
}
