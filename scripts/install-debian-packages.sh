#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are missing, and
# says so: `scripts/install-debian-packages.sh WHY PACKAGE...`, WHY saying what
# needs them. Packages already installed are left alone (then it prints one
# line and exits 0). Needs root, or passwordless sudo, when something is
# missing; with neither it prints the apt-get line to run as root and exits 1.
# Nothing is started: policy-rc.d keeps the packages' scripts from starting
# services (Debian's prometheus and alertmanager would take :9090/:9093).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 WHY PACKAGE..." >&2; exit 2; }
why=$1
shift

need=()
for pkg in "$@"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
	echo "install-debian-packages: present: $* ($why)" >&2
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "install-debian-packages: $why needs the Debian packages: ${need[*]}" >&2
		echo "install-debian-packages: this user is not root and cannot sudo without a password; as root, run:" >&2
		echo "    apt-get update && apt-get install -y --no-install-recommends ${need[*]}" >&2
		exit 1
	fi
fi
echo "install-debian-packages: installing from Debian's archive, for $why: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
if [ ! -e /usr/sbin/policy-rc.d ]; then
	"${sudo[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
	trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
