#!/usr/bin/env bash
# Installs, from Debian 12's packages, what `make test` needs beyond Go:
#   libjpeg62-turbo-dev, gcc  the cgo JPEG decoder (libjpeg API, DCT scaling)
#   protobuf-compiler         protoc 3.21.12, pinned by 'make check-generated'
#   prometheus                prometheus and promtool, run for real by monitoring/
#   prometheus-alertmanager   alertmanager and amtool, run for real by monitoring/
#   chromium                  the headless browser that drives GET /docs in the
#                             httpapi tests (upload a photo through the page)
#   mariadb-server            mariadbd and mariadb-install-db: MLflow's backend
#                             store in the model-lifecycle tests, each test with
#                             its own data directory (internal/testenv's StartMariaDB)
#   prometheus-mysqld-exporter  the exporter the monitoring tests scrape for the
#                             database's health (internal/testenv's StartMySQLdExporter)
# See scripts/install-debian-packages.sh: only what is missing, root or sudo.
set -euo pipefail
exec "$(dirname "$0")/install-debian-packages.sh" "the tests" \
	libjpeg62-turbo-dev gcc protobuf-compiler prometheus prometheus-alertmanager chromium \
	mariadb-server prometheus-mysqld-exporter
