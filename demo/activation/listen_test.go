package activation

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseListenEnv(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name    string
		env     map[string]string
		want    []Passed
		wantErr error  // checked with errors.Is when set
		errHas  string // substring of the error when set
	}{
		{name: "not activated", env: map[string]string{}},
		{name: "LISTEN_FDS without LISTEN_PID", env: map[string]string{"LISTEN_FDS": "2"}},
		{name: "LISTEN_PID without LISTEN_FDS", env: map[string]string{"LISTEN_PID": "4242"}},
		{
			name: "one fd without names",
			env:  map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1"},
			want: []Passed{{FD: 3, Name: "unknown"}},
		},
		{
			name: "names with odd characters",
			env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "4",
				"LISTEN_FDNAMES": "demo-handoff.socket:conn-17:has space=and\"quote:"},
			want: []Passed{{3, "demo-handoff.socket"}, {4, "conn-17"}, {5, "has space=and\"quote"}, {6, ""}},
		},
		{
			name: "empty names treated as unset",
			env:  map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": ""},
			want: []Passed{{3, "unknown"}, {4, "unknown"}},
		},
		{
			name:    "LISTEN_PID of another process",
			env:     map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "a:b:c"},
			wantErr: ErrOtherProcess,
		},
		{name: "LISTEN_FDS=0", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "0"}},
		{name: "LISTEN_FDS=0 with a name", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "0", "LISTEN_FDNAMES": "x"}},
		{name: "LISTEN_FDS garbage", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "three"}, errHas: "LISTEN_FDS"},
		{name: "LISTEN_FDS negative", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"}, errHas: "LISTEN_FDS"},
		{name: "LISTEN_FDS huge", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "99999999999999999999"}, errHas: "LISTEN_FDS"},
		{name: "LISTEN_FDS above limit", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "70000"}, errHas: "more than"},
		{name: "LISTEN_PID garbage", env: map[string]string{"LISTEN_PID": "self", "LISTEN_FDS": "1"}, errHas: "LISTEN_PID"},
		{name: "LISTEN_PID zero", env: map[string]string{"LISTEN_PID": "0", "LISTEN_FDS": "1"}, errHas: "LISTEN_PID"},
		{
			name:   "more names than fds",
			env:    map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"},
			errHas: "2 names for LISTEN_FDS=1",
		},
		{
			name:   "fewer names than fds",
			env:    map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "a:b"},
			errHas: "2 names for LISTEN_FDS=3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListenEnv(lookupMap(tt.env), pid)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
			case tt.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
				}
			case err != nil:
				t.Fatalf("unexpected error: %v", err)
			}
			if err != nil && got != nil {
				t.Errorf("got fds %v together with error %v", got, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("passed fds (-want +got):\n-%v\n+%v", tt.want, got)
			}
		})
	}
}

func FuzzParseListenEnv(f *testing.F) {
	f.Add("4242", "2", "a:b", true)
	f.Add("4242", "0", "", false)
	f.Add("1", "1", "x", true)
	f.Add("4242", "3", "a::", true)
	f.Fuzz(func(t *testing.T, pid, fds, names string, setNames bool) {
		env := map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": fds}
		if setNames {
			env["LISTEN_FDNAMES"] = names
		}
		got, err := parseListenEnv(lookupMap(env), 4242)
		if err != nil {
			if got != nil {
				t.Fatalf("fds %v returned with error %v", got, err)
			}
			return
		}
		for i, p := range got {
			if p.FD != ListenFDsStart+i {
				t.Fatalf("fd %d at index %d", p.FD, i)
			}
			if strings.Contains(p.Name, ":") {
				t.Fatalf("name %q contains the separator", p.Name)
			}
		}
		if len(got) > MaxListenFDs {
			t.Fatalf("%d fds above the limit", len(got))
		}
	})
}

func TestListenFDsWithNamesOtherProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "x")
	got, err := ListenFDsWithNames(true)
	if !errors.Is(err, ErrOtherProcess) || got != nil {
		t.Fatalf("ListenFDsWithNames = %v, %v; want nil, ErrOtherProcess", got, err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set after unsetEnv", k, v)
		}
	}
}

// TestListenFDsWithNamesChild runs the test binary as an activated child:
// the child sets LISTEN_PID to its own pid (it cannot be known before fork)
// and reports what ListenFDsWithNames returned.
func TestListenFDsWithNamesChild(t *testing.T) {
	if os.Getenv("ACTIVATION_TEST_CHILD") == "1" {
		os.Setenv("LISTEN_PID", fmt.Sprint(os.Getpid()))
		passed, err := ListenFDsWithNames(true)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for _, p := range passed {
			flags, err := unix.FcntlInt(uintptr(p.FD), unix.F_GETFD, 0)
			fmt.Printf("%d=%s cloexec=%v err=%v listener=%v\n", p.FD, p.Name, flags&unix.FD_CLOEXEC != 0, err, p.IsListener())
		}
		fmt.Printf("env=%q\n", os.Getenv("LISTEN_FDS")+os.Getenv("LISTEN_PID")+os.Getenv("LISTEN_FDNAMES"))
		os.Exit(0)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenFDsWithNamesChild$")
	cmd.Env = append(os.Environ(), "ACTIVATION_TEST_CHILD=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=read:write",
		"GORACE=atexit_sleep_ms=0") // the race detector sleeps 1s at exit by default
	cmd.ExtraFiles = []*os.File{r, w}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "3=read cloexec=true err=<nil> listener=false\n4=write cloexec=true err=<nil> listener=false\nenv=\"\"\n"
	if string(out) != want {
		t.Errorf("child output (-want +got):\n-%s\n+%s", want, out)
	}
}
