#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library for the embedded backend (gateway/onnx)
# from the npm package onnxruntime-node, which ships libonnxruntime.so.1 for
# linux x64 and arm64 under bin/napi-v6/linux/. The package and the library are
# pinned by version and checksum; the library is cached at
# .onnxruntime/<version>/libonnxruntime.so.1 (git-ignored) and its path printed
# on stdout. Run again, it does nothing when the cached file's checksum matches.
#
# Needs: npm (only when the library is not cached yet), tar, sha256sum, openssl
# or base64+sha512sum. Point the gateway at the printed path with ONNXRUNTIME_LIB.
set -euo pipefail

VERSION=1.30.0
# The tarball's integrity, as npm's registry publishes it (npm view
# onnxruntime-node@1.30.0 dist.integrity), and its sha256.
TARBALL_SHA512="twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw=="
TARBALL_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
# sha256 of package/bin/napi-v6/linux/<arch>/libonnxruntime.so.1.
LIB_SHA256_x64=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
LIB_SHA256_arm64=1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest_dir="${ONNXRUNTIME_CACHE:-$root/.onnxruntime}/$VERSION"
dest="$dest_dir/libonnxruntime.so.1"

die() { echo "fetch-onnxruntime: $*" >&2; exit 1; }

[ "$(uname -s)" = Linux ] || die "onnxruntime-node ships the library for Linux here; this is $(uname -s)"
case "$(uname -m)" in
	x86_64 | amd64) arch=x64 want=$LIB_SHA256_x64 ;;
	aarch64 | arm64) arch=arm64 want=$LIB_SHA256_arm64 ;;
	*) die "no libonnxruntime.so.1 for $(uname -m) in onnxruntime-node (x64 and arm64 only)" ;;
esac

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ] && [ "$(sha256 "$dest")" = "$want" ]; then
	echo "$dest"
	exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch onnxruntime-node@$VERSION (Debian/Ubuntu: apt-get install npm)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-onnxruntime: npm pack onnxruntime-node@$VERSION (about 110 MB) ..." >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$VERSION" >/dev/null) || die "npm pack onnxruntime-node@$VERSION failed"
tgz="$tmp/onnxruntime-node-$VERSION.tgz"
[ -f "$tgz" ] || die "npm pack did not write $(basename "$tgz")"

got=$(sha256 "$tgz")
[ "$got" = "$TARBALL_SHA256" ] || die "onnxruntime-node-$VERSION.tgz: sha256 $got, want $TARBALL_SHA256"
if command -v openssl >/dev/null; then
	got512=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
else
	got512=$(sha512sum "$tgz" | cut -d' ' -f1 | xxd -r -p | base64 -w0)
fi
[ "$got512" = "$TARBALL_SHA512" ] || die "onnxruntime-node-$VERSION.tgz: sha512 $got512, want $TARBALL_SHA512"

member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
tar -xzf "$tgz" -C "$tmp" "$member" || die "$member is not in onnxruntime-node-$VERSION.tgz"
got=$(sha256 "$tmp/$member")
[ "$got" = "$want" ] || die "$member: sha256 $got, want $want"

mkdir -p "$dest_dir"
chmod 0644 "$tmp/$member"
mv -f "$tmp/$member" "$dest.partial.$$"
mv -f "$dest.partial.$$" "$dest" # atomic: concurrent runs never see half a file
echo "fetch-onnxruntime: cached $dest" >&2
echo "$dest"
