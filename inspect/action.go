package inspect

// ActionResult is how an action on a unit ended (a restart, stop, start,
// reload...): the one result type of the dashboard's sources, the agent
// protocol and the rollout.
type ActionResult struct {
	// Job is the job's id or object path.
	Job string `json:"job,omitempty"`
	// Result is the job result: done, failed, canceled, timeout...
	Result string `json:"result,omitempty"`
	// Message is extra text worth showing the operator (the gap meter's
	// counts, the unit's result).
	Message string `json:"message,omitempty"`
}
