package inspect

import (
	"context"
	"net"
	"net/netip"
	"sync"
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

// liveAndDead returns a loopback address that accepts (and closes) every
// connection until the test ends, and one that nothing listens on.
func liveAndDead(t *testing.T) (live, dead string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
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
	d, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead = d.Addr().String()
	d.Close()
	return l.Addr().String(), dead
}

func TestProbeCountsRefusedAndAccepted(t *testing.T) {
	live, dead := liveAndDead(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := Probe(ctx, []string{live, dead}, ProbeConfig{Every: 5 * time.Millisecond, MaxAttempts: 10})
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

// TestProbeRefusedFor: a target that refuses for a while and then listens
// again has the time it refused measured, from its first refused connect
// to the first that succeeded after (RefusedForMs); one that listened
// throughout has none.
func TestProbeRefusedFor(t *testing.T) {
	// A port nothing listens on yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var (
		mu       sync.Mutex
		attempts int
		relisten = make(chan struct{})
		enough   = make(chan struct{})
	)
	cfg := ProbeConfig{Every: 2 * time.Millisecond, OnConnect: func(netip.AddrPort) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		switch attempts {
		case 5: // four refused: listen again
			close(relisten)
		case 15: // ten more, at least one of them after the listen
			close(enough)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-relisten
		// Race: the attempt that told us may connect before this
		// listen; only the ones after count as successes.
		l2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen on %s again: %v", addr, err)
			cancel()
			return
		}
		defer l2.Close()
		go func() {
			for {
				c, err := l2.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		<-enough
		cancel()
	}()
	start := time.Now()
	res := Probe(ctx, []string{addr}, cfg)
	took := time.Since(start)
	if res.Refused < 4 || res.Refused >= res.Attempts {
		t.Fatalf("probe %+v: want at least 4 refused, then successes", res)
	}
	if res.RefusedForMs <= 0 || res.RefusedForMs > float64(took.Microseconds())/1000 {
		t.Errorf("RefusedForMs = %v, want > 0 and within the probe's %v", res.RefusedForMs, took)
	}
	// Listening throughout: nothing refused, no time measured.
	l3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	go func() {
		for {
			c, err := l3.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	res = Probe(context.Background(), []string{l3.Addr().String()}, ProbeConfig{Every: time.Millisecond, MaxAttempts: 5})
	if res.Refused != 0 || res.RefusedForMs != 0 || res.Attempts != 5 {
		t.Errorf("probe of a listener %+v: want 5 attempts, none refused, no time", res)
	}
}

// TestProbeSettled: once Settled is closed, a target that answers is
// probed no more (its first connect begun after that and accepted is the
// last), while one that refuses goes on until it answers or the probe
// ends; before Settled, the probe goes on.
func TestProbeSettled(t *testing.T) {
	live, dead := liveAndDead(t)
	settled := make(chan struct{})
	done := make(chan ProbeResult)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := ProbeConfig{Every: 5 * time.Millisecond, MaxAttempts: 100, Settled: settled}
	go func() { done <- Probe(ctx, []string{live, dead}, cfg) }()
	select {
	case r := <-done:
		t.Fatalf("the probe ended before Settled: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	close(settled)
	r := <-done
	// The live target stopped at once; the dead one ran its 100 attempts.
	if r.Refused != 100 || r.Attempts >= 200 || r.Attempts <= 100 {
		t.Errorf("%+v: want 100 refused (the dead target to the end) and the live one stopped early", r)
	}
}
