package inspect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProbeConfig bounds the gap meter.
type ProbeConfig struct {
	// Every is the pause between connection attempts to one target
	// (default 10 ms).
	Every time.Duration
	// Max bounds the whole probe (default 30 s), whatever the context says.
	Max time.Duration
	// MaxAttempts bounds the attempts per target (default 3000).
	MaxAttempts int
	// Timeout bounds one connect (default 1 s).
	Timeout time.Duration
	// OnConnect, if set, is given the local address of each connection
	// the probe made (before it closes it): the service sees it as the
	// peer of a connection that is fdtop's own, not a client's.
	OnConnect func(local netip.AddrPort)
	// Settled, if set, is closed when the job being measured has ended:
	// the probe of a target then stops at its first connect that began
	// after that and succeeded (the gap, if there was one, is over).
	Settled <-chan struct{}
}

func (c ProbeConfig) withDefaults() ProbeConfig {
	if c.Every <= 0 {
		c.Every = 10 * time.Millisecond
	}
	if c.Max <= 0 {
		c.Max = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3000
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	return c
}

// ProbeTarget turns a socket unit's Listen address into the loopback address
// the gap meter may connect to: a wildcard address is probed on 127.0.0.1 or
// ::1, a loopback address as it is, anything else is refused (the gap meter
// never sends traffic off this machine).
func ProbeTarget(listen string) (string, error) {
	ap, err := listenAddrPort(listen)
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	addr := ap.Addr()
	switch {
	case addr.IsUnspecified() && addr.Is4():
		addr = netip.MustParseAddr("127.0.0.1")
	case addr.IsUnspecified():
		addr = netip.IPv6Loopback()
	case addr.Is4In6() && addr.Unmap().IsUnspecified():
		addr = netip.MustParseAddr("127.0.0.1")
	case !addr.IsLoopback() && !(addr.Is4In6() && addr.Unmap().IsLoopback()):
		return "", fmt.Errorf("probe %s: not a loopback or wildcard address", listen)
	}
	return netip.AddrPortFrom(addr, ap.Port()).String(), nil
}

// ProbeTargets lists, once each, the loopback addresses the gap meter
// may connect to among the stream listeners given (ProbeTarget).
func ProbeTargets(lists ...[]Listener) []string {
	var out []string
	for _, ls := range lists {
		for _, l := range ls {
			if l.Type != "Stream" {
				continue
			}
			if target, err := ProbeTarget(l.Address); err == nil && !slices.Contains(out, target) {
				out = append(out, target)
			}
		}
	}
	return out
}

// Probe is the gap meter: it connects to each target every cfg.Every until
// ctx ends (or cfg bounds it), closes each connection at once, and counts
// refused and failed attempts and the slowest successful connect.
func Probe(ctx context.Context, targets []string, cfg ProbeConfig) ProbeResult {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Max)
	defer cancel()
	var (
		mu  sync.Mutex
		res ProbeResult
		wg  sync.WaitGroup
	)
	for _, t := range targets {
		wg.Add(1)
		go func(target string) {
			defer wg.Done()
			d := net.Dialer{Timeout: cfg.Timeout}
			if cfg.OnConnect != nil {
				d.Control = bindFirst(cfg.OnConnect)
			}
			tick := time.NewTicker(cfg.Every)
			defer tick.Stop()
			var refusedSince time.Time // the first refused attempt of the current run
			for i := 0; i < cfg.MaxAttempts; i++ {
				settled := isClosed(cfg.Settled)
				start := time.Now()
				c, err := d.DialContext(ctx, "tcp", target)
				took := time.Since(start)
				if ctx.Err() != nil {
					if c != nil {
						c.Close()
					}
					return
				}
				mu.Lock()
				res.Attempts++
				switch {
				case err == nil:
					if ms := float64(took.Microseconds()) / 1000; ms > res.WorstConnectMs {
						res.WorstConnectMs = ms
					}
					if !refusedSince.IsZero() {
						res.RefusedForMs = max(res.RefusedForMs, msBetween(refusedSince, start))
						refusedSince = time.Time{}
					}
				case errors.Is(err, syscall.ECONNREFUSED):
					res.Refused++
					if refusedSince.IsZero() {
						refusedSince = start
					}
					res.RefusedForMs = max(res.RefusedForMs, msBetween(refusedSince, start))
				default:
					res.Failed++
				}
				mu.Unlock()
				if c != nil {
					c.Close()
				}
				if settled && err == nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}(t)
	}
	wg.Wait()
	return res
}

// isClosed reports whether c is closed (never, for nil).
func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// msBetween is the time from a to b in milliseconds (0.1 ms steps).
func msBetween(a, b time.Time) float64 {
	return float64(b.Sub(a).Microseconds()/100) / 10
}

// bindFirst binds each probe socket to the target's own address (a local
// listener's: the address the connection will leave from) and a port the
// kernel picks, and gives that local address to onConnect before it
// connects: a scan that sees the service's end of the connection, however
// soon, finds it already known as fdtop's own. (Told after the connect, a
// scan in between listed a probe as a client.)
func bindFirst(onConnect func(local netip.AddrPort)) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		target, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil // not an address: connect as it is
		}
		var bindErr error
		err = c.Control(func(fd uintptr) {
			ip := target.Addr().Unmap()
			var sa unix.Sockaddr
			if network == "tcp6" {
				sa = &unix.SockaddrInet6{Addr: target.Addr().As16()}
			} else {
				sa = &unix.SockaddrInet4{Addr: ip.As4()}
			}
			if bindErr = unix.Bind(int(fd), sa); bindErr != nil {
				return
			}
			got, err := unix.Getsockname(int(fd))
			if err != nil {
				bindErr = err
				return
			}
			switch a := got.(type) {
			case *unix.SockaddrInet4:
				onConnect(netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))
			case *unix.SockaddrInet6:
				onConnect(netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)))
			}
		})
		if err != nil {
			return err
		}
		if bindErr != nil {
			return fmt.Errorf("bind the probe's socket to %s: %w", target.Addr(), bindErr)
		}
		return nil
	}
}
