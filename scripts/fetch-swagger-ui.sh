#!/usr/bin/env bash
# Vendors the Swagger UI files that GET /docs serves (gateway/httpapi/docs.go)
# from the npm package swagger-ui-dist, pinned by version and checksums, into
# gateway/httpapi/docsui/swagger-ui/. The files there are committed and embedded
# into the binary, so building and serving the page needs neither npm nor the
# network; `make generate` runs this script and `make check-generated` fails
# when its output differs from what is committed.
#
# Only what the page loads is kept (the self-contained bundle and the style
# sheet), with the package's LICENSE and NOTICE and the licenses of the code
# bundled into swagger-ui-bundle.js. To move to another version: change VERSION
# and the two tarball checksums (npm view swagger-ui-dist@<version>
# dist.integrity gives the sha512; sha256sum the tarball npm pack writes), run
# this script, run the browser test (go test -run TestDocsPageInBrowser
# ./gateway/httpapi/) and commit the result.
#
# Needs: npm, tar, sha256sum, and openssl or base64+sha512sum+xxd.
set -euo pipefail

VERSION=5.35.0
# The tarball's integrity as npm's registry publishes it (npm view
# swagger-ui-dist@5.35.0 dist.integrity), and its sha256.
TARBALL_SHA512="U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
TARBALL_SHA256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
# The members of the tarball that are vendored, under package/.
FILES=(swagger-ui-bundle.js swagger-ui.css swagger-ui-bundle.js.LICENSE.txt LICENSE NOTICE)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$root/gateway/httpapi/docsui/swagger-ui"

die() { echo "fetch-swagger-ui: $*" >&2; exit 1; }

command -v npm >/dev/null || die "npm is needed to fetch swagger-ui-dist@$VERSION (Debian/Ubuntu: apt-get install npm)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null) || die "npm pack swagger-ui-dist@$VERSION failed"
tgz="$tmp/swagger-ui-dist-$VERSION.tgz"
[ -f "$tgz" ] || die "npm pack did not write $(basename "$tgz")"

got=$(sha256sum "$tgz" | cut -d' ' -f1)
[ "$got" = "$TARBALL_SHA256" ] || die "$(basename "$tgz"): sha256 $got, want $TARBALL_SHA256"
if command -v openssl >/dev/null; then
	got512=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
else
	got512=$(sha512sum "$tgz" | cut -d' ' -f1 | xxd -r -p | base64 -w0)
fi
[ "$got512" = "$TARBALL_SHA512" ] || die "$(basename "$tgz"): sha512 $got512, want $TARBALL_SHA512"

members=()
for f in "${FILES[@]}"; do members+=("package/$f"); done
tar -xzf "$tgz" -C "$tmp" "${members[@]}" || die "swagger-ui-dist-$VERSION.tgz lacks one of: ${FILES[*]}"

# Replace the directory as a whole, so that a file dropped from FILES does not
# linger; the files get ordinary permissions whatever the tarball says.
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
for f in "${FILES[@]}"; do
	install -m 0644 "$tmp/package/$f" "$dest.partial/$f"
done
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "fetch-swagger-ui: swagger-ui-dist@$VERSION -> ${dest#"$root"/}" >&2
