package unitlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

func TestFollowFiles(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.log")
	if err := os.WriteFile(out, []byte("old 1\nold 2\nold 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	frag := filepath.Join(dir, "web.service")
	if err := os.WriteFile(frag, []byte("[Service]\nStandardOutput=append:"+out+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, ok, err := Reader{NoJournal: true}.Follow(ctx, []string{"web.service"}, []string{frag}, 2)
	if err != nil || !ok {
		t.Fatalf("Follow: ok %v, %v", ok, err)
	}
	next := func() string {
		t.Helper()
		select {
		case l := <-ch:
			return l.Message
		case <-time.After(5 * time.Second):
			t.Fatal("no line")
		}
		return ""
	}
	for _, want := range []string{"old 2", "old 3"} {
		if got := next(); got != want {
			t.Errorf("history: %q, want %q", got, want)
		}
	}
	f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A line written in two pieces: see TestFollowFileChanges.
	if _, err := f.WriteString("new \x1b[31mred\x1b[0m\n"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "new \x1b[31mred\x1b[0m" {
		t.Errorf("followed line %q", got)
	}
	// Truncated (a log rotated by copytruncate): from the start again.
	if err := os.Truncate(out, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "after" {
		t.Errorf("after truncation: %q", got)
	}
	cancel()
	select {
	case _, open := <-ch:
		for open {
			_, open = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

// fakeJournal returns a Reader whose journal is a script: its socket a
// plain file, journalctl printing stdout and stderr and exiting with code.
func fakeJournal(t *testing.T, stdout, stderr string, code int) Reader {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "socket")
	if err := os.WriteFile(sock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"out": stdout, "err": stderr} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\ncat %s\ncat %s >&2\nexit %d\n", filepath.Join(dir, "out"), filepath.Join(dir, "err"), code)
	prog := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return Reader{Journalctl: prog, Socket: sock}
}

// TestJournal: journalctl's lines are read; when it fails (a user outside
// systemd-journal: it exits 1 saying so on stderr), Last's error and
// Follow's last line carry its words, so the log is unknown, not empty.
func TestJournal(t *testing.T) {
	const denied = "No journal files were opened due to insufficient permissions."
	tests := []struct {
		name, stdout, stderr string
		code                 int
		want                 []string // messages, from Last and then Follow
		wantErr              string   // in Last's error and Follow's last line
	}{
		{name: "read", stdout: `{"MESSAGE":"hello","PRIORITY":"6"}` + "\n" + `{"MESSAGE":[27,93,48,59,112,7,82],"PRIORITY":"3"}` + "\n",
			want: []string{"hello", "\x1b]0;p\aR"}},
		{name: "denied", stderr: denied + "\n", code: 1, wantErr: denied + " (exit status 1)"},
		{name: "empty", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fakeJournal(t, tt.stdout, tt.stderr, tt.code)
			if !r.HasJournal() {
				t.Fatal("HasJournal is false with the socket and journalctl there")
			}
			lines, ok, err := r.Last(context.Background(), "web.service", nil, 10)
			if tt.wantErr != "" {
				if err == nil || ok || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Last: ok %v, err %v; want an error with %q", ok, err, tt.wantErr)
				}
			} else {
				var got []string
				for _, l := range lines {
					got = append(got, l.Message)
				}
				if err != nil || !ok || !slices.Equal(got, tt.want) {
					t.Errorf("Last: %q, ok %v, %v; want %q", got, ok, err, tt.want)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ch, ok, err := r.Follow(ctx, []string{"web.service", "web.socket"}, nil, 10)
			if err != nil || !ok {
				t.Fatalf("Follow: ok %v, %v", ok, err)
			}
			var got []Line
			for l := range ch { // the fake exits: the channel closes
				got = append(got, l)
			}
			if ctx.Err() != nil {
				t.Fatal("Follow's channel did not close after journalctl exited")
			}
			var msgs []string
			for _, l := range got {
				msgs = append(msgs, l.Message)
			}
			if tt.wantErr == "" {
				if !slices.Equal(msgs, tt.want) {
					t.Errorf("Follow: %q, want %q", msgs, tt.want)
				}
				return
			}
			if len(got) != 1 || got[0].Priority != 3 || got[0].Source != "journalctl" ||
				!strings.Contains(got[0].Message, "the log is unknown") || !strings.Contains(got[0].Message, tt.wantErr) {
				t.Errorf("Follow: %+v; want one priority-3 line from journalctl saying the log is unknown: %s", got, tt.wantErr)
			}
		})
	}
}
