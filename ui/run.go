package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/sys/unix"
)

// DebugLogEnv names the environment variable that, set to a path, makes
// the dashboard log to that file: message arrivals and frame renders with
// timestamps, stale replies dropped.
const DebugLogEnv = "FDTOP_DEBUG_LOG"

// debugLogger opens the debug log when DebugLogEnv is set. The returned
// close function is never nil.
func debugLogger() (*log.Logger, func(), error) {
	path := os.Getenv(DebugLogEnv)
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := tea.LogToFile(path, "fdtop ")
	if err != nil {
		return nil, func() {}, fmt.Errorf("open debug log %s: %w", path, err)
	}
	l := log.Default()
	l.SetFlags(log.LstdFlags | log.Lmicroseconds)
	return l, func() { f.Close() }, nil
}

// Run runs the dashboard on the terminal (alternate screen, mouse wheel)
// until the operator quits or ctx is done.
func Run(ctx context.Context, src Source, opts Options) error {
	logger, closeLog, err := debugLogger()
	if err != nil {
		return err
	}
	defer closeLog()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := NewModel(src, opts)
	m.ctx = ctx
	m.trace = newFrameTrace(logger)
	if m.trace != nil {
		return runProgram(ctx, m, tea.WithOutput(traceOutput{File: os.Stdout, t: m.trace}))
	}
	return runProgram(ctx, m)
}

// runProgram runs a full-screen model until it quits or ctx is done (then
// it returns nil: ending on ctx is the caller's choice, not an error).
//
// Signals: the caller owns SIGINT, SIGTERM and SIGHUP and ends the program
// through ctx, so bubbletea's own handler is off (two handlers of one
// signal deadlocked: bubbletea's blocked sending its quit message while the
// program, ended by ctx, waited for it). Job control is handled here, as it
// is the terminal's owner: Ctrl-Z and an external SIGTSTP both give the
// terminal back (cooked mode, main screen, cursor shown, mouse off), stop
// the process, and on SIGCONT take the terminal again and redraw.
// frameRate is how many times a second bubbletea's renderer wakes to write
// what View drew last (it wakes on a ticker even when nothing changed). Its
// default of 60 was most of an idle dashboard's cost: on the demo's manager
// 1.4–2.9% of a core at 60, 0.6–0.7% at 10, against `fdtop watch` alone.
// At 20 a frame waits at most 50 ms after View drew it.
const frameRate = 20

// FrameRate is frameRate, for measurements.
const FrameRate = frameRate

func runProgram(ctx context.Context, m tea.Model, more ...tea.ProgramOption) error {
	jc := &jobControl{tstp: make(chan os.Signal, 1)}
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithMouseCellMotion(), tea.WithContext(ctx),
		tea.WithoutSignalHandler(), tea.WithFilter(jc.filter), tea.WithFPS(frameRate)}, more...)...)
	signal.Notify(jc.tstp, syscall.SIGTSTP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-jc.tstp:
				if st := jc.state.Load(); st%2 == 0 {
					p.Send(suspendRequest{state: st})
				}
			case <-done:
				return
			}
		}
	}()
	defer func() {
		// Reset, not Stop: a suspension the program ended in left
		// SIGTSTP ignored.
		signal.Reset(syscall.SIGTSTP)
		close(done)
	}()
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// suspendRequest asks the program to suspend (an external SIGTSTP); state
// is jobControl.state when the signal was taken.
type suspendRequest struct{ state uint64 }

// resumedMsg says the process was continued and owns the terminal again.
type resumedMsg struct{}

// jobControl turns Ctrl-Z and SIGTSTP into a suspension of the program.
//
// What asks to suspend while a suspension runs is dropped, as SIGCONT
// discards pending stop signals, so one `fg` brings the dashboard back
// instead of stopping it again:
//   - SIGTSTP is ignored from a suspension's start until its resume (the
//     kernel drops it; caught, one that came just before the stop would
//     reach the program only after the continue);
//   - a SIGTSTP taken before a suspension started whose request arrives
//     after is dropped by its state;
//   - a second Ctrl-Z read with the first waits in the event loop's queue
//     ahead of the resumedMsg (sent after the continue), while suspended.
type jobControl struct {
	tstp chan os.Signal
	// state is twice the suspensions started, plus one while one runs.
	// Written by the event loop (filter), read by the signal goroutine.
	state atomic.Uint64
}

// filter runs before every Update: a suspension is bubbletea's exec of a
// "command" that stops this process, so bubbletea releases the terminal
// before and restores it (raw mode, alternate screen, a full repaint)
// after; mouse tracking, which the restore leaves off, is switched on again.
func (jc *jobControl) filter(_ tea.Model, msg tea.Msg) tea.Msg {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		if msg.Type == tea.KeyCtrlZ {
			return jc.suspend()
		}
	case suspendRequest:
		if msg.state != jc.state.Load() {
			return nil // a suspension started after the signal came
		}
		return jc.suspend()
	case resumedMsg:
		if jc.state.Load()%2 == 1 {
			jc.state.Add(1)
			signal.Notify(jc.tstp, syscall.SIGTSTP)
		}
		return tea.EnableMouseCellMotion()
	}
	return msg
}

// suspend starts a suspension, or drops the request (nil) while one runs.
func (jc *jobControl) suspend() tea.Msg {
	if jc.state.Load()%2 == 1 {
		return nil
	}
	jc.state.Add(1)
	signal.Ignore(syscall.SIGTSTP)
	return tea.Exec(stopProcess{}, func(error) tea.Msg { return resumedMsg{} })()
}

// stopProcess is the tea.ExecCommand that stops fdtop until it is
// continued in the foreground.
type stopProcess struct{}

func (stopProcess) SetStdin(io.Reader)  {}
func (stopProcess) SetStdout(io.Writer) {}
func (stopProcess) SetStderr(io.Writer) {}

// Run stops the process with SIGSTOP (SIGTSTP is caught by this program,
// so it would not stop it) and returns once continued in the foreground,
// where bubbletea takes the terminal back. Continued in the background
// (`bg`, or `kill %1`, which sends SIGTERM and then SIGCONT) it stops
// again, as a program reading the terminal does: from the background it
// could not put the terminal back without racing the shell for it. A
// termination signal that came meanwhile ends fdtop once it is brought to
// the foreground (`fg`).
func (s stopProcess) Run() error {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	for {
		if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		<-cont
		if foreground() {
			return nil
		}
	}
}

// foreground reports whether this process's group is the terminal's
// foreground group (true when there is no terminal to ask).
func foreground() bool {
	pgrp, err := unix.IoctlGetInt(int(os.Stdin.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return true
	}
	return pgrp == syscall.Getpgrp()
}
