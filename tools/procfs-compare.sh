#!/bin/sh
# procfs-compare.sh — on one generated load, in one run, time fdtop's full scan, the
# bare walk (the floor), ss -tuaxnp, lsof -n -P and lsfd; print median wall
# time and peak RSS side by side, with ratios to the bare walk.
#
# usage: tools/procfs-compare.sh [PROCS FDS RUNS]   (defaults: 1000 100 5; run as root)
set -eu
PROCS=${1:-1000}
FDS=${2:-100}
RUNS=${3:-5}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/fdtop-compare.XXXXXX)
bench=$work/procfs-bench
go build -o "$bench" ./tools/procfs-bench

"$bench" -mode load -procs "$PROCS" -fds "$FDS" -hold 15m -pidfile "$work/pids" &
loadpid=$!
cleanup() { kill "$loadpid" 2>/dev/null || true; wait "$loadpid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
i=0
while [ ! -s "$work/pids" ]; do
	i=$((i + 1))
	[ $i -gt 1200 ] && { echo "load did not start" >&2; exit 1; }
	kill -0 "$loadpid" || { echo "load generator failed" >&2; exit 1; }
	sleep 0.1
done
targets=$(head -n 10 "$work/pids" | paste -sd, -)

# measure NAME CMD...: RUNS runs, median wall seconds and median peak RSS KiB.
measure() {
	name=$1; shift
	: > "$work/$name.times"
	r=0
	while [ $r -lt "$RUNS" ]; do
		/usr/bin/time -f '%e %M' -o "$work/$name.one" "$@" > /dev/null 2>&1 || true
		tail -n 1 "$work/$name.one" >> "$work/$name.times"
		r=$((r + 1))
	done
	t=$(cut -d' ' -f1 "$work/$name.times" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	m=$(cut -d' ' -f2 "$work/$name.times" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "$name $t $m" >> "$work/results"
}

: > "$work/results"
measure bare-walk "$bench" -mode bare
measure fdtop-scan "$bench" -mode scan
measure fdtop-scan-1worker "$bench" -mode scan -workers 1
measure ss-tuaxnp ss -tuaxnp
measure lsof lsof -n -P
measure lsfd lsfd
"$bench" -mode scan | sed 's/^/# /'
"$bench" -mode targeted -n 20 -pids "$targets" | sed 's/^/# 10 pids, warm cache, last of 20: /'

echo "load: $PROCS processes x $FDS descriptors, median of $RUNS runs"
awk 'NR==FNR && $1=="bare-walk" {base=$2} NR==FNR {next} {print}' "$work/results" "$work/results" >/dev/null
base=$(awk '$1=="bare-walk" {print $2}' "$work/results")
printf '%-20s %10s %12s %14s\n' tool wall_s peak_rss_MiB vs_bare_walk
awk -v base="$base" '{ printf "%-20s %10.3f %12.1f %13.2fx\n", $1, $2, $3/1024, (base > 0 ? $2/base : 0) }' "$work/results"
