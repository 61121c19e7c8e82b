package inspect

import "testing"

// TestDescribeWords: the words of events whose wording depends on what is
// known: a job whose type was gone before it was read, and a connection
// that stayed where it was (an Accept=yes instance) or moved.
func TestDescribeWords(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    Event
		want string
	}{
		{"job with its type", Event{Type: EventJobStarted, Job: "restart", JobID: 12}, "restart job 12 queued"},
		{"job type unknown", Event{Type: EventJobStarted, JobID: 12}, "job 12 queued"},
		{"job done, type unknown", Event{Type: EventJobFinished, JobID: 12, Result: "done"}, "job 12 done"},
		{"job done", Event{Type: EventJobFinished, Job: "stop", JobID: 12, Result: "done"}, "stop job 12 done"},
		{"moved to another process", Event{Type: EventConnectionPreserved, Via: "process", Detail: "10.0.0.1:5", PrevPID: 4, PrevFD: 9, PID: 7, FD: 5},
			"connection from 10.0.0.1:5 preserved: pid 4 fd 9 → pid 7 fd 5"},
		{"kept where it was", Event{Type: EventConnectionPreserved, Via: "process", Detail: "10.0.0.1:5", PrevPID: 82, PrevFD: 0, PID: 82, FD: 0},
			"connection from 10.0.0.1:5 kept: still held by pid 82 fd 0"},
		{"listener kept by a socket unit", Event{Type: EventListenerKept, Detail: "Stream 127.0.0.1:80", Inode: 7}, "listener Stream 127.0.0.1:80 kept (inode 7)"},
		{"listener kept through the store", Event{Type: EventListenerKept, Detail: "Stream 127.0.0.1:80", Inode: 7, Via: "fdstore", Name: "listener"},
			`listener Stream 127.0.0.1:80 kept (from the fd store) as "listener" (inode 7)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Describe(tt.e); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}
