#!/usr/bin/env bash
# Installs, from Debian 12's packages, what `make test` needs beyond Go:
#   libjpeg62-turbo-dev, gcc  the cgo JPEG decoder (libjpeg API, DCT scaling)
#   protobuf-compiler         protoc 3.21.12, pinned by 'make check-generated'
#   prometheus                prometheus and promtool, run for real by monitoring/
#   prometheus-alertmanager   alertmanager and amtool, run for real by monitoring/
#   chromium                  the headless browser that drives GET /docs in the
#                             httpapi tests (upload a photo through the page)
# See scripts/install-debian-packages.sh: only what is missing, root or sudo.
set -euo pipefail
exec "$(dirname "$0")/install-debian-packages.sh" "the tests" \
	libjpeg62-turbo-dev gcc protobuf-compiler prometheus prometheus-alertmanager chromium
