#!/usr/bin/env bash
# A Python tool in a virtual environment of its own, every package pinned by
# version and hash (scripts/NAME-requirements.txt, compiled from
# scripts/NAME-requirements.in, from PyPI). One script for every such tool:
#
#   schemathesis  the checker of the OpenAPI contract test (make contract);
#                 .schemathesis-venv/, its command st
#   mlflow        the MLflow server and client of the model-lifecycle tests and
#                 of make model-log / publish-model (mlflow, pymysql for the
#                 MariaDB backend store, boto3 for S3); .mlflow-venv/, its
#                 command mlflow
#
#   scripts/pinned-venv.sh NAME install   make the environment (idempotent); prints the command's path
#   scripts/pinned-venv.sh NAME path      print the command's path; fails, saying how to install,
#                                         when the environment is missing or older than the requirements
#   scripts/pinned-venv.sh NAME lock      regenerate scripts/NAME-requirements.txt from
#                                         scripts/NAME-requirements.in (pip-compile, PyPI)
#
# scripts/schemathesis.sh and scripts/mlflow.sh are this script for their tool.
# install does nothing on a second run while the interpreter and the
# requirements are unchanged (well under a second), and rebuilds the
# environment from scratch when either changed. What it does and why goes to
# stderr; stdout is the command's path only.
#
# Environment (all optional; NAME in capitals: SCHEMATHESIS_, MLFLOW_):
#   NAME_VENV             the environment (default <repo>/.NAME-venv)
#   NAME_PYTHON           interpreter for it (default /usr/bin/python3, else python3);
#                         CPython 3.11 or newer (the requirements are compiled for 3.11)
#   NAME_INSTALL_TIMEOUT  seconds for apt-get and for pip each (default 900)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:-}
case $name in
schemathesis)
	tool=st
	purpose="schemathesis, for the OpenAPI contract test (make contract)"
	;;
mlflow)
	tool=mlflow
	purpose="the MLflow server and client, for the model-lifecycle tests and make model-log / publish-model"
	;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
venv_var=${upper}_VENV python_var=${upper}_PYTHON timeout_var=${upper}_INSTALL_TIMEOUT
venv=${!venv_var:-$root/.$name-venv}
reqs=$root/scripts/$name-requirements.txt
reqs_in=$root/scripts/$name-requirements.in
stamp=$venv/.installed
cmd=$venv/bin/$tool
install_timeout=${!timeout_var:-900}
# Bump when the install steps below change, so that install redoes them.
layout_version=1

log() { echo "$name: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $install_timeout =~ ^[1-9][0-9]*$ ]] || die "$timeout_var must be a positive number of seconds, not '$install_timeout'"

# pick_python sets py and pyver: the interpreter the environment is made with.
pick_python() {
	py=${!python_var:-}
	if [ -z "$py" ]; then
		if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
	fi
	command -v "$py" >/dev/null || die "no Python interpreter '$py' (set $python_var)"
	pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
	"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "$py is Python $pyver; the pinned requirements are for CPython 3.11 or newer (set $python_var)"
}

# Debian ships the venv module (ensurepip) apart from Python itself.
ensure_venv_module() {
	"$py" -c 'import ensurepip' 2>/dev/null && return 0
	command -v dpkg >/dev/null || die "$py has no venv module (ensurepip)"
	"$root/scripts/install-debian-packages.sh" "the $name environment ($venv)" "python$pyver-venv"
}

requirements_line() { printf 'requirements=%s' "$(sha256sum "$reqs" | cut -d' ' -f1)"; }

# want_stamp is what an installed environment records: what it was made from.
want_stamp() {
	printf 'layout=%s\npython=%s %s\n%s\n' "$layout_version" "$(readlink -f "$(command -v "$py")")" "$pyver" "$(requirements_line)"
}

# pinned names the tool's own pin in the requirements ("mlflow 3.17.2").
pinned() { sed -n "s/^$name==\([^ ]*\).*/$name \1/p" "$reqs"; }

# Serialise installs of one environment (test packages and `make` may start one together).
lock() {
	mkdir -p "$venv"
	exec 9>"$venv/.lock"
	flock -w 900 9 || die "another install holds $venv/.lock for more than 900s"
}

cmd_install() {
	[ -f "$reqs" ] || die "missing $reqs"
	pick_python
	lock
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(want_stamp)" ] && [ -x "$cmd" ]; then
		log "up to date: $venv ($(pinned))"
		echo "$cmd"
		return 0
	fi
	if [ -f "$stamp" ]; then
		log "rebuilding $venv: made from other requirements or another interpreter"
	else
		log "installing $purpose into $venv"
	fi
	ensure_venv_module

	local t0=$SECONDS
	# Empty it but keep the lock file this process holds.
	find "$venv" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
	log "creating the environment with $py ($pyver)"
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	log "pip install --require-hashes -r scripts/$name-requirements.txt: $(grep -c '^[a-z]' "$reqs") pinned packages from PyPI, wheels only"
	timeout "$install_timeout" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes --only-binary :all: --no-deps -r "$reqs" ||
		die "pip install failed (or ran past ${install_timeout}s)"
	"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"
	"$cmd" --version >/dev/null || die "$cmd does not run"
	want_stamp >"$stamp"
	log "installed $(pinned) in $((SECONDS - t0))s ($(du -sh "$venv" | cut -f1))"
	echo "$cmd"
}

cmd_path() {
	[ -x "$cmd" ] || die "not installed: run 'scripts/$name.sh install'"
	[ -f "$reqs" ] && [ -f "$stamp" ] && [ "$(sed -n 3p "$stamp")" = "$(requirements_line)" ] ||
		die "$venv is older than scripts/$name-requirements.txt: run 'scripts/$name.sh install'"
	echo "$cmd"
}

# lock regenerates the pinned requirements. pip-compile runs from a throwaway
# environment; it resolves the closure of NAME-requirements.in for this Python
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
		--no-emit-index-url --no-emit-find-links --output-file="$name-requirements.txt" "$name-requirements.in") ||
		die "pip-compile failed"
	log "wrote $reqs; run 'scripts/$name.sh install' to use it"
}

case ${2:-} in
install) cmd_install ;;
path) cmd_path ;;
lock) cmd_lock ;;
*) exec "$0" ;;
esac
