#!/bin/sh
# million.sh — a host with PROCS×FDS descriptors (tools/loadgen: loopback
# only, bounded, every holder killed by PID at the end) and a sandbox
# manager with UNITS units; prints in one run fdtop snapshot with the BPF
# holder pass and with the /proc pass, the readlink floor, lsof, lsfd and
# ss -tuaxnp (each within LIMIT), then the dashboard: time until the units
# are on screen, idle CPU, peak RSS. See tools/million/main.go.
#
# usage (as root): tools/million.sh [PROCS FDS]   (defaults: 1000 1000 = 1M descriptors)
#   env: UNITS (100) RUNS (3) LIMIT (120s) WINDOW (30s)
#        TOOLS=0: the dashboard only (no snapshot/floor/lsof/lsfd/ss table)
#        HOLD=10m: keep the host that long first (its address printed), to measure by hand
#        SLOW=0: no lsof, lsfd, ss in the table; DASHBOARD=0: the table only
#        BEFORE=path/to/fdtop: also the dashboard of that binary (an earlier
#        commit's), on the same load
#        HOLDERS=bpf|proc|bpf,proc (bpf,proc): the dashboard's holder passes
#        PROFILE=dir: CPU profiles of one snapshot each way there, first
set -eu
PROCS=${1:-1000}
FDS=${2:-1000}
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d /tmp/fdtop-million.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
go build -o "$work/fdtop" ./cmd/fdtop
go build -o "$work/procfs-bench" ./tools/procfs-bench
go build -o "$work/million" ./tools/million
echo "# tools/million.sh $PROCS $FDS at $(git describe --always --dirty), $(uname -r), $(nproc) cores"
"$work/million" -fdtop "$work/fdtop" -bench "$work/procfs-bench" -procs "$PROCS" -fds "$FDS" \
	-units "${UNITS:-100}" -runs "${RUNS:-3}" -limit "${LIMIT:-120s}" -window "${WINDOW:-30s}" \
	-tools="$([ "${TOOLS:-1}" = 0 ] && echo false || echo true)" \
	-slow="$([ "${SLOW:-1}" = 0 ] && echo false || echo true)" -dashboard="$([ "${DASHBOARD:-1}" = 0 ] && echo false || echo true)" -before "${BEFORE:-}" -holders "${HOLDERS:-bpf,proc}" -profile "${PROFILE:-}" -hold "${HOLD:-0}"
