package importrules

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/fdtop/fdtop"

// pkg is what go list says of one package: its non-test imports, direct
// and all.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: not the module's", len(pkgs))
	}
	return pkgs
}

// demoMayImport: demo/ is imported by itself, by cmd (fdtop demo), by the
// developers' tools (which drive sandboxes) and by test helper packages
// (named *test, as sandboxtest: they run real managers for tests); never
// by what fdtop runs otherwise.
func demoMayImport(path string) bool {
	return under(path, "demo") || under(path, "cmd") || under(path, "tools") || strings.HasSuffix(path, "test")
}

func under(path, dir string) bool {
	return path == module+"/"+dir || strings.HasPrefix(path, module+"/"+dir+"/")
}

// TestImportRules: nothing imports cmd; the fleet and the live model never
// import each other (not even through another package); the agent
// protocol imports neither ui nor dbusclient; nothing outside demo/ and
// cmd/ imports demo/ (the live model carries no traffic generator; the
// developers' tools and test helpers excepted, demoMayImport).
// Tests may import what they need (demo/sandboxtest runs real managers).
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if under(imp, "cmd") {
				t.Errorf("%s imports %s: nothing imports cmd", p.ImportPath, imp)
			}
			if under(imp, "demo") && !demoMayImport(p.ImportPath) {
				t.Errorf("%s imports %s: only demo/ and cmd/ import demo/", p.ImportPath, imp)
			}
			if under(p.ImportPath, "inspect/agent") && (under(imp, "ui") || under(imp, "dbusclient")) {
				t.Errorf("%s imports %s: the agent protocol imports neither ui nor dbusclient", p.ImportPath, imp)
			}
		}
		for _, dep := range p.Deps {
			switch {
			case under(p.ImportPath, "internal/fleet") && under(dep, "internal/live"),
				under(p.ImportPath, "internal/live") && under(dep, "internal/fleet"):
				t.Errorf("%s depends on %s: the fleet and the live model never import each other", p.ImportPath, dep)
			}
		}
	}
}

// TestRulesSeeTheirPackages: the rules above name packages that exist (a
// rename would make them hold vacuously).
func TestRulesSeeTheirPackages(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range listPackages(t) {
		seen[p.ImportPath] = true
	}
	for _, want := range []string{"cmd/fdtop", "internal/live", "internal/fleet", "demo", "ui", "dbusclient", "inspect", "inspect/agent"} {
		if !seen[module+"/"+want] {
			t.Errorf("no package %s/%s: update the import rules", module, want)
		}
	}
}
