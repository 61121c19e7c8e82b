#!/bin/sh
# idle-cost.sh: what fdtop costs while nothing happens. For the demo (`fdtop
# demo` in tmux, its traffic generators alone, and a dashboard of its own on
# the demo's manager) and for a sandbox manager with UNITS units while
# tools/loadgen holds PROCS×FDS descriptors (the dashboard in tmux, then
# `fdtop watch`): CPU seconds and % of a core of fdtop and of the manager
# (utime+stime from /proc/PID/stat over WINDOW), fdtop's D-Bus calls per
# minute by method, and the manager's sendmsg calls per minute (strace -c,
# in a second window). REF, if given, is a git revision measured the same
# way first (e.g. main, for a before/after). Note `uptime` alongside: the
# figures are CPU seconds, but a loaded machine inflates them.
#
# usage (as root): tools/idle-cost.sh [REF]
#   env: UNITS (1000) PROCS (1000) FDS (100) WINDOW (30s)
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
UNITS=${UNITS:-1000}
PROCS=${PROCS:-1000}
FDS=${FDS:-100}
WINDOW=${WINDOW:-30s}
work=$(mktemp -d /tmp/fdtop-idle-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
go build -o "$work/idle-cost" ./tools/idle-cost

run() { # NAME FDTOP-BINARY
	echo "== $1"
	uptime
	"$work/idle-cost" -fdtop "$2" -units 0 -window "$WINDOW"
	"$work/idle-cost" -fdtop "$2" -units "$UNITS" -procs "$PROCS" -fds "$FDS" -window "$WINDOW"
}

if [ $# -ge 1 ]; then
	mkdir "$work/ref"
	git archive "$1" | tar -x -C "$work/ref"
	(cd "$work/ref" && go build -o "$work/fdtop-ref" ./cmd/fdtop)
	run "$1" "$work/fdtop-ref"
fi
go build -o "$work/fdtop" ./cmd/fdtop
run "$(git describe --always --dirty)" "$work/fdtop"
