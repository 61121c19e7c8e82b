package traffic

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer speaks the demo protocol; reply decides what to answer for
// the n-th line (1-based) of a connection, and whether to keep it open.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	reply func(n uint64, line string) (answer string, keep bool)
}

func newEchoServer(t *testing.T, reply func(n uint64, line string) (string, bool)) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, reply: reply}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for n := uint64(1); ; n++ {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					answer, keep := s.reply(n, line[:len(line)-1])
					if answer != "" {
						fmt.Fprint(c, answer)
					}
					if !keep {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func proper(n uint64, line string) (string, bool) {
	return fmt.Sprintf("777 %d %s\n", n, line), true
}

func TestNewRejectsNonLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{"127.0.0.1:8001", false},
		{"127.3.2.1:8001", false},
		{"[::1]:8001", false},
		{"10.0.0.1:8001", true},
		{"0.0.0.0:8001", true},
		{"[::]:8001", true},
		{"localhost:8001", true},
		{"example.com:80", true},
		{"127.0.0.1", true},
		{"127.0.0.1:http", true},
		{"127.0.0.1:70000", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			_, err := New(Config{Addr: tt.addr, Conns: 1})
			if (err != nil) != tt.wantErr {
				t.Errorf("New(%q) error = %v, want error: %v", tt.addr, err, tt.wantErr)
			}
		})
	}
	if _, err := New(Config{Addr: "127.0.0.1:1", Conns: 0}); err == nil {
		t.Error("New with 0 connections succeeded")
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		in        string
		wantPID   int
		wantCount uint64
		wantLine  string
		wantOK    bool
	}{
		{"12 3 hello world\n", 12, 3, "hello world", true},
		{"12 3 \n", 12, 3, "", true},
		{"12 3\n", 0, 0, "", false},
		{"x 3 a\n", 0, 0, "", false},
		{"12 -1 a\n", 0, 0, "", false},
		{"0 1 a\n", 0, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			pid, count, line, ok := parseReply(tt.in)
			if pid != tt.wantPID || count != tt.wantCount || line != tt.wantLine || ok != tt.wantOK {
				t.Errorf("parseReply(%q) = %d, %d, %q, %v; want %d, %d, %q, %v",
					tt.in, pid, count, line, ok, tt.wantPID, tt.wantCount, tt.wantLine, tt.wantOK)
			}
		})
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		reply func(n uint64, line string) (string, bool) // nil: nothing listens
		check func(t *testing.T, s Stats)
	}{
		{
			name:  "healthy server",
			reply: proper,
			check: func(t *testing.T, s Stats) {
				if s.Replies < 4 || s.CounterResets != 0 || s.Dropped != 0 || s.Refused != 0 || s.BadReplies != 0 {
					t.Errorf("stats %+v: want replies and no errors", s)
				}
				if s.LastPID != 777 || len(s.PIDs) != 1 || s.PIDs[0] != 777 {
					t.Errorf("pids: last %d, seen %v; want 777", s.LastPID, s.PIDs)
				}
				if s.MaxLatency <= 0 {
					t.Errorf("max latency %v, want > 0", s.MaxLatency)
				}
			},
		},
		{
			name: "nothing listens",
			check: func(t *testing.T, s Stats) {
				if s.Refused < 2 || s.Sent != 0 || s.Connected != 0 {
					t.Errorf("stats %+v: want refusals only", s)
				}
			},
		},
		{
			name: "server closes after two lines",
			reply: func(n uint64, line string) (string, bool) {
				a, _ := proper(n, line)
				return a, n < 2
			},
			check: func(t *testing.T, s Stats) {
				if s.Dropped < 2 || s.CounterResets != 0 || s.Timeouts != 0 {
					t.Errorf("stats %+v: want drops without resets or timeouts", s)
				}
			},
		},
		{
			name: "count restarts at 1",
			reply: func(n uint64, line string) (string, bool) {
				return proper((n-1)%2+1, line)
			},
			check: func(t *testing.T, s Stats) {
				if s.CounterResets < 1 || s.Dropped != 0 {
					t.Errorf("stats %+v: want counter resets", s)
				}
			},
		},
		{
			name: "server never answers",
			reply: func(uint64, string) (string, bool) {
				return "", true
			},
			check: func(t *testing.T, s Stats) {
				if s.Timeouts < 1 || s.Dropped < s.Timeouts || s.Replies != 0 {
					t.Errorf("stats %+v: want timeouts counted as drops", s)
				}
			},
		},
		{
			name: "garbage replies",
			reply: func(n uint64, line string) (string, bool) {
				return "hello\n", true
			},
			check: func(t *testing.T, s Stats) {
				if s.BadReplies < 1 || s.Replies != 0 {
					t.Errorf("stats %+v: want bad replies", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			if tt.reply != nil {
				addr = newEchoServer(t, tt.reply).ln.Addr().String()
			}
			g, err := New(Config{
				Addr: addr, Conns: 2, Interval: 10 * time.Millisecond,
				ReplyTimeout: 50 * time.Millisecond, RetryInterval: 10 * time.Millisecond,
				MaxDuration: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				// Concurrent snapshots, for the race detector.
				for {
					select {
					case <-done:
						return
					default:
						g.Stats()
						time.Sleep(time.Millisecond)
					}
				}
			}()
			if err := g.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v", err)
			}
			close(done)
			s := g.Stats()
			if s.Connected != 0 {
				t.Errorf("%d connections still counted after Run", s.Connected)
			}
			tt.check(t, s)
		})
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := newEchoServer(t, proper)
	g, err := New(Config{Addr: srv.ln.Addr().String(), Conns: 3, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	// Cancel mid-traffic: every connection up and answered.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if s := g.Stats(); s.Connected == 3 && s.Replies >= 3 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("stats %+v after 10s: want 3 connections answered", s)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if s := g.Stats(); s.Dropped != 0 || s.Replies == 0 {
		t.Errorf("stats %+v: a cancel must not count as a drop", s)
	}
}
