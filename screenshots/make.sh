#!/usr/bin/env bash
# make.sh renders the README screenshots: it builds fdtop, runs `fdtop demo`
# in a tmux terminal of its own, drives the dashboard to five states and
# turns each captured screen into a PNG with freeze.
#
#   overview.png  the dashboard as it opens
#   detail.png    demo-handoff.service's detail pane
#   verdict.png   a restart of demo-handoff.service and its verdict
#   explain.png   the detail pane annotated (e)
#   help.png      the help (?)
#   scoreboard.png the demo scoreboard after a restart of each mode
#   tour.png      the first step of `fdtop demo --tour`
#
# Needs root (the demo's sandbox), tmux, Go, rsvg-convert (librsvg2-bin) and
# a monospace font (DejaVu Sans Mono by default, FONT= to change it);
# installs freeze v0.2.2 into $HOME/go/bin when it is missing.
# freeze's built-in PNG renderer (resvg on wazero) crashes when freeze is
# built with Go 1.24 or later (charmbracelet/freeze#203), so the PNGs go
# through rsvg-convert, which freeze uses whenever it is on PATH.
#
# Usage: screenshots/make.sh [WIDTH HEIGHT]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
width=${1:-140}
height=${2:-38}
freeze_version=v0.2.2
font=${FONT:-DejaVu Sans Mono}

die() { echo "make.sh: $*" >&2; exit 1; }

command -v tmux >/dev/null || die "tmux not found (apt-get install tmux)"
[ "$(id -u)" = 0 ] || die "fdtop demo needs root"
command -v rsvg-convert >/dev/null ||
	die "rsvg-convert not found (apt-get install librsvg2-bin): freeze's own PNG renderer crashes with Go >= 1.24"
if command -v fc-list >/dev/null && [ -z "$(fc-list "$font")" ]; then
	die "font \"$font\" not installed (apt-get install fonts-dejavu-core, or set FONT=)"
fi

freeze=$(command -v freeze || true)
if [ -z "$freeze" ]; then
	freeze=$HOME/go/bin/freeze
	if [ ! -x "$freeze" ]; then
		echo "installing freeze $freeze_version into $HOME/go/bin"
		GOBIN=$HOME/go/bin go install "github.com/charmbracelet/freeze@$freeze_version"
	fi
fi

work=$(mktemp -d /tmp/fdtop-shots-XXXXXX)
chmod 755 "$work" # the demo units run the binary
bin=$work/fdtop
socket=fdtop-shots-$$
session=shots
tmx() { tmux -L "$socket" -f /dev/null "$@"; }

cleanup() {
	if tmx has-session -t "$session" 2>/dev/null; then
		tmx send-keys -t "$session" q
		for _ in $(seq 1 100); do
			tmx has-session -t "$session" 2>/dev/null || break
			sleep 0.1
		done
	fi
	tmx kill-server 2>/dev/null || true
	rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$socket"
	rm -rf "$work"
}
trap cleanup EXIT

echo "building fdtop"
(cd "$root" && go build -o "$bin" ./cmd/fdtop)

screen() { tmx capture-pane -p -t "$session"; }

# wait_for WHAT PATTERN...: poll the screen until it matches every grep -E
# PATTERN, for at most 30 s.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1 300); do
		local s ok=1
		s=$(screen)
		for p in "$@"; do
			grep -Eq -- "$p" <<<"$s" || { ok=0; break; }
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	echo "make.sh: timed out waiting for $what; screen:" >&2
	screen >&2
	exit 1
}

# key K...: press keys one at a time.
key() {
	for k in "$@"; do
		tmx send-keys -t "$session" "$k"
		sleep 0.15
	done
}

# shot NAME: capture the screen with its colours and render NAME.png.
shot() {
	sleep 0.4 # let the frame settle
	tmx capture-pane -e -p -t "$session" >"$here/$1.ansi"
	"$freeze" --language ansi --font.family "$font" -o "$here/$1.png" "$here/$1.ansi" >/dev/null
	echo "wrote screenshots/$1.png"
}

# select_unit UNIT: move the list's selection (the › row) to UNIT.
select_unit() {
	key g
	for _ in $(seq 1 12); do
		screen | grep -q "^›.*$1" && return 0
		key j
	done
	die "could not select $1"
}

echo "starting fdtop demo in tmux ($width×$height)"
tmx new-session -d -s "$session" -x "$width" -y "$height" \
	env TERM=xterm-256color COLORTERM=truecolor LANG=C.UTF-8 "$bin" demo
tmx set-option -t "$session" status off >/dev/null

# Every service up with its four demo clients, and the first traffic counts.
wait_for "the dashboard" 'demo-plain\.service' 'demo-handoff\.service +[0-9]+ +4 '
sleep 2

shot overview

select_unit demo-handoff.service
key Enter
wait_for "the detail pane" '▸ Detail · demo-handoff\.service'
shot detail

key Escape r
wait_for "the confirmation" 'restart demo-handoff\.service\?'
key y
wait_for "the verdict" '✓ listener kept · 4/4 connections preserved' 'restart demo-handoff\.service: done'
sleep 1
shot verdict

key e
wait_for "the explain annotations" 'explain on'
shot explain

key e '?'
wait_for "the help" 'Help ·'
shot help

# The scoreboard: handoff was restarted above; now plain, activated and
# stored.
key Escape
for svc in demo-plain.service demo-activated.service demo-stored.service; do
	wait_for "$svc with its clients" "$svc +[0-9]+ +4 "
	select_unit "$svc"
	key r
	wait_for "the confirmation" "restart ${svc//./\\.}\\?"
	key y
	wait_for "the restart of $svc" "restart ${svc//./\\.}: done"
done
select_unit demo-handoff.service
wait_for "the four columns" 'verdict +✗ +✗ +✓ +✗'
shot scoreboard

# quit_demo: q, and wait for the demo to be gone.
quit_demo() {
	key q
	for _ in $(seq 1 200); do
		tmx has-session -t "$session" 2>/dev/null || break
		sleep 0.1
	done
	tmx has-session -t "$session" 2>/dev/null && die "fdtop demo did not exit after q"
	return 0
}
quit_demo

echo "starting fdtop demo --tour in tmux ($width×$height)"
tmx new-session -d -s "$session" -x "$width" -y "$height" \
	env TERM=xterm-256color COLORTERM=truecolor LANG=C.UTF-8 "$bin" demo --tour
tmx set-option -t "$session" status off >/dev/null
wait_for "the tour" 'Tour · step 1/4' 'demo-plain\.service +[0-9]+ +4 ' 'demo-stored\.service +[0-9]+ +4 '
sleep 2
shot tour
quit_demo
if pgrep -f "^$bin demo-server" >/dev/null; then
	pgrep -af "^$bin demo-server" >&2
	die "demo-server processes survived the demo"
fi
echo "demo torn down, no demo-server left"
