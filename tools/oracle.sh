#!/bin/sh
# oracle.sh: run fdtop's truth oracle (demo/oracle, issue 20) with fresh
# seeds and any length, on 252 and 254 at once.
#
#   tools/oracle.sh [OPS] [SEEDS] [VERSIONS]
#
# OPS: operations per seed (default 500); SEEDS: comma-separated (default:
# two fresh random ones); VERSIONS: 252,254 (default both). Needs root and
# FDTOP_SYSTEMD_254 (demo/scripts/fetch-systemd-254.sh). The per-field
# counts go to $OUT/report.txt ($OUT: ${TMPDIR:-/tmp}/fdtop-oracle); a seed
# that finds a false claim leaves the tracker's inputs in $OUT (replay them
# through inspect.Tracker; add the seed to fixedSeeds in demo/oracle).
set -eu
cd "$(dirname "$0")/.."
ops=${1:-500}
seeds=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' '),$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
versions=${3:-252,254}
out=${TMPDIR:-/tmp}/fdtop-oracle
mkdir -p "$out"
echo "oracle: seeds $seeds, $ops operations each, systemd $versions" >&2
FDTOP_ORACLE_SEEDS=$seeds FDTOP_ORACLE_OPS=$ops FDTOP_ORACLE_VERSIONS=$versions \
FDTOP_ORACLE_TRACES=$out FDTOP_ORACLE_REPORT=$out/report.txt \
	go test -tags oracle -count=1 -timeout 0 -v -run 'TestOracle$' ./demo/oracle/ 2>&1 |
	grep -v 'manager: ' | grep -E 'false |never|no [a-z]|claims per field|field|^ +[a-z_.]+ +[0-9]|operations|^(ok|FAIL|---)' || true
cat "$out/report.txt"
