package dbusclient

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// JobResult is how a job ended, as the JobRemoved signal says.
type JobResult string

// Job results. JobUnknown means the job ended while the client was
// disconnected and the unit's state did not tell how.
const (
	JobDone       JobResult = "done"
	JobCanceled   JobResult = "canceled"
	JobTimeout    JobResult = "timeout"
	JobFailed     JobResult = "failed"
	JobDependency JobResult = "dependency"
	JobSkipped    JobResult = "skipped"
	JobInvalid    JobResult = "invalid"
	JobUnknown    JobResult = "unknown"
)

// Start starts unit (job mode replace) and waits for the job to finish.
// Cancelling ctx stops the wait, not the job.
func (c *Client) Start(ctx context.Context, unit string) (JobResult, error) {
	return c.runJob(ctx, "start", "StartUnit", unit)
}

// Stop stops unit and waits for the job to finish.
func (c *Client) Stop(ctx context.Context, unit string) (JobResult, error) {
	return c.runJob(ctx, "stop", "StopUnit", unit)
}

// Restart restarts unit and waits for the job to finish.
func (c *Client) Restart(ctx context.Context, unit string) (JobResult, error) {
	return c.runJob(ctx, "restart", "RestartUnit", unit)
}

// Reload reloads unit and waits for the job to finish.
func (c *Client) Reload(ctx context.Context, unit string) (JobResult, error) {
	return c.runJob(ctx, "reload", "ReloadUnit", unit)
}

// TryRestart restarts unit if it is running and waits for the job.
func (c *Client) TryRestart(ctx context.Context, unit string) (JobResult, error) {
	return c.runJob(ctx, "try-restart", "TryRestartUnit", unit)
}

// runJob queues a job and waits for its JobRemoved. A result other than
// done comes with a *JobFailedError carrying the unit's Result property.
func (c *Client) runJob(ctx context.Context, op, method, unit string) (JobResult, error) {
	conn, _, err := c.current(ctx)
	if err != nil {
		return "", &UnitError{Op: op, Unit: unit, Err: err}
	}
	var job dbus.ObjectPath
	err = conn.Object(busName, managerPath).CallWithContext(ctx, ifaceManager+"."+method, 0, unit, "replace").Store(&job)
	if err != nil {
		return "", unitErr(op, unit, err)
	}
	w := c.jobs.wait(job, op, unit)
	var jr JobRemoved
	select {
	case jr = <-w.ch:
	case <-ctx.Done():
		c.jobs.forget(job)
		return "", &UnitError{Op: op, Unit: unit, Err: fmt.Errorf("waiting for job %s: %w", job, ctx.Err())}
	case <-c.closed:
		return "", &UnitError{Op: op, Unit: unit, Err: ErrClosed}
	}
	if jr.Result == JobUnknown {
		jr.Result = c.guessResult(ctx, op, unit)
	}
	if jr.Result == JobDone {
		return JobDone, nil
	}
	return jr.Result, &JobFailedError{Op: op, Unit: unit, Result: jr.Result, UnitResult: c.unitResult(ctx, unit)}
}

// unitResult reads the Result property of a loaded service or socket.
func (c *Client) unitResult(ctx context.Context, unit string) string {
	iface := ifaceService
	if strings.HasSuffix(unit, ".socket") {
		iface = ifaceSocket
	} else if !strings.HasSuffix(unit, ".service") {
		return ""
	}
	st, err := c.unitState(ctx, unit)
	if err != nil {
		return ""
	}
	var result string
	cl := getProp(st.Path, iface, "Result")
	if c.call1(ctx, cl) != nil || cl.storeProp(&result) != nil {
		return ""
	}
	return result
}

// guessResult judges a job that ended while disconnected by the unit's
// state now.
func (c *Client) guessResult(ctx context.Context, op, unit string) JobResult {
	st, err := c.unitState(ctx, unit)
	if err != nil {
		if op == "stop" {
			return JobDone // unloaded: stopped and garbage-collected
		}
		return JobUnknown
	}
	switch {
	case st.ActiveState == "failed":
		return JobFailed
	case op == "stop" && st.ActiveState == "inactive":
		return JobDone
	case op != "stop" && (st.ActiveState == "active" || st.ActiveState == "reloading"):
		return JobDone
	}
	return JobUnknown
}

// jobTracker matches JobRemoved signals with the actions waiting for them.
// A JobRemoved may be read before the reply that names its job, so recent
// ones are kept for a while.
type jobTracker struct {
	mu      sync.Mutex
	waiters map[dbus.ObjectPath]*jobWaiter
	recent  map[dbus.ObjectPath]JobRemoved
	order   []dbus.ObjectPath // recent, oldest first
}

type jobWaiter struct {
	ch       chan JobRemoved // buffered 1
	op, unit string
}

const maxRecentJobs = 512

func (t *jobTracker) init() {
	t.waiters = map[dbus.ObjectPath]*jobWaiter{}
	t.recent = map[dbus.ObjectPath]JobRemoved{}
}

func (t *jobTracker) finished(jr JobRemoved) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w, ok := t.waiters[jr.Job]; ok {
		delete(t.waiters, jr.Job)
		w.ch <- jr
		return
	}
	t.recent[jr.Job] = jr
	t.order = append(t.order, jr.Job)
	if len(t.order) > maxRecentJobs {
		delete(t.recent, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *jobTracker) wait(job dbus.ObjectPath, op, unit string) *jobWaiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := &jobWaiter{ch: make(chan JobRemoved, 1), op: op, unit: unit}
	if jr, ok := t.recent[job]; ok {
		delete(t.recent, job)
		w.ch <- jr
		return w
	}
	t.waiters[job] = w
	return w
}

func (t *jobTracker) forget(job dbus.ObjectPath) {
	t.mu.Lock()
	delete(t.waiters, job)
	t.mu.Unlock()
}

// recheck runs after a reconnect: a job whose object is gone finished while
// the client was away, and its waiter gets JobUnknown.
func (t *jobTracker) recheck(c *Client) {
	t.mu.Lock()
	jobs := make([]dbus.ObjectPath, 0, len(t.waiters))
	for job := range t.waiters {
		jobs = append(jobs, job)
	}
	t.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	calls := make([]*call, len(jobs))
	for i, job := range jobs {
		calls[i] = getProp(job, ifaceJob, "Id")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.run(ctx, calls) != nil {
		return
	}
	for i, cl := range calls {
		if cl.err != nil && dbusErrorName(cl.err) == errNameUnknownObj {
			t.finished(JobRemoved{Job: jobs[i], Result: JobUnknown})
		}
	}
}

func (t *jobTracker) closeAll() {
	t.mu.Lock()
	t.waiters = map[dbus.ObjectPath]*jobWaiter{}
	t.mu.Unlock()
}
