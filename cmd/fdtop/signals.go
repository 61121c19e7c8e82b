package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// terminationSignals end every mode of fdtop. This file is their one
// owner: every command cancels its work through the context of
// withSignals, and the dashboard's terminal library runs with its own
// handler off (ui.Run), so no two handlers race over one signal.
var terminationSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// caught records the termination signal that ended a command.
type caught struct {
	mu    sync.Mutex
	sig   syscall.Signal
	again chan struct{} // closed by a second signal
	twice bool
}

// second is closed when a second termination signal arrives: the commands
// that stop gracefully at the first (rollout) cut short at the second.
func (c *caught) second() <-chan struct{} { return c.again }

// signal returns the signal caught, 0 if none.
func (c *caught) signal() syscall.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sig
}

// exit returns the exit status of a command that would otherwise exit with
// code: 128+N after signal N, as shells report a process killed by it
// (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
func (c *caught) exit(code int) int {
	if s := c.signal(); s != 0 {
		return 128 + int(s)
	}
	return code
}

// withSignals returns a context cancelled by the first SIGINT, SIGTERM or
// SIGHUP, what was caught, and the function that stops listening. Signals
// that follow the first are caught too until stop, so a second Ctrl-C
// cannot cut a teardown short; they only close caught.second.
func withSignals(parent context.Context) (context.Context, *caught, func()) {
	ctx, cancel := context.WithCancel(parent)
	c := &caught{again: make(chan struct{})}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, terminationSignals...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case s := <-ch:
				c.mu.Lock()
				if c.sig == 0 {
					c.sig = s.(syscall.Signal)
				} else if !c.twice {
					c.twice = true
					close(c.again)
				}
				c.mu.Unlock()
				cancel()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			wg.Wait()
			cancel()
		})
	}
	return ctx, c, stop
}
