#!/bin/sh
# fetch-systemd-254.sh: fetch systemd 254 from Debian bookworm-backports into a
# private cache directory, without touching the system's apt state or /usr.
#
# Usage: demo/scripts/fetch-systemd-254.sh [CACHE_DIR]
# Prints the path of the extracted systemd binary on its last line.
# The default cache is ${FDTOP_CACHE:-$HOME/.cache/fdtop}/systemd-254.
set -eu

cache="${1:-${FDTOP_CACHE:-$HOME/.cache/fdtop}/systemd-254}"
bin="$cache/root/lib/systemd/systemd"
if [ -x "$bin" ] && [ -f "$cache/root/.complete" ]; then
	echo "$bin"
	exit 0
fi

work="$cache/apt"
rm -rf "$work" "$cache/root"
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs" "$cache/root"

cat >"$work/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm-backports main
SRC

aptopts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null \
 -o Dir::State::Lists=$work/lists -o Dir::Cache=$work -o Dir::Cache::archives=$work/archives \
 -o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0"

# shellcheck disable=SC2086
apt-get $aptopts update >&2
cd "$work/debs"
# shellcheck disable=SC2086
apt-get $aptopts download systemd/bookworm-backports libsystemd-shared/bookworm-backports >&2
for deb in ./*.deb; do
	dpkg-deb -x "$deb" "$cache/root"
done
ver="$("$bin" --version 2>/dev/null | head -1 || true)"
if [ -z "$ver" ]; then
	# The binary needs its own libsystemd-shared: check with LD_LIBRARY_PATH.
	ver="$(LD_LIBRARY_PATH="$cache/root/usr/lib/x86_64-linux-gnu/systemd:$cache/root/lib/systemd:$cache/root/usr/lib/systemd" "$bin" --version | head -1)"
fi
echo "fetched: $ver" >&2
touch "$cache/root/.complete"
echo "$bin"
