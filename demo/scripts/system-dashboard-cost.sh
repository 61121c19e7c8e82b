#!/bin/sh
# system-dashboard-cost.sh: the dashboard's startup time and idle CPU cost on
# a real system manager (systemd as PID 1 in demo/systemtest's container),
# as root. Usage (as root): demo/scripts/system-dashboard-cost.sh [RUNS]
set -eu
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
go test -count=1 -run '^$' -bench 'BenchmarkDashboard' -benchtime "${1:-5}x" ./demo/systemtest/ |
	grep -E 'Benchmark|cost_test|^(ok|FAIL|PASS)'
