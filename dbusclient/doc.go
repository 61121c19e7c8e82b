// Package dbusclient is fdtop's view of systemd over D-Bus: socket units and
// the services they start, fd stores, live events, and unit actions.
//
// A Client holds a private connection (never the shared bus connection) to
// the system or user manager, reconnects by itself when the manager re-execs
// or the bus goes away, and reads many units at once by pipelining
// Properties.Get calls on a second, read-only connection instead of paying
// one round trip per property. Everything handed to callers is a typed
// struct; D-Bus variants never leave the package.
package dbusclient
