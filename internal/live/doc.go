// Package live is fdtop's in-process live model of one systemd manager:
// the connection to the manager and the kernel (Connect), the one Watcher
// every live model runs (NewWatcher), the dashboard's ui.Source (Source,
// with its actions, log and doctor), the model an agent serves
// (AgentModel) and the doctor's gathering (Doctor).
//
// It sits above ui (its sources implement ui's contract) and below cmd; it
// never imports the fleet, nor the demo.
package live
