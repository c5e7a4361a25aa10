#!/usr/bin/env bash
# MinIO, the S3 server of the model-lifecycle tests (internal/testenv's
# StartMinIO: MLflow's artifact store, the Triton model repository that Triton
# reads with --model-repository=s3://...), built from the Go module proxy into
# .mlops/ (git-ignored):
#
#   bin/minio   the server, github.com/minio/minio at MINIO_VERSION
#
#   scripts/minio.sh install   build it when missing (or built at another
#                              version), print the binary's path
#   scripts/minio.sh path      print the binary's path
#
# Why a pseudo-version: MinIO tags its releases RELEASE.<date>, not semver, and
# the module proxy here answers none of those tags; the newest commit it serves
# (`go list -m github.com/minio/minio@latest`) is the pin. About 3 minutes the
# first time on 2 cores, seconds from a warm Go build cache.
#
# Licence: MinIO's server is AGPL-3.0. The project never imports it (no Go
# package of this module requires github.com/minio/minio); it is built here as a
# separate program that the tests run as an external process, like Prometheus.
# `go install pkg@version` builds it outside this module: MinIO's go.mod has no
# replace directive, so no scratch module is needed (the build checks that this
# is still so).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

dir=$root/.mlops
bin=$dir/bin/minio
say() { echo "minio: $*" >&2; }

built() { [ -x "$bin" ] && [ "$(cat "$dir/bin/.minio-version" 2>/dev/null)" = "$MINIO_VERSION" ]; }

install() {
	built && return
	# One build at a time: test packages that start MinIO may run this at once.
	mkdir -p "$dir/bin"
	exec 9>"$dir/.minio.lock"
	flock 9
	built && return
	local start=$SECONDS modroot
	say "building the MinIO server (github.com/minio/minio $MINIO_VERSION) for the model-lifecycle tests into .mlops/bin; about 3 minutes the first time"
	modroot=$(go mod download -json "github.com/minio/minio@$MINIO_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$modroot" ] || { say "go mod download github.com/minio/minio@$MINIO_VERSION failed"; exit 1; }
	if grep -q '^replace' "$modroot/go.mod"; then
		say "MinIO $MINIO_VERSION's go.mod has replace directives, which go install refuses: build it from a scratch module (see scripts/jaeger.sh)"
		exit 1
	fi
	rm -f "$bin"
	GOBIN=$dir/bin CGO_ENABLED=0 go install -trimpath "github.com/minio/minio@$MINIO_VERSION"
	echo "$MINIO_VERSION" >"$dir/bin/.minio-version"
	say "built in $((SECONDS - start)) s"
}

case "${1:-}" in
install) install; echo "$bin" ;;
path) echo "$bin" ;;
*) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
