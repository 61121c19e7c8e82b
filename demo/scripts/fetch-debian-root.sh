#!/bin/sh
# fetch-debian-root.sh: build a Debian trixie or sid root file system with
# debootstrap (minbase plus systemd, dbus, logind's PAM module, polkit,
# sshd, ss and friends), for demo/systemtest to boot with systemd-nspawn
# (systemd 257 on trixie, the newest on sid).
#
# Usage: demo/scripts/fetch-debian-root.sh trixie|sid [--rebuild]
# Prints the root directory on its last line. The cache is
# ${FDTOP_CACHE:-$HOME/.cache/fdtop}/debian-SUITE/root; it is rebuilt when
# it is older than a week, when --rebuild is given, or when the last build
# did not finish (no root/.complete). Needs root (debootstrap).
set -eu

suite="${1:-}"
case "$suite" in
trixie | sid) ;;
*)
	echo "usage: $0 trixie|sid [--rebuild]" >&2
	exit 2
	;;
esac
rebuild="${2:-}"

cache="${FDTOP_CACHE:-$HOME/.cache/fdtop}/debian-$suite"
root="$cache/root"
stamp="$root/.complete"
if [ "$rebuild" != --rebuild ] && [ -f "$stamp" ] &&
	[ -z "$(find "$stamp" -mtime +6 2>/dev/null)" ]; then
	echo "$root"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "fetch-debian-root: debootstrap needs root" >&2
	exit 1
fi
command -v debootstrap >/dev/null || {
	echo "fetch-debian-root: debootstrap not found: apt-get install debootstrap" >&2
	exit 1
}

# The mirror is this machine's own: the first Debian archive (not the
# security one) its apt config uses, with the same signed-by keyring, as
# fetch-systemd-254.sh finds it. FDTOP_APT_MIRROR=URI overrides it
# (FDTOP_APT_ETC=DIR reads another apt config directory instead).
apt_etc="${FDTOP_APT_ETC:-/etc/apt}"
mirror=""
keyring=""
if [ -n "${FDTOP_APT_MIRROR:-}" ]; then
	mirror="$FDTOP_APT_MIRROR"
else
	found="$(for f in "$apt_etc"/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && enabled != "no" && suites ~ /(^| )(bookworm|trixie|forky|sid|unstable|stable|testing)(-updates|-backports)?( |$)/ && uris != "") {
					split(uris, u, " ")
					print u[1] " " signed
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
	if [ -z "$found" ]; then
		found="$(for f in "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list; do
			[ -r "$f" ] || continue
			awk '
				$1 != "deb" { next }
				{
					signed = ""; i = 2
					if ($2 ~ /^\[/) {
						while (i <= NF) {
							o = $i; gsub(/[][]/, "", o)
							if (o ~ /^signed-by=/) { sub(/^signed-by=/, "", o); signed = o }
							if ($i ~ /\]$/) { i++; break }
							i++
						}
					}
					if ($(i + 1) ~ /^(bookworm|trixie|forky|sid|unstable|stable|testing)(-updates|-backports)?$/) { print $i " " signed; exit }
				}
			' "$f"
		done | head -1)"
	fi
	if [ -z "$found" ]; then
		echo "fetch-debian-root: no Debian archive in $apt_etc/sources.list or $apt_etc/sources.list.d; set FDTOP_APT_MIRROR=URI" >&2
		exit 1
	fi
	mirror="${found%% *}"
	keyring="${found#* }"
	[ "$keyring" = "$found" ] && keyring=""
fi

# What the system tests run inside: systemd as PID 1, logind (PAM) and the
# user manager, dbus, polkit (a plain user's requests), sshd (an Accept=yes
# ssh.socket), ss (iproute2), ps, useradd (passwd), nsenter (util-linux).
include=systemd,systemd-sysv,dbus,libpam-systemd,polkitd,openssh-server,iproute2,procps,passwd,util-linux

rm -rf "$cache"
mkdir -p "$cache"
echo "fetch-debian-root: debootstrap $suite from $mirror${keyring:+ (keyring $keyring)}" >&2
set -- --variant=minbase --include="$include"
[ -n "$keyring" ] && set -- "$@" --keyring="$keyring"
if ! debootstrap "$@" "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1; then
	tail -20 "$cache/debootstrap.log" >&2
	echo "fetch-debian-root: debootstrap $suite failed (log: $cache/debootstrap.log)" >&2
	exit 1
fi
# No apt lists or .debs are needed at run time.
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_* 2>/dev/null || true
echo "fetch-debian-root: $suite: $(chroot "$root" dpkg-query -W -f='systemd ${Version}' systemd)" >&2
touch "$stamp"
echo "$root"
