package unitlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     Line
		ok       bool
	}{
		{"string", `{"MESSAGE":"Started web.","PRIORITY":"6","__REALTIME_TIMESTAMP":"1700000000000000"}`,
			Line{Message: "Started web.", Priority: 6, Time: time.UnixMicro(1700000000000000), Source: "journal"}, true},
		{"bytes with an escape", `{"MESSAGE":[27,91,51,49,109,114,101,100,255],"PRIORITY":"3"}`,
			Line{Message: "\x1b[31mred\xff", Priority: 3, Source: "journal"}, true},
		{"no priority, null message", `{"MESSAGE":null}`, Line{Priority: -1, Source: "journal"}, true},
		{"not json", `MESSAGE=x`, Line{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseJSON([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseJSON(%s) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestOutputFilesAndLast(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := write("web.log", "one\ntwo\nthree\n")
	frag := write("web.service", "[Service]\nStandardOutput=journal\nStandardError=inherit\n")
	dropin := write("override.conf", fmt.Sprintf("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n", out, out))
	if got := OutputFiles([]string{frag, dropin}); len(got) != 1 || got[0] != out {
		t.Errorf("OutputFiles = %q, want [%s]", got, out)
	}
	if got := OutputFiles([]string{frag}); len(got) != 0 {
		t.Errorf("journal output: OutputFiles = %q, want none", got)
	}

	// The manager's stderr, a file, found through a fake /proc.
	mlog := write("manager.log", "Reloading.\nweb.service: Failed with result 'exit-code'.\nother.service: Started.\n")
	proc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(filepath.Join(proc, "77", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(mlog, filepath.Join(proc, "77", "fd", "2")); err != nil {
		t.Fatal(err)
	}
	r := Reader{ManagerPID: 77, Proc: proc, NoJournal: true}
	lines, ok, err := r.Last(context.Background(), "web.service", []string{frag, dropin}, 2)
	if err != nil || !ok {
		t.Fatalf("Last: %v, ok %v", err, ok)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Source+"|"+l.Message)
	}
	want := []string{"manager log|web.service: Failed with result 'exit-code'.", out + "|two", out + "|three"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Last:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// No source at all: unknown, not empty.
	if _, ok, err := (Reader{NoJournal: true}).Last(context.Background(), "x.service", nil, 5); ok || err != nil {
		t.Errorf("no source: ok %v err %v, want not ok", ok, err)
	}
}

func TestTailFileLong(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.log")
	var b strings.Builder
	for i := 0; i < 40000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := tailFile(p, 3)
	if err != nil || strings.Join(got, ",") != "line 39997,line 39998,line 39999" {
		t.Errorf("tailFile = %q, %v", got, err)
	}
}
