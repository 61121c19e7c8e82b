// Package oracle is fdtop's truth oracle (issue 20): its test plays seeded
// random sequences of real operations on the demo in real sandboxed
// managers, runs fdtop's live model alongside, and checks every claim it
// makes against ground truth that shares none of fdtop's code: the
// manager (systemctl show), the kernel (ss, /proc read by a few lines of
// its own) and the demo's servers and clients (their logs and counters).
//
// CI runs a fixed set of seeds (TestOracle); tools/oracle.sh runs fresh
// seeds of any length.
package oracle
