package dbusclient

import (
	"testing"

	"github.com/fdtop/fdtop/internal/cescape"
)

// TestUnixName decodes Listen values as systemd 252 and 254 really print
// them (read over D-Bus from a socket unit in the sandbox, the same on
// both versions), e.g. for
//
//	ListenStream=%t/ü.sock
//	ListenStream=@name-ü
//	ListenStream=%t/back\slash.sock
//	ListenStream=@tab<TAB>here
//	ListenStream=%t/q"u'o te.sock
//	ListenStream=@x\x41y
//	ListenStream=@bell<BEL><ESC>[31m
//	ListenFIFO=%t/fifo-ü
//
// (%t = /run/user/1000 here). A unit file line that is not UTF-8 makes the
// unit fail to load on both, so such a name reaches Listen only from
// outside a unit file; the decoder still returns its bytes.
func TestUnixName(t *testing.T) {
	tests := []struct {
		name     string
		l        Listener
		want     string
		abstract bool
		ok       bool
	}{
		{"path with ü", Listener{"Stream", `/run/user/1000/\303\274.sock`}, "/run/user/1000/ü.sock", false, true},
		{"abstract with ü", Listener{"Stream", `@name-\303\274`}, "name-ü", true, true},
		{"backslash", Listener{"Stream", `/run/user/1000/back\\slash.sock`}, `/run/user/1000/back\slash.sock`, false, true},
		{"tab", Listener{"Stream", `@tab\there`}, "tab\there", true, true},
		{"quotes and space", Listener{"Stream", `/run/user/1000/q\"u\'o te.sock`}, `/run/user/1000/q"u'o te.sock`, false, true},
		{"backslash-x kept literal by the unit parser", Listener{"Stream", `@x\\x41y`}, `x\x41y`, true, true},
		{"control bytes", Listener{"Stream", `@bell\a\033[31m`}, "bell\a\x1b[31m", true, true},
		{"nul in an abstract name", Listener{"Datagram", `@a\000b`}, "a\x00b", true, true},
		{"not utf-8", Listener{"SequentialPacket", `/run/lat\351.sock`}, "/run/lat\xe9.sock", false, true},
		{"plain path", Listener{"Stream", "/run/demo.sock"}, "/run/demo.sock", false, true},
		{"inet", Listener{"Stream", "127.0.0.1:8080"}, "", false, false},
		{"port only", Listener{"Datagram", "53"}, "", false, false},
		{"fifo path is not escaped", Listener{"FIFO", "/run/user/1000/fifo-ü"}, "", false, false},
		{"netlink", Listener{"Netlink", "route 0"}, "", false, false},
		{"bad escape", Listener{"Stream", `/run/\q`}, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, abstract, ok := tt.l.UnixName()
			if got != tt.want || abstract != tt.abstract || ok != tt.ok {
				t.Errorf("UnixName(%q) = %q, %v, %v; want %q, %v, %v", tt.l.Address, got, abstract, ok, tt.want, tt.abstract, tt.ok)
			}
		})
	}
}

// FuzzDecodeListen: any unix name, printed as systemd prints it (cescape,
// "@" for abstract), decodes to exactly its bytes.
func FuzzDecodeListen(f *testing.F) {
	for _, s := range []string{"/run/ü.sock", "name-ü", `back\slash`, "a\x00b", "\xff", "tab\there"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, name string, abstract bool) {
		addr := cescape.Escape(name)
		if abstract {
			addr = "@" + addr
		} else if len(name) == 0 || name[0] != '/' {
			addr = "/" + addr
			name = "/" + name
		}
		got, gotAbstract, ok := Listener{Type: "Stream", Address: addr}.UnixName()
		if !ok || got != name || gotAbstract != abstract {
			t.Fatalf("UnixName(%q) = %q, %v, %v; want %q, %v", addr, got, gotAbstract, ok, name, abstract)
		}
	})
}
