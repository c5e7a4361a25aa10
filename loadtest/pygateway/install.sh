#!/usr/bin/env bash
# Installs one of the reference Python gateway's two environments (app.py runs
# unchanged in both; the environment decides which Pillow it gets):
#
#   loadtest/pygateway/install.sh        stock Pillow: requirements.txt into
#                                        <repo>/.bench-venv (wheels from PyPI, ~20 s)
#   loadtest/pygateway/install.sh simd   Pillow-SIMD: the same packages, but
#                                        requirements-simd.txt's pillow-simd instead of
#                                        pillow, compiled here from its PyPI sdist with
#                                        AVX2 (CC="cc -mavx2", as its README says), into
#                                        <repo>/.bench-simd-venv (~2 min on 2 cores)
#
# Both are git-ignored. Idempotent: run again, it does nothing while the
# interpreter, the requirements files and the build flags are unchanged, and
# rebuilds the environment from scratch when one changed. Prints the
# environment's python on stdout.
#
# Pillow-SIMD is the same code as Pillow with the resize (and a few other
# operations) vectorised; PyPI has no wheels of it, and the SIMD instruction
# set is chosen at compile time. The simd variant therefore needs a C compiler
# and the headers of what it links: Python's, libjpeg-turbo's, zlib's and
# libwebp's (the peers must both accept the WebP test images). They are
# installed from Debian's archive by scripts/install-debian-packages.sh, for
# this benchmark only (make test does not need them). After the build it checks
# that PIL is Pillow-SIMD (a version ending in .postN), that its JPEG codec is
# libjpeg-turbo, that WebP works, and (with objdump) that the compiled module
# holds AVX2 (ymm) instructions.
#
# Environment (optional):
#   BENCH_VENV              the stock environment (default <repo>/.bench-venv)
#   BENCH_SIMD_VENV         the Pillow-SIMD environment (default <repo>/.bench-simd-venv)
#   BENCH_PYTHON            interpreter (default /usr/bin/python3, else python3);
#                           CPython 3.10+ with the venv module (Debian: python3-venv)
#   BENCH_INSTALL_TIMEOUT   seconds pip may take (default 600; the simd build compiles)
#   PILLOW_SIMD_FLAGS       compiler flags of the Pillow-SIMD build (default -mavx2;
#                           empty: Pillow-SIMD's default, SSE4, for CPUs without AVX2)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/loadtest/pygateway
variant=${1:-stock}
die() { echo "pygateway/install: $*" >&2; exit 1; }
case $variant in
stock) venv=${BENCH_VENV:-$root/.bench-venv} ;;
simd) venv=${BENCH_SIMD_VENV:-$root/.bench-simd-venv} ;;
*) die "unknown variant '$variant' (want: stock or simd)" ;;
esac
reqs=$here/requirements.txt
timeout_s=${BENCH_INSTALL_TIMEOUT:-600}
simd_flags=${PILLOW_SIMD_FLAGS--mavx2}

py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
	if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
fi
command -v "$py" >/dev/null || die "no Python interpreter '$py' (set BENCH_PYTHON)"
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"

stamp=$venv/.installed
want=$(printf 'python=%s %s\nrequirements=%s\n' "$(readlink -f "$(command -v "$py")")" "$pyver" "$(sha256sum "$reqs" | cut -d' ' -f1)")
if [ "$variant" = simd ]; then
	want+=$(printf '\nsimd=%s\nflags=%s\n' "$(cat "$here/requirements-simd-build.txt" "$here/requirements-simd.txt" | sha256sum | cut -d' ' -f1)" "$simd_flags")
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
	echo "pygateway/install: up to date: $venv" >&2
	echo "$venv/bin/python"
	exit 0
fi

pip=(timeout "$timeout_s" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input)
if [ "$variant" = stock ]; then
	echo "pygateway/install: creating $venv with $py ($pyver): requirements.txt (stock Pillow) from PyPI" >&2
	rm -rf "$venv"
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	"${pip[@]}" -r "$reqs" || die "pip install -r $reqs failed (or ran past ${timeout_s}s)"
else
	if [[ " $simd_flags " == *" -mavx2 "* ]] && ! grep -qw avx2 /proc/cpuinfo; then
		die "this CPU has no AVX2: set PILLOW_SIMD_FLAGS= (empty) for Pillow-SIMD's SSE4 build"
	fi
	"$root/scripts/install-debian-packages.sh" "the Pillow-SIMD build of the benchmark's Python peer" \
		gcc "python$pyver-dev" libjpeg62-turbo-dev zlib1g-dev libwebp-dev ||
		die "the build's Debian packages are missing"
	echo "pygateway/install: creating $venv with $py ($pyver): requirements.txt without pillow, and" \
		"Pillow-SIMD compiled from its sdist with CC='cc $simd_flags'" >&2
	rm -rf "$venv"
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	filtered=$(mktemp -t pygateway-reqs.XXXXXX)
	trap 'rm -f "$filtered"' EXIT
	grep -v -i '^pillow==' "$reqs" >"$filtered"
	# The build backend's own requirements, pinned, then the build without isolation
	# so that pip does not fetch unpinned ones.
	"${pip[@]}" -r "$here/requirements-simd-build.txt" || die "pip install of the build requirements failed"
	CC="${CC:-cc} $simd_flags" "${pip[@]}" --no-build-isolation --no-binary pillow-simd --no-cache-dir \
		-r "$filtered" -r "$here/requirements-simd.txt" ||
		die "pip install of Pillow-SIMD and the other requirements failed (or ran past ${timeout_s}s)"
fi
"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"
"$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, multipart, PIL, numpy, tritonclient.grpc.aio' ||
	die "the installed packages do not import"
if [ "$variant" = simd ]; then
	"$venv/bin/python" - <<'EOF' || die "the built Pillow-SIMD is not what was asked for"
import re
import sys

import PIL
from PIL import Image, features

ok = True
if not re.search(r"\.post\d+$", PIL.__version__):
    print(f"PIL {PIL.__version__} is not Pillow-SIMD (its versions end in .postN)", file=sys.stderr)
    ok = False
if not features.check_feature("libjpeg_turbo"):
    print("Pillow-SIMD's JPEG codec is not libjpeg-turbo", file=sys.stderr)
    ok = False
if not features.check("webp"):
    print("Pillow-SIMD was built without WebP", file=sys.stderr)
    ok = False
print(f"pygateway/install: Pillow-SIMD {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}, "
      f"webp {features.version('webp')}; {Image.core.__file__}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
	if [[ " $simd_flags " == *" -mavx2 "* ]]; then
		if command -v objdump >/dev/null; then
			so=$("$venv/bin/python" -c 'from PIL import Image; print(Image.core.__file__)')
			ymm=$(objdump -d --no-show-raw-insn "$so" | grep -c ymm || true)
			[ "$ymm" -gt 0 ] || die "$so has no AVX2 (ymm) instruction: the -mavx2 build did not take"
			echo "pygateway/install: $(basename "$so") holds $ymm instructions on ymm registers (AVX2)" >&2
		else
			echo "pygateway/install: objdump not found: the AVX2 build is not verified" >&2
		fi
	fi
fi
echo "$want" >"$stamp"
echo "pygateway/install: installed $venv ($(du -sh "$venv" | cut -f1))" >&2
echo "$venv/bin/python"
