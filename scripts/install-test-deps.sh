#!/usr/bin/env bash
# Installs, from Debian 12's packages, what `make test` needs beyond Go:
#   libjpeg62-turbo-dev, gcc  the cgo JPEG decoder (libjpeg API, DCT scaling)
#   protobuf-compiler         protoc 3.21.12, pinned by 'make check-generated'
#   prometheus                prometheus and promtool, run for real by monitoring/
#   prometheus-alertmanager   alertmanager and amtool, run for real by monitoring/
#   chromium                  the headless browser that drives GET /docs in the
#                             httpapi tests (upload a photo through the page)
# Packages already installed are left alone; nothing is started (the tests start
# their own servers on loopback). Needs root, or sudo, when something is missing;
# with neither it says what to install and fails.
set -euo pipefail

need=()
for pkg in libjpeg62-turbo-dev gcc protobuf-compiler prometheus prometheus-alertmanager chromium; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
	echo "install-test-deps: Debian packages present" >&2
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "install-test-deps: the tests need these Debian packages: ${need[*]}" >&2
		echo "install-test-deps: this user is not root and cannot sudo without a password; run as root:" >&2
		echo "    apt-get update && apt-get install -y --no-install-recommends ${need[*]}" >&2
		exit 1
	fi
fi
echo "install-test-deps: installing from Debian's archive: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# policy-rc.d answers 101 ("action forbidden") so that the packages' scripts do
# not start Debian's own prometheus and alertmanager services on :9090/:9093.
# An existing policy-rc.d is the machine's own and is left as it is.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	"${sudo[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
	trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
