package ui

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// TestJobControlDropsQueuedSuspends: requests to suspend that reach the
// event loop while a suspension runs (a second Ctrl-Z read with the first,
// a SIGTSTP taken before) or after it (a SIGTSTP taken before it started)
// are dropped, as SIGCONT discards pending stop signals; after the resume,
// Ctrl-Z and SIGTSTP suspend again. The end-to-end check is
// TestSuspendResume in cmd/fdtop.
func TestJobControlDropsQueuedSuspends(t *testing.T) {
	jc := &jobControl{tstp: make(chan os.Signal, 1)}
	// A suspension ignores SIGTSTP until its resume: this process's too.
	t.Cleanup(func() { signal.Reset(syscall.SIGTSTP) })
	ctrlZ := tea.KeyMsg{Type: tea.KeyCtrlZ}
	isExec := func(msg tea.Msg) bool {
		// bubbletea's execMsg is unexported: recognise it by its type name.
		return msg != nil && fmt.Sprintf("%T", msg) == "tea.execMsg"
	}
	steps := []struct {
		name string
		msg  tea.Msg
		want string // "exec", "dropped", "mouse", "passed"
	}{
		{"Ctrl-Z", ctrlZ, "exec"},
		{"a second Ctrl-Z read with the first", ctrlZ, "dropped"},
		{"a SIGTSTP taken before the first, arriving meanwhile", suspendRequest{state: 0}, "dropped"},
		{"a key", tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("j")}, "passed"},
		{"the resume", resumedMsg{}, "mouse"},
		{"a SIGTSTP taken before the first, arriving after its resume", suspendRequest{state: 0}, "dropped"},
		{"Ctrl-Z after the resume", ctrlZ, "exec"},
		{"its resume", resumedMsg{}, "mouse"},
		{"SIGTSTP after the resume", suspendRequest{state: 4}, "exec"},
	}
	suspended := false
	for _, st := range steps {
		got := jc.filter(nil, st.msg)
		var kind string
		switch {
		case got == nil:
			kind = "dropped"
		case isExec(got):
			kind = "exec"
		case fmt.Sprintf("%T", got) == fmt.Sprintf("%T", tea.EnableMouseCellMotion()):
			kind = "mouse"
		case fmt.Sprintf("%#v", got) == fmt.Sprintf("%#v", st.msg):
			kind = "passed"
		default:
			kind = fmt.Sprintf("%T", got)
		}
		if kind != st.want {
			t.Errorf("%s: filter gave %s, want %s", st.name, kind, st.want)
		}
		// From a suspension's start to its resume the kernel drops SIGTSTP.
		switch kind {
		case "exec":
			suspended = true
		case "mouse":
			suspended = false
		}
		if got := signal.Ignored(syscall.SIGTSTP); got != suspended {
			t.Errorf("%s: SIGTSTP ignored = %v, want %v", st.name, got, suspended)
		}
	}
}
