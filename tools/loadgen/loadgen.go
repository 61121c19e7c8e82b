// Package loadgen starts a bounded synthetic load for procfs benchmarks: N
// processes each holding M descriptors (TCP loopback connections and a
// listener, UDP sockets, unix socketpairs, pipes, files), about 70% sockets.
//
// The descriptors are created here and handed to /bin/sleep processes as
// inherited descriptors, so each holder costs little memory, exits by itself
// after the hold time, and is killed if the creating process dies.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// MaxProcs and MaxFDs bound a load.
const (
	MaxProcs = 2000
	MaxFDs   = 5000
)

// Load is a running synthetic load.
type Load struct {
	// PIDs are the holder processes.
	PIDs []int
	cmds []*exec.Cmd
	dir  string
	udp  int // UDP sockets bound so far
}

// udpPerAddr bounds the UDP sockets bound to one loopback address: each
// takes a port of the ephemeral range (about 28,000 by default), so a
// large load spreads them over 127.1.0.0/16.
const udpPerAddr = 20000

// Start starts procs holders of fds descriptors each, which exit by
// themselves after hold.
func Start(procs, fds int, hold time.Duration) (*Load, error) {
	if procs <= 0 || procs > MaxProcs || fds < 10 || fds > MaxFDs {
		return nil, fmt.Errorf("loadgen: %d×%d outside 1..%d × 10..%d", procs, fds, MaxProcs, MaxFDs)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(fds+256) {
		rl.Cur = uint64(fds + 256)
		if rl.Max < rl.Cur {
			rl.Max = rl.Cur
		}
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl) // root may raise it; else Start fails below
	}
	dir, err := os.MkdirTemp("", "fdtop-loadgen-")
	if err != nil {
		return nil, err
	}
	l := &Load{dir: dir}
	secs := strconv.Itoa(int(hold.Seconds() + 1))
	for i := 0; i < procs; i++ {
		files, err := l.makeFDs(fds)
		if err != nil {
			l.Stop()
			return nil, fmt.Errorf("loadgen: process %d: %w", i, err)
		}
		cmd := exec.Command("/bin/sleep", secs)
		cmd.ExtraFiles = files
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			l.Stop()
			return nil, fmt.Errorf("loadgen: start holder %d: %w", i, err)
		}
		l.cmds = append(l.cmds, cmd)
		l.PIDs = append(l.PIDs, cmd.Process.Pid)
	}
	return l, nil
}

// makeFDs makes n descriptors as *os.File, about 70% sockets.
func (l *Load) makeFDs(n int) (files []*os.File, err error) {
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			files = nil
		}
	}()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	nl, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln := nl.(*net.TCPListener)
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		return nil, err
	}
	files = append(files, lf)
	path := filepath.Join(l.dir, "data")
	for i := 0; len(files) < n; i++ {
		switch i % 6 {
		case 0, 1: // a TCP connection: both ends
			c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
			if err != nil {
				return files, err
			}
			s, err := ln.AcceptTCP()
			if err != nil {
				c.Close()
				return files, err
			}
			cf, err1 := c.File()
			sf, err2 := s.File()
			c.Close()
			s.Close()
			if err := errors.Join(err1, err2); err != nil {
				return files, err
			}
			files = append(files, cf, sf)
		case 2: // unix socketpair
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return files, err
			}
			files = append(files, os.NewFile(uintptr(fds[0]), "sp0"), os.NewFile(uintptr(fds[1]), "sp1"))
		case 3: // UDP
			ip := net.IPv4(127, 0, 0, 1)
			if a := l.udp / udpPerAddr; a > 0 {
				ip = net.IPv4(127, 1, byte(a>>8), byte(a))
			}
			l.udp++
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
			if err != nil {
				return files, err
			}
			f, err := c.File()
			c.Close()
			if err != nil {
				return files, err
			}
			files = append(files, f)
		case 4: // pipe
			r, w, err := os.Pipe()
			if err != nil {
				return files, err
			}
			files = append(files, r, w)
		case 5: // file
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return files, err
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// Stop kills the holders and removes the load's files.
func (l *Load) Stop() {
	for _, c := range l.cmds {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
	}
	l.cmds, l.PIDs = nil, nil
	os.RemoveAll(l.dir)
}
