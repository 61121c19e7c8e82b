package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// TestJoinEscapedListeners: Listen strings as systemd prints them
// (C-escaped) find the kernel's sockets by their exact bytes: non-ASCII,
// backslashes, quotes, NUL in an abstract name, a byte that is not UTF-8.
func TestJoinEscapedListeners(t *testing.T) {
	tests := []struct {
		name     string
		listen   dbusclient.Listener
		path     string // as the kernel reports it
		abstract bool
		typ      procfs.SockType
	}{
		{"path with ü", dbusclient.Listener{Type: "Stream", Address: `/run/user/0/\303\274.sock`}, "/run/user/0/ü.sock", false, procfs.TypeStream},
		{"abstract with ü", dbusclient.Listener{Type: "Stream", Address: `@name-\303\274`}, "name-ü", true, procfs.TypeStream},
		{"backslash", dbusclient.Listener{Type: "Stream", Address: `/run/user/0/back\\slash.sock`}, `/run/user/0/back\slash.sock`, false, procfs.TypeStream},
		{"quotes and space", dbusclient.Listener{Type: "Datagram", Address: `/run/q\"u\'o te.sock`}, `/run/q"u'o te.sock`, false, procfs.TypeDgram},
		{"nul in abstract", dbusclient.Listener{Type: "SequentialPacket", Address: `@a\000b`}, "a\x00b", true, procfs.TypeSeqPacket},
		{"not utf-8", dbusclient.Listener{Type: "Stream", Address: `/run/lat\351.sock`}, "/run/lat\xe9.sock", false, procfs.TypeStream},
		{"escape sequence in a name", dbusclient.Listener{Type: "Stream", Address: `@bell\a\033[31m`}, "bell\a\x1b[31m", true, procfs.TypeStream},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ino := uint64(5000 + i)
			in := JoinInput{
				Manager:     Manager{Scope: "user"},
				ManagerPIDs: []int{mgrPID},
				Scan: &procfs.Scan{
					Processes: []procfs.Process{
						{PID: mgrPID, Comm: "systemd", UserUnit: "init.scope", FDs: []procfs.FD{sockFD(9, ino)}},
						{PID: webPID, Comm: "odd", UserUnit: "odd.service", FDs: []procfs.FD{sockFD(3, ino)}},
					},
					Sockets: map[uint64]procfs.Socket{ino: {Inode: ino, Family: procfs.FamilyUnix, Type: tt.typ, State: procfs.StateListen, Path: tt.path, Abstract: tt.abstract}},
				},
				State: &dbusclient.State{
					Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "odd.socket", ActiveState: "active"},
						Listen: []dbusclient.Listener{tt.listen}, Triggers: []string{"odd.service"}}},
					Services: []dbusclient.Service{{UnitState: dbusclient.UnitState{Name: "odd.service", ActiveState: "active"}, MainPID: webPID}},
				},
			}
			s := Join(in)
			l := s.Sockets[0].Listeners[0]
			if l.Inode != ino || len(l.Holders) != 2 || l.Holders[1].PID != webPID || l.Holders[1].Outside {
				t.Fatalf("listener %q = inode %d, holders %+v; want inode %d held by the manager and pid %d", tt.listen.Address, l.Inode, l.Holders, ino, webPID)
			}
			if l.Address != tt.listen.Address {
				t.Errorf("address = %q, want systemd's %q", l.Address, tt.listen.Address)
			}
		})
	}
}

// TestOwnListenerAddressAsSystemdPrintsIt: a listener a service bound
// itself is named the way systemd names Listen= entries, so the two read
// alike.
func TestOwnListenerAddressAsSystemdPrintsIt(t *testing.T) {
	for _, tt := range []struct {
		s    procfs.Socket
		want string
	}{
		{procfs.Socket{Family: procfs.FamilyUnix, Path: "/run/ü.sock"}, `/run/\303\274.sock`},
		{procfs.Socket{Family: procfs.FamilyUnix, Path: "a\x00b", Abstract: true}, `@a\000b`},
		{procfs.Socket{Family: procfs.FamilyUnix, Path: `x\y`}, `x\\y`},
	} {
		if got := listenAddress(tt.s); got != tt.want {
			t.Errorf("listenAddress(%q) = %q, want %q", tt.s.Path, got, tt.want)
		}
	}
}

// TestTextOutputEscapesOutsideStrings: escape sequences in a STATUS= text,
// a comm, a command line, socket names and event messages are shown
// escaped in the snapshot tree and the watch lines; the JSON keeps them.
func TestTextOutputEscapesOutsideStrings(t *testing.T) {
	const status = "\x1b]0;pwned-title\a\x1b[2J\x1b[31mRED STATUS"
	in := fixture()
	in.State.Services[0].StatusText = status
	in.State.Services[0].Processes[0].Cmdline = "web --title \x1b[31mred\r\n"
	in.Scan.Processes[1].Comm = "\x1b[31mEVIL\a"
	in.Scan.Processes[1].FDs[2].Name = "st\x00\x1b[2Jate" // a memfd's name: any bytes
	snap := Join(in)

	var tree bytes.Buffer
	if err := WriteTree(&tree, snap); err != nil {
		t.Fatal(err)
	}
	ev := Event{Time: time.Unix(0, 0), Unit: "web.service", Type: EventConnectionDropped, Detail: "@a\x00\x1b[2Jb"}
	texts := map[string]string{"tree": tree.String(), "watch line": FormatEvent(ev) + "\n"}
	for name, text := range texts {
		t.Run(name, func(t *testing.T) {
			for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
				if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f }) {
					t.Errorf("line %d has a control character: %q", i+1, line)
				}
			}
		})
	}
	for _, want := range []string{`status: \e]0;pwned-title\x07\e[2J\e[31mRED STATUS`, `pid 200 fd 3 \e[31mEVIL\x07 (web.service)`, `memfd:st\x00\e[2Jate`, `--title \e[31mred\r\n`} {
		if !strings.Contains(tree.String(), want) {
			t.Errorf("tree lacks %q:\n%s", want, tree.String())
		}
	}
	if want := `connection from @a\x00\e[2Jb dropped`; !strings.Contains(texts["watch line"], want) {
		t.Errorf("watch line %q lacks %q", texts["watch line"], want)
	}

	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	web := back.Services[len(back.Services)-1]
	if web.StatusText != status || web.Processes[0].Comm != "\x1b[31mEVIL\a" {
		t.Errorf("JSON status %q, comm %q: want the exact values", web.StatusText, web.Processes[0].Comm)
	}
	if p := web.Passed[2]; p.Detail != "memfd:st\x00\x1b[2Jate" {
		t.Errorf("JSON passed fd detail %q, want the exact memfd name", p.Detail)
	}
}
