#!/bin/sh
# soak.sh: `fdtop watch --json` while the handoff demo service is restarted
# back to back (500 times by default, on systemd 252 and 254): exactly one
# handoff event per restart, and fdtop's goroutines and memory flat.
# Usage (as root): demo/scripts/soak.sh [RESTARTS]
set -eu
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
FDTOP_SYSTEMD_254="${FDTOP_SYSTEMD_254:-$(demo/scripts/fetch-systemd-254.sh | tail -1)}"
export FDTOP_SYSTEMD_254
FDTOP_SOAK_RESTARTS="${1:-500}" go test -count=1 -timeout 60m -run '^TestSoakWatch$' -v ./cmd/fdtop/ | grep -E 'soak_test|^ *(---|ok|FAIL|PASS)'
