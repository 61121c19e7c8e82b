// Package inspect joins what systemd says (dbusclient) with what the kernel
// holds (procfs) into one Snapshot, and explains restarts as handoffs.
package inspect
