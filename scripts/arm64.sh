#!/usr/bin/env bash
# The arm64 build of package preprocess, tested on this amd64 machine: its NEON
# resampler (resize_neon.c) is cross-compiled with cgo and run under qemu-user,
# so `make test` checks it byte for byte against the scalar passes, as it checks
# the AVX2 and AVX-512 levels natively. Emulation says nothing about speed.
#
#   scripts/arm64.sh install          the cross compiler and emulator (Debian
#                                     packages), and libjpeg-turbo for arm64 in .arm64/
#   scripts/arm64.sh test [ARGS...]   go test ARGS (default ./preprocess/) for arm64,
#                                     each test binary run by qemu-aarch64
#
# libjpeg-turbo for arm64: Debian's libjpeg62-turbo and libjpeg62-turbo-dev
# arm64 packages, the version the host has for amd64 when Debian still serves it,
# fetched with a private apt state in .arm64/apt (the system's apt configuration
# and dpkg's architectures stay as they are) and unpacked into .arm64/sysroot.
# Idempotent: a second install finds everything present and says so.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$root/.arm64
sysroot=$dir/sysroot
say() { echo "arm64: $*" >&2; }

install() {
	"$root/scripts/install-debian-packages.sh" "the arm64 tests (cross compiler, C library, emulator)" \
		gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
	local want
	want=$(dpkg-query -W -f='${Version}' libjpeg62-turbo-dev 2>/dev/null || true)
	if [ -f "$dir/version" ] && [ -f "$sysroot/usr/include/jpeglib.h" ] &&
		{ [ -z "$want" ] || [ "$(cat "$dir/version")" = "$want" ]; }; then
		say "present: libjpeg-turbo $(cat "$dir/version") for arm64 in $sysroot"
		return
	fi
	say "fetching Debian's libjpeg-turbo for arm64 (the NEON tests link it) into $sysroot"
	rm -rf "$dir/apt" "$sysroot"
	mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/apt/debs" "$sysroot"
	touch "$dir/apt/status"
	local apt=(apt-get -q -o Dir::State="$dir/apt" -o Dir::State::Lists="$dir/apt/lists"
		-o Dir::State::status="$dir/apt/status" -o Dir::Cache="$dir/apt/cache"
		-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
		-o APT::Sandbox::User="$(id -un)")
	"${apt[@]}" update >/dev/null
	local pkgs=(libjpeg62-turbo libjpeg62-turbo-dev) spec=()
	for p in "${pkgs[@]}"; do spec+=("$p:arm64${want:+=$want}"); done
	if ! (cd "$dir/apt/debs" && "${apt[@]}" download "${spec[@]}" >/dev/null 2>&1); then
		say "Debian no longer serves $want for arm64; taking its current version"
		(cd "$dir/apt/debs" && "${apt[@]}" download "${pkgs[@]/%/:arm64}" >/dev/null)
	fi
	for deb in "$dir/apt/debs"/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
	dpkg-deb -f "$(ls "$dir"/apt/debs/libjpeg62-turbo-dev_*.deb)" Version >"$dir/version"
	rm -rf "$dir/apt/lists" "$dir/apt/cache"
	say "installed libjpeg-turbo $(cat "$dir/version") for arm64"
}

run_tests() {
	[ -f "$sysroot/usr/include/jpeglib.h" ] && command -v qemu-aarch64 >/dev/null &&
		command -v aarch64-linux-gnu-gcc >/dev/null || install
	local lib=$sysroot/usr/lib/aarch64-linux-gnu
	[ $# -gt 0 ] || set -- ./preprocess/
	cd "$root"
	say "go test $* for arm64 (NEON), run by qemu-aarch64"
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		CGO_CFLAGS="-O2 -g -I$sysroot/usr/include -I$sysroot/usr/include/aarch64-linux-gnu" \
		CGO_LDFLAGS="-L$lib" \
		"${GO:-go}" test -exec "qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=$lib" "$@"
}

case ${1:-} in
install) install ;;
test) shift; run_tests "$@" ;;
*) echo "usage: $0 install | test [go test args...]" >&2; exit 2 ;;
esac
