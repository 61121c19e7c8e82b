// Package traffic generates client load for the demo server: it keeps K
// connections, sends a line on each every T, checks the "<pid> <count>
// <line>" replies, and counts refusals, drops and counter resets.
package traffic

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultInterval      = 100 * time.Millisecond
	DefaultReplyTimeout  = 2 * time.Second
	DefaultRetryInterval = 20 * time.Millisecond
	DefaultDialTimeout   = time.Second
)

// maxPIDs bounds Stats.PIDs.
const maxPIDs = 1024

// Config configures a Generator.
type Config struct {
	// Addr is the server's host:port; the host must be a loopback IP
	// literal (127.0.0.0/8 or ::1).
	Addr string
	// Conns is the number of connections to hold (K); at least 1.
	Conns int
	// Interval is the time between lines on one connection (T).
	Interval time.Duration
	// ReplyTimeout bounds the wait for each reply; a connection whose
	// reply is late counts as dropped and is reconnected.
	ReplyTimeout time.Duration
	// RetryInterval is the pause before reconnecting a dropped or refused
	// connection, bounding the retry rate.
	RetryInterval time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// MaxDuration, when positive, stops Run after that long.
	MaxDuration time.Duration
}

// Stats is a snapshot of a Generator's counters.
type Stats struct {
	// Sent counts lines written.
	Sent uint64
	// Replies counts well-formed replies received.
	Replies uint64
	// Refused counts connection attempts refused (ECONNREFUSED).
	Refused uint64
	// DialErrors counts connection attempts that failed otherwise
	// (e.g. timed out).
	DialErrors uint64
	// Dropped counts established connections lost: EOF, reset, write
	// error or reply timeout.
	Dropped uint64
	// Timeouts counts the drops due to a late reply (part of Dropped).
	Timeouts uint64
	// CounterResets counts replies whose count was not the previous
	// count on that connection plus one (the first reply must be 1).
	CounterResets uint64
	// BadReplies counts replies that did not parse or echoed another line.
	BadReplies uint64
	// Connected is the number of connections currently established.
	Connected int
	// MaxLatency is the longest time between a line and its reply.
	MaxLatency time.Duration
	// LastPID is the pid in the most recent reply.
	LastPID int
	// PIDs lists the distinct pids seen in replies, in order of first
	// appearance (at most the first 1024).
	PIDs []int
}

// Generator holds the connections and the counters.
type Generator struct {
	cfg Config

	mu    sync.Mutex
	stats Stats
}

// New validates cfg, fills in defaults and returns a Generator.
func New(cfg Config) (*Generator, error) {
	if err := checkLoopback(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Conns < 1 {
		return nil, fmt.Errorf("traffic: %d connections: want at least 1", cfg.Conns)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = DefaultReplyTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	return &Generator{cfg: cfg}, nil
}

// checkLoopback accepts only host:port with a loopback IP literal.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("traffic: address %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("traffic: address %q: bad port %q", addr, port)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("traffic: address %q: only loopback IP addresses (127.0.0.0/8, ::1) are allowed", addr)
	}
	return nil
}

// Run drives the connections until ctx ends or MaxDuration passes, then
// closes them. It returns nil on such a stop.
func (g *Generator) Run(ctx context.Context) error {
	if g.cfg.MaxDuration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.MaxDuration)
		defer cancel()
	}
	var wg sync.WaitGroup
	for i := range g.cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.worker(ctx, i)
		}()
	}
	wg.Wait()
	return nil
}

// Stats returns a snapshot of the counters; it is safe to call while Run
// is running.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.PIDs = append([]int(nil), g.stats.PIDs...)
	return s
}

func (g *Generator) update(f func(*Stats)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.stats)
}

// worker keeps one connection up until ctx ends.
func (g *Generator) worker(ctx context.Context, idx int) {
	var seq uint64
	dialer := net.Dialer{Timeout: g.cfg.DialTimeout}
	for ctx.Err() == nil {
		conn, err := dialer.DialContext(ctx, "tcp", g.cfg.Addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			g.update(func(s *Stats) {
				if errors.Is(err, syscall.ECONNREFUSED) {
					s.Refused++
				} else {
					s.DialErrors++
				}
			})
			sleep(ctx, g.cfg.RetryInterval)
			continue
		}
		g.update(func(s *Stats) { s.Connected++ })
		err = g.converse(ctx, conn, idx, &seq)
		conn.Close()
		g.update(func(s *Stats) {
			s.Connected--
			if err != nil {
				s.Dropped++
				if isTimeout(err) {
					s.Timeouts++
				}
			}
		})
		if err == nil {
			return // ctx ended
		}
		sleep(ctx, g.cfg.RetryInterval)
	}
}

// converse sends a line every Interval on conn and checks each reply. It
// returns nil when ctx ends, the error that broke the connection otherwise.
func (g *Generator) converse(ctx context.Context, conn net.Conn, idx int, seq *uint64) error {
	// Unblock a pending read or write when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReader(conn)
	var prev uint64
	ticker := time.NewTicker(g.cfg.Interval)
	defer ticker.Stop()
	for {
		*seq++
		line := fmt.Sprintf("c%d-m%d", idx, *seq)
		conn.SetWriteDeadline(time.Now().Add(g.cfg.ReplyTimeout))
		sent := time.Now()
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			return ctxOr(ctx, fmt.Errorf("write to %s: %w", g.cfg.Addr, err))
		}
		g.update(func(s *Stats) { s.Sent++ })
		conn.SetReadDeadline(sent.Add(g.cfg.ReplyTimeout))
		reply, err := r.ReadString('\n')
		if err != nil {
			return ctxOr(ctx, fmt.Errorf("read reply from %s: %w", g.cfg.Addr, err))
		}
		latency := time.Since(sent)
		pid, count, echoed, ok := parseReply(reply)
		g.update(func(s *Stats) {
			if !ok || echoed != line {
				s.BadReplies++
				return
			}
			s.Replies++
			if count != prev+1 {
				s.CounterResets++
			}
			s.MaxLatency = max(s.MaxLatency, latency)
			s.LastPID = pid
			if len(s.PIDs) < maxPIDs && !slices.Contains(s.PIDs, pid) {
				s.PIDs = append(s.PIDs, pid)
			}
		})
		if ok {
			prev = count
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// ctxOr returns nil when ctx has ended (the error is ours), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// parseReply splits "<pid> <count> <line>\n".
func parseReply(s string) (pid int, count uint64, line string, ok bool) {
	s = strings.TrimSuffix(s, "\n")
	pidStr, rest, ok1 := strings.Cut(s, " ")
	countStr, line, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return 0, 0, "", false
	}
	pid, err1 := strconv.Atoi(pidStr)
	count, err2 := strconv.ParseUint(countStr, 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, 0, "", false
	}
	return pid, count, line, true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
