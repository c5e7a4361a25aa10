#!/usr/bin/env bash
# Installs, from Debian 12's packages, what `make test` needs beyond Go:
#   libjpeg62-turbo-dev, gcc  the cgo JPEG decoder (libjpeg API, DCT scaling)
#   protobuf-compiler         protoc 3.21.12, pinned by 'make check-generated'
#   prometheus                prometheus and promtool, run for real by monitoring/
#   prometheus-alertmanager   alertmanager and amtool, run for real by monitoring/
# Packages already installed are left alone; nothing is started (the tests start
# their own servers on loopback). Needs root (or sudo) when something is missing.
set -euo pipefail

need=()
for pkg in libjpeg62-turbo-dev gcc protobuf-compiler prometheus prometheus-alertmanager; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${need[*]}" >&2
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
