#!/usr/bin/env bash
# schemathesis, the checker of the OpenAPI contract test
# (gateway/cmd/gateway/contract_e2e_test.go, `make contract`), in a virtual
# environment of its own with every package pinned by version and hash
# (scripts/schemathesis-requirements.txt, from PyPI).
#
#   scripts/schemathesis.sh install   make .schemathesis-venv/ (idempotent); prints st's path
#   scripts/schemathesis.sh path      print st's path; fails, saying how to install, when the
#                                     environment is missing or older than the requirements
#   scripts/schemathesis.sh lock      regenerate scripts/schemathesis-requirements.txt from
#                                     scripts/schemathesis-requirements.in (pip-compile, PyPI)
#
# install does nothing on a second run while the interpreter and the
# requirements are unchanged, and rebuilds the environment from scratch when
# either changed. What it does and why goes to stderr; stdout is st's path only.
#
# Environment (all optional):
#   SCHEMATHESIS_VENV             the environment (default <repo>/.schemathesis-venv)
#   SCHEMATHESIS_PYTHON           interpreter for it (default /usr/bin/python3, else python3);
#                                 CPython 3.11 or newer (the requirements are compiled for 3.11)
#   SCHEMATHESIS_INSTALL_TIMEOUT  seconds for apt-get and for pip each (default 600)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SCHEMATHESIS_VENV:-$root/.schemathesis-venv}
reqs=$root/scripts/schemathesis-requirements.txt
reqs_in=$root/scripts/schemathesis-requirements.in
stamp=$venv/.installed
st=$venv/bin/st
install_timeout=${SCHEMATHESIS_INSTALL_TIMEOUT:-600}
# Bump when the install steps below change, so that install redoes them.
layout_version=1

log() { echo "schemathesis: $*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

[[ $install_timeout =~ ^[1-9][0-9]*$ ]] || die "SCHEMATHESIS_INSTALL_TIMEOUT must be a positive number of seconds, not '$install_timeout'"

# pick_python sets py and pyver: the interpreter the environment is made with.
pick_python() {
	py=${SCHEMATHESIS_PYTHON:-}
	if [ -z "$py" ]; then
		if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
	fi
	command -v "$py" >/dev/null || die "no Python interpreter '$py' (set SCHEMATHESIS_PYTHON)"
	pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
	"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "$py is Python $pyver; the pinned requirements are for CPython 3.11 or newer (set SCHEMATHESIS_PYTHON)"
}

# Debian ships the venv module (ensurepip) apart from Python itself.
ensure_debian_packages() {
	command -v dpkg >/dev/null || return 0
	# Only for Debian's own interpreter; another one brings its own venv module.
	[ "$(readlink -f "$(command -v "$py")")" = "/usr/bin/python$pyver" ] || return 0
	local pkg=python$pyver-venv
	dpkg -s "$pkg" >/dev/null 2>&1 && return 0
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	log "installing the Debian package $pkg: Python's venv module, to make $venv"
	export DEBIAN_FRONTEND=noninteractive
	timeout "$install_timeout" "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
	timeout "$install_timeout" "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$pkg" ||
		die "apt-get install $pkg failed"
}

requirements_line() { printf 'requirements=%s' "$(sha256sum "$reqs" | cut -d' ' -f1)"; }

# want_stamp is what an installed environment records: what it was made from.
want_stamp() {
	printf 'layout=%s\npython=%s %s\n%s\n' "$layout_version" "$(readlink -f "$(command -v "$py")")" "$pyver" "$(requirements_line)"
}

# Serialise installs of one environment (a test and `make` may start one together).
lock() {
	mkdir -p "$venv"
	exec 9>"$venv/.lock"
	flock -w 300 9 || die "another install holds $venv/.lock for more than 300s"
}

cmd_install() {
	[ -f "$reqs" ] || die "missing $reqs"
	pick_python
	lock
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(want_stamp)" ] && [ -x "$st" ]; then
		log "up to date: $venv ($("$st" --version 2>/dev/null || echo '?'))"
		echo "$st"
		return 0
	fi
	if [ -f "$stamp" ]; then
		log "rebuilding $venv: made from other requirements or another interpreter"
	else
		log "installing schemathesis into $venv for the OpenAPI contract test (make contract)"
	fi
	ensure_debian_packages

	local t0=$SECONDS version
	# Empty it but keep the lock file this process holds.
	find "$venv" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
	log "creating the environment with $py ($pyver)"
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	log "pip install --require-hashes -r scripts/schemathesis-requirements.txt: $(grep -c '^[a-z]' "$reqs") pinned packages from PyPI, wheels only"
	timeout "$install_timeout" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes --only-binary :all: --no-deps -r "$reqs" ||
		die "pip install failed (or ran past ${install_timeout}s)"
	"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"
	version=$("$st" --version) || die "$st does not run"
	want_stamp >"$stamp"
	log "installed $version in $((SECONDS - t0))s ($(du -sh "$venv" | cut -f1))"
	echo "$st"
}

cmd_path() {
	[ -x "$st" ] || die "not installed: run 'scripts/schemathesis.sh install' (or 'make contract')"
	[ -f "$reqs" ] && [ -f "$stamp" ] && [ "$(sed -n 3p "$stamp")" = "$(requirements_line)" ] ||
		die "$venv is older than scripts/schemathesis-requirements.txt: run 'scripts/schemathesis.sh install'"
	echo "$st"
}

# lock regenerates the pinned requirements. pip-compile runs from a throwaway
# environment; it resolves schemathesis's dependency closure for this Python
# and records every distribution's hash that PyPI lists for each pin.
cmd_lock() {
	[ -f "$reqs_in" ] || die "missing $reqs_in"
	pick_python
	local tmp
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expanded now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	log "pip-compile $reqs_in with $py ($pyver)"
	"$py" -m venv "$tmp/venv" || die "$py -m venv failed"
	"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check 'pip-tools==7.7.0' ||
		die "pip install pip-tools failed"
	(cd "$root/scripts" && "$tmp/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file=schemathesis-requirements.txt schemathesis-requirements.in) ||
		die "pip-compile failed"
	log "wrote $reqs; run '$0 install' to use it"
}

case ${1:-} in
install) cmd_install ;;
path) cmd_path ;;
lock) cmd_lock ;;
*) usage ;;
esac
