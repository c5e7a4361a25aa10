#!/usr/bin/env bash
# Installs the reference Python gateway's pinned packages (requirements.txt) into
# a virtual environment, by default <repo>/.bench-venv (git-ignored). Idempotent:
# run again, it does nothing while the interpreter and requirements.txt are
# unchanged, and rebuilds the environment from scratch when either changed.
# Prints the environment's python on stdout.
#
#   loadtest/pygateway/install.sh
#
# Environment (optional):
#   BENCH_VENV              where (default <repo>/.bench-venv)
#   BENCH_PYTHON            interpreter (default /usr/bin/python3, else python3);
#                           CPython 3.9+ with the venv module (Debian: python3-venv)
#   BENCH_INSTALL_TIMEOUT   seconds pip may take (default 600)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${BENCH_VENV:-$root/.bench-venv}
reqs=$root/loadtest/pygateway/requirements.txt
timeout_s=${BENCH_INSTALL_TIMEOUT:-600}
die() { echo "pygateway/install: $*" >&2; exit 1; }

py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
	if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
fi
command -v "$py" >/dev/null || die "no Python interpreter '$py' (set BENCH_PYTHON)"
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"

stamp=$venv/.installed
want=$(printf 'python=%s %s\nrequirements=%s\n' "$(readlink -f "$(command -v "$py")")" "$pyver" "$(sha256sum "$reqs" | cut -d' ' -f1)")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
	echo "pygateway/install: up to date: $venv" >&2
	echo "$venv/bin/python"
	exit 0
fi

echo "pygateway/install: creating $venv with $py ($pyver)" >&2
rm -rf "$venv"
"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
timeout "$timeout_s" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$reqs" ||
	die "pip install -r $reqs failed (or ran past ${timeout_s}s)"
"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"
"$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, multipart, PIL, numpy, tritonclient.grpc.aio' ||
	die "the installed packages do not import"
echo "$want" >"$stamp"
echo "pygateway/install: installed $venv ($(du -sh "$venv" | cut -f1))" >&2
echo "$venv/bin/python"
