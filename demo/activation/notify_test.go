package activation

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fdtop/fdtop/demo/activation/activationtest"
)

func TestNotifierFromEnvMissing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	if _, err := NotifierFromEnv(); !errors.Is(err, ErrNoNotifySocket) {
		t.Errorf("NotifierFromEnv error = %v, want ErrNoNotifySocket", err)
	}
	if err := Notify("READY=1"); !errors.Is(err, ErrNoNotifySocket) {
		t.Errorf("Notify error = %v, want ErrNoNotifySocket", err)
	}
}

func TestNewNotifierAddresses(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{"path", "/run/user/1000/systemd/notify", false},
		{"abstract", "@/org/freedesktop/systemd1/notify/123", false},
		{"empty", "", true},
		{"relative path", "run/notify", true},
		{"bare at sign", "@", true},
		{"vsock", "vsock:2:1234", true},
		{"too long", "/" + strings.Repeat("x", 200), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNotifier(tt.addr)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewNotifier(%q) error = %v, want error: %v", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestValidateFDName(t *testing.T) {
	tests := []struct {
		name    string
		fdname  string
		wantErr bool
	}{
		{"simple", "conn-1", false},
		{"printable punctuation", "a b=c;d/e@f~", false},
		{"255 characters", strings.Repeat("n", 255), false},
		{"256 characters", strings.Repeat("n", 256), true},
		{"empty", "", true},
		{"colon", "a:b", true},
		{"newline", "a\nFDSTOREREMOVE=1", true},
		{"tab", "a\tb", true},
		{"DEL", "a\x7fb", true},
		{"non-ASCII", "conn-é", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFDName(tt.fdname)
			if (err != nil) != tt.wantErr {
				t.Errorf("ValidateFDName(%q) error = %v, want error: %v", tt.fdname, err, tt.wantErr)
			}
		})
	}
}

// TestNotifyRoundTrip sends a message with an fd to a plain SOCK_DGRAM
// listener and checks the text and the descriptor that arrive.
func TestNotifyRoundTrip(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		name := "path"
		if abstract {
			name = "abstract"
		}
		t.Run(name, func(t *testing.T) {
			addr := t.TempDir() + "/notify"
			if abstract {
				addr = "@fdtop-notify-test-" + t.Name()
			}
			rcv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()

			n, err := NewNotifier(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.StoreFDs("pipe-write", int(w.Fd())); err != nil {
				t.Fatalf("StoreFDs: %v", err)
			}

			rcv.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			oob := make([]byte, unix.CmsgSpace(4*4))
			nb, oobn, _, _, err := rcv.ReadMsgUnix(buf, oob)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(buf[:nb]), "FDSTORE=1\nFDNAME=pipe-write"; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
			cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(cmsgs) != 1 {
				t.Fatalf("control messages = %v, %v; want one", cmsgs, err)
			}
			fds, err := unix.ParseUnixRights(&cmsgs[0])
			if err != nil || len(fds) != 1 {
				t.Fatalf("rights = %v, %v; want one fd", fds, err)
			}
			got := os.NewFile(uintptr(fds[0]), "received")
			defer got.Close()
			// The received fd is the pipe's write end: what we write to it
			// comes out of r.
			if _, err := got.Write([]byte("x")); err != nil {
				t.Fatalf("write to received fd: %v", err)
			}
			one := make([]byte, 1)
			if _, err := r.Read(one); err != nil || one[0] != 'x' {
				t.Errorf("read back %q, %v", one, err)
			}
		})
	}
}

func TestNotifyNoListener(t *testing.T) {
	n, err := NewNotifier(t.TempDir() + "/nobody")
	if err != nil {
		t.Fatal(err)
	}
	err = n.Ready()
	if err == nil || !strings.Contains(err.Error(), "READY=1") {
		t.Errorf("Ready to a missing socket: error = %v, want one naming the message", err)
	}
}

func TestNotifyHelpers(t *testing.T) {
	m, err := activationtest.NewManager(t.TempDir(), activationtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n, err := NewNotifier(m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	steps := []struct {
		name      string
		send      func() error
		wantErr   bool
		wantStore []string
	}{
		{name: "ready", send: n.Ready, wantStore: []string{}},
		{name: "status", send: func() error { return n.Status("serving 3 clients") }, wantStore: []string{}},
		{name: "status with newline", send: func() error { return n.Status("a\nREADY=1") }, wantErr: true, wantStore: []string{}},
		{name: "store", send: func() error { return n.StoreFDs("r", int(r.Fd())) }, wantStore: []string{"r"}},
		{name: "store two", send: func() error { return n.StoreFDs("w", int(w.Fd()), int(w.Fd())) }, wantStore: []string{"r", "w", "w"}},
		{name: "store bad name", send: func() error { return n.StoreFDs("a:b", int(r.Fd())) }, wantErr: true, wantStore: []string{"r", "w", "w"}},
		{name: "store nothing", send: func() error { return n.StoreFDs("x") }, wantErr: true, wantStore: []string{"r", "w", "w"}},
		{name: "remove", send: func() error { return n.RemoveFDs("w") }, wantStore: []string{"r"}},
		{name: "remove bad name", send: func() error { return n.RemoveFDs("") }, wantErr: true, wantStore: []string{"r"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.send()
			if (err != nil) != st.wantErr {
				t.Fatalf("error = %v, want error: %v", err, st.wantErr)
			}
			// The barrier orders us after the manager processed the message.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Barrier(ctx); err != nil {
				t.Fatalf("Barrier: %v", err)
			}
			if got := m.Store(); !reflect.DeepEqual(got, st.wantStore) {
				t.Errorf("store (-want +got):\n-%q\n+%q", st.wantStore, got)
			}
		})
	}
	if err := m.Err(); err != nil {
		t.Error(err)
	}
}

func TestBarrier(t *testing.T) {
	tests := []struct {
		name    string
		hold    bool
		wantErr error
	}{
		{name: "manager answers", hold: false},
		{name: "manager holds the pipe", hold: true, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := activationtest.NewManager(t.TempDir(), activationtest.Options{HoldBarrier: tt.hold})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			n, err := NewNotifier(m.Addr)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = n.Barrier(ctx)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Barrier: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Barrier error = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Barrier took %v", d)
			}
		})
	}
}

func TestBarrierNoListener(t *testing.T) {
	n, err := NewNotifier("@fdtop-no-such-socket-" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Barrier(context.Background()); err == nil {
		t.Error("Barrier to a missing socket succeeded")
	}
}
