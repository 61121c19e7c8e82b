// Package server is the demo server that shows what socket activation does:
// a line-echo service run as `fdtop demo-server` in four modes (plain,
// activated, handoff, stored-listener) under the demo's systemd units.
//
// Protocol: each line a client sends is answered with one line
// "<pid> <count> <line>", count being the connection's message number
// (1 for the first); a trailing "\r" is dropped, so nc and telnet work.
//
// Handoff model: a running instance keeps nothing in the file descriptor
// store. On SIGTERM it stops reading, sends every client connection with
// FDSTORE=1 and FDNAME=conn-<id>, then a memfd ("fdtop-state") with
// FDNAME=state holding a Handoff (per-connection message count, bytes read
// but not yet processed, reply bytes not yet written), waits on BARRIER=1
// and exits 0. The next instance finds them after the socket unit's
// listener in LISTEN_FDS/LISTEN_FDNAMES, restores the connections and
// counters, and sends FDSTOREREMOVE=1 for every entry it took, so that a
// client closing later leaves nothing stale behind; they go back in on
// the next stop. The listener is recognised by SO_ACCEPTCONN, not by name.
//
// Stored-listener model: no socket unit. An instance started without a
// listener named "listener" in LISTEN_FDNAMES binds --listen itself and
// sends it at once with FDSTORE=1 and FDNAME=listener; every later instance
// takes it from there (and never removes it: the store entry is what keeps
// the listener open between instances). Its clients are dropped on stop.
package server
