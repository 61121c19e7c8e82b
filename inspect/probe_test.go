package inspect

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestProbeTarget(t *testing.T) {
	tests := []struct {
		listen  string
		want    string
		wantErr bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", false},
		{"0.0.0.0:80", "127.0.0.1:80", false},
		{"[::]:443", "[::1]:443", false},
		{"8080", "[::1]:8080", false},
		{"[::1]:9", "[::1]:9", false},
		{"[::ffff:0.0.0.0]:7", "127.0.0.1:7", false},
		{"10.0.0.1:80", "", true},
		{"192.168.1.1:80", "", true},
		{"/run/web.sock", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			got, err := ProbeTarget(tt.listen)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ProbeTarget(%q) error = %v, wantErr %v", tt.listen, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ProbeTarget(%q) = %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
}

func TestProbeCountsRefusedAndAccepted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A port that nothing listens on: take one and close it.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := Probe(ctx, []string{l.Addr().String(), deadAddr}, ProbeConfig{Every: 5 * time.Millisecond, MaxAttempts: 10})
	if res.Attempts != 20 {
		t.Errorf("Attempts = %d, want 20 (10 per target)", res.Attempts)
	}
	if res.Refused != 10 {
		t.Errorf("Refused = %d, want 10", res.Refused)
	}
	if res.WorstConnectMs <= 0 {
		t.Errorf("WorstConnectMs = %v, want > 0", res.WorstConnectMs)
	}
}
