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

# The mirror is this machine's own: the first Debian archive its apt config
# uses for bookworm (the URIs: of /etc/apt/sources.list.d/*.sources, or the
# deb lines of /etc/apt/sources.list and sources.list.d/*.list), with the
# same signed-by keyring. FDTOP_APT_MIRROR=URI overrides it
# (FDTOP_APT_ETC=DIR reads another apt config directory instead).
apt_etc="${FDTOP_APT_ETC:-/etc/apt}"
mirror_line() {
	if [ -n "${FDTOP_APT_MIRROR:-}" ]; then
		echo "deb $FDTOP_APT_MIRROR"
		return
	fi
	# deb822 stanzas: enabled, Types has deb, a suite that is bookworm,
	# bookworm-updates or bookworm-backports (the security archive does not
	# carry backports).
	found="$(for f in "$apt_etc"/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && enabled != "no" && suites ~ /(^| )bookworm(-updates|-backports)?( |$)/ && uris != "") {
					split(uris, u, " ")
					print "deb" (signed != "" ? " [signed-by=" signed "]" : "") " " u[1]
					found = 1
					exit
				}
				types = uris = suites = signed = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{
				key = tolower($1); sub(/:$/, "", key)
				val = $0; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "signed-by" && val !~ /^-----/) signed = val
				else if (key == "enabled") enabled = tolower(val)
			}
			END { if (!found) flush() }
		' "$f"
	done | head -1)"
	if [ -n "$found" ]; then
		echo "$found"
		return
	fi
	# One-line format: deb [options] URI SUITE COMPONENTS...
	found="$(for f in "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '
			$1 != "deb" { next }
			{
				opts = ""; i = 2
				if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
				if ($(i + 1) ~ /^bookworm(-updates|-backports)?$/) { print "deb" opts " " $i; exit }
			}
		' "$f"
	done | head -1)"
	if [ -n "$found" ]; then
		echo "$found"
		return
	fi
	echo "fetch-systemd-254: no Debian bookworm archive in $apt_etc/sources.list or $apt_etc/sources.list.d; set FDTOP_APT_MIRROR=URI" >&2
	return 1
}
line="$(mirror_line)"
echo "$line bookworm-backports main" >"$work/sources.list"
echo "fetch-systemd-254: using $(cat "$work/sources.list")" >&2

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
