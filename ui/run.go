package ui

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	tea "github.com/charmbracelet/bubbletea"
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
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithMouseCellMotion(), tea.WithContext(ctx))
	_, err = p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}
