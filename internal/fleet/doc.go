// Package fleet reaches remote hosts for fdtop: the OpenSSH transport (one
// ControlMaster per host), the agent started there and how a lost host is
// followed and reconnected (reach, follow, backoff), the dashboard's
// sources on one remote host (RemoteSource) and on several (FleetSource),
// and the rollout engine, which returns each host's outcome (the command
// line maps it to an exit code).
//
// It never imports the live model (internal/live): a local rollout gets
// its model as an agent.Model.
package fleet
