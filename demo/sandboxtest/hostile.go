package sandboxtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/activation"
	"github.com/fdtop/fdtop/demo/sandbox"
)

// What the hostile service puts where fdtop reads it: a STATUS= text that
// would set the terminal's title, wipe the screen and turn it red, and a
// process name (comm, settable by any process) with a colour and a bell.
const (
	HostileStatus = "\x1b]0;pwned-title\a\x1b[2J\x1b[31mRED STATUS"
	HostileComm   = "\x1b[31mEVIL\a"
	// HostileArg is an argument of its command line.
	HostileArg = "arg-\x1b]0;cmdline-title\a"
)

// hostileEnv, set in its unit, makes a test binary run as the hostile
// service (see Main) instead of running tests.
const hostileEnv = "FDTOP_TEST_HOSTILE_SERVICE"

// HostileListener is one listener of hostile.socket: as the unit file says
// it (after %t) and as the kernel names it.
type HostileListener struct {
	// Type is the Listen type: Stream, Datagram.
	Type string
	// Name is the path, or the abstract name without "@".
	Name string
	// Abstract is set for an abstract name.
	Abstract bool
}

// Hostile is what InstallHostile started.
type Hostile struct {
	// Socket and Service are the unit names.
	Socket, Service string
	// Listeners are the socket unit's listeners, in unit file order.
	Listeners []HostileListener
}

// InstallHostile installs and starts hostile.socket → hostile.service in
// sb. The socket listens on unix names systemd prints C-escaped (a path
// with ü, an abstract name with ü, a path with a backslash, one with quotes
// and a space, an abstract name with a bell and an escape sequence); the
// service is this test binary, which inherits those listeners, sets its
// comm to HostileComm and sends STATUS=HostileStatus.
func InstallHostile(t testing.TB, sb *sandbox.Sandbox) Hostile {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tag := filepath.Base(sb.Dir) // abstract names are host-wide: one set per sandbox
	h := Hostile{Socket: "hostile.socket", Service: "hostile.service", Listeners: []HostileListener{
		{Type: "Stream", Name: filepath.Join(sb.RuntimeDir, "ü.sock")},
		{Type: "Stream", Name: "name-ü-" + tag, Abstract: true},
		{Type: "Stream", Name: filepath.Join(sb.RuntimeDir, `back\slash.sock`)},
		{Type: "Datagram", Name: filepath.Join(sb.RuntimeDir, `q"u'o te.sock`)},
		{Type: "Stream", Name: "bell\a\x1b[31m-" + tag, Abstract: true},
	}}
	var sock strings.Builder
	sock.WriteString("[Socket]\n")
	for _, l := range h.Listeners {
		name := l.Name
		if l.Abstract {
			name = "@" + name
		} else {
			name = "%t/" + filepath.Base(name)
		}
		fmt.Fprintf(&sock, "Listen%s=%s\n", l.Type, name) // the unit parser takes every byte as it is
	}
	svc := fmt.Sprintf("[Service]\nType=notify\nEnvironment=%s=1\nExecStart=%s \"%s\"\n", hostileEnv, self,
		strings.NewReplacer("\x1b", `\033`, "\a", `\a`).Replace(HostileArg))
	for name, content := range map[string]string{h.Socket: sock.String(), h.Service: svc} {
		if err := sb.WriteUnit(name, content); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"daemon-reload"}, {"start", h.Socket}, {"start", h.Service}} {
		if _, err := sb.Systemctl(ctx, args...); err != nil {
			t.Fatalf("hostile units: %v", err)
		}
	}
	return h
}

// hostileService runs as hostile.service when Main finds hostileEnv set:
// it renames itself, sends its status and readiness, and waits for its
// stop. The listeners it inherits stay open (Go closes nothing it did not
// open).
func hostileService() int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// /proc/self/comm is the thread group leader's name, what
	// /proc/PID/comm shows (prctl(PR_SET_NAME) would rename only the
	// calling thread, which need not be the leader in Go).
	if err := os.WriteFile("/proc/self/comm", []byte(HostileComm), 0); err != nil {
		fmt.Fprintf(os.Stderr, "hostile service: set comm: %v\n", err)
		return 1
	}
	n, err := activation.NotifierFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostile service: %v\n", err)
		return 1
	}
	if err := n.Status(HostileStatus); err != nil {
		fmt.Fprintf(os.Stderr, "hostile service: %v\n", err)
		return 1
	}
	if err := n.Ready(); err != nil {
		fmt.Fprintf(os.Stderr, "hostile service: %v\n", err)
		return 1
	}
	<-sig
	return 0
}
