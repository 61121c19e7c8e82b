package ui

import (
	"log"
	"os"
	"sync"
	"time"
)

// frameTrace logs when data arrives and when the first frame showing it
// is rendered, so signal→frame latency can be measured from the debug log
// (FDTOP_DEBUG_LOG). A nil *frameTrace logs nothing.
type frameTrace struct {
	mu       sync.Mutex
	logger   *log.Logger
	rendered uint64
}

func newFrameTrace(l *log.Logger) *frameTrace {
	if l == nil {
		return nil
	}
	return &frameTrace{logger: l}
}

// received logs the arrival of data generation gen. eventTime is when the
// source saw the newest event (zero for snapshots).
func (t *frameTrace) received(gen uint64, kind string, n int, eventTime time.Time) {
	if t == nil {
		return
	}
	now := time.Now()
	if eventTime.IsZero() {
		t.logger.Printf("recv gen=%d kind=%s n=%d recv_ns=%d", gen, kind, n, now.UnixNano())
		return
	}
	t.logger.Printf("recv gen=%d kind=%s n=%d event_ns=%d recv_ns=%d event_to_recv=%s", gen, kind, n, eventTime.UnixNano(), now.UnixNano(), now.Sub(eventTime))
}

// frame logs the render of a frame showing data up to gen, once per gen.
func (t *frameTrace) frame(gen uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen <= t.rendered {
		return
	}
	t.rendered = gen
	t.logger.Printf("frame gen=%d frame_ns=%d", gen, time.Now().UnixNano())
}

// flushed logs a write of the renderer to the terminal: the frame View
// drew last reaching the screen (bubbletea writes it at its next tick, if
// it changed).
func (t *frameTrace) flushed() {
	if t == nil {
		return
	}
	t.logger.Printf("flush flush_ns=%d", time.Now().UnixNano())
}

// traceOutput is the terminal with every write logged (flushed), so that
// a measurement ends where a person sees the frame. It stays a terminal
// file for bubbletea (Fd, Read, Close are the file's).
type traceOutput struct {
	*os.File
	t *frameTrace
}

func (o traceOutput) Write(b []byte) (int, error) {
	n, err := o.File.Write(b)
	o.t.flushed()
	return n, err
}
