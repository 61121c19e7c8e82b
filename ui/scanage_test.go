package ui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// TestHeaderScanAgeIsTheLastScan: the header's "scan … ago" is the age of
// the last rescan, also when it saw the picture unchanged (an Update
// without a picture), not of the last change; a rescan that saw it
// unchanged also ends a scan error.
func TestHeaderScanAgeIsTheLastScan(t *testing.T) {
	tests := []struct {
		name string
		msgs []snapshotMsg // after the first picture at t0
		want string
	}{
		{"no rescan since the picture", nil, "1.5s ago"},
		{"a rescan saw it unchanged", []snapshotMsg{{at: t0.Add(1200 * time.Millisecond)}}, "300ms ago"},
		{"a rescan failed, the next saw it unchanged", []snapshotMsg{{err: errors.New("scan /proc: interrupted")}, {at: t0.Add(1400 * time.Millisecond)}}, "100ms ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestModel(newFakeSource(demoSnapshot()), Options{}, 200, 40)
			m = withSnapshot(m, demoSnapshot())
			for _, msg := range tt.msgs {
				m = send(m, msg)
			}
			h := ansi.Strip(m.header.View())
			if !strings.Contains(h, tt.want) {
				t.Errorf("header %q, want %q", h, tt.want)
			}
			if m.header.scanErr != "" {
				t.Errorf("scan error %q still shown after a rescan that worked", m.header.scanErr)
			}
		})
	}
}
