#!/usr/bin/env bash
# MLflow, the tracking server and model registry of the model-lifecycle tests
# (internal/testenv's StartMLflow), and its Python client, in a virtual
# environment of their own with every package pinned by version and hash
# (scripts/mlflow-requirements.txt, from PyPI): mlflow, pymysql (the driver of
# the MariaDB backend store) and boto3 (the S3 client with which the server's
# artifact proxy writes to MinIO).
#
#   scripts/mlflow.sh install   make .mlflow-venv/ (idempotent); prints mlflow's path
#   scripts/mlflow.sh path      print mlflow's path; fails, saying how to install, when the
#                               environment is missing or older than the requirements
#   scripts/mlflow.sh lock      regenerate scripts/mlflow-requirements.txt from
#                               scripts/mlflow-requirements.in (pip-compile, PyPI)
#
# install does nothing on a second run while the interpreter and the
# requirements are unchanged (well under a second), and rebuilds the
# environment from scratch when either changed (about a minute: some 90 wheels,
# 200 MB). What it does and why goes to stderr; stdout is mlflow's path only.
#
# Environment (all optional):
#   MLFLOW_VENV             the environment (default <repo>/.mlflow-venv)
#   MLFLOW_PYTHON           interpreter for it (default /usr/bin/python3, else python3);
#                           CPython 3.11 or newer (the requirements are compiled for 3.11)
#   MLFLOW_INSTALL_TIMEOUT  seconds for apt-get and for pip each (default 900)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${MLFLOW_VENV:-$root/.mlflow-venv}
reqs=$root/scripts/mlflow-requirements.txt
reqs_in=$root/scripts/mlflow-requirements.in
stamp=$venv/.installed
mlflow=$venv/bin/mlflow
install_timeout=${MLFLOW_INSTALL_TIMEOUT:-900}
# Bump when the install steps below change, so that install redoes them.
layout_version=1

log() { echo "mlflow: $*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

[[ $install_timeout =~ ^[1-9][0-9]*$ ]] || die "MLFLOW_INSTALL_TIMEOUT must be a positive number of seconds, not '$install_timeout'"

# pick_python sets py and pyver: the interpreter the environment is made with.
pick_python() {
	py=${MLFLOW_PYTHON:-}
	if [ -z "$py" ]; then
		if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
	fi
	command -v "$py" >/dev/null || die "no Python interpreter '$py' (set MLFLOW_PYTHON)"
	pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
	"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "$py is Python $pyver; the pinned requirements are for CPython 3.11 or newer (set MLFLOW_PYTHON)"
}

# Debian ships the venv module (ensurepip) apart from Python itself.
ensure_venv_module() {
	"$py" -c 'import ensurepip' 2>/dev/null && return 0
	command -v dpkg >/dev/null || die "$py has no venv module (ensurepip)"
	"$root/scripts/install-debian-packages.sh" "the MLflow environment ($venv)" "python$pyver-venv"
}

requirements_line() { printf 'requirements=%s' "$(sha256sum "$reqs" | cut -d' ' -f1)"; }

# want_stamp is what an installed environment records: what it was made from.
want_stamp() {
	printf 'layout=%s\npython=%s %s\n%s\n' "$layout_version" "$(readlink -f "$(command -v "$py")")" "$pyver" "$(requirements_line)"
}

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
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(want_stamp)" ] && [ -x "$mlflow" ]; then
		log "up to date: $venv ($(sed -n 's/^mlflow==\([^ ]*\).*/mlflow \1/p' "$reqs"))"
		echo "$mlflow"
		return 0
	fi
	if [ -f "$stamp" ]; then
		log "rebuilding $venv: made from other requirements or another interpreter"
	else
		log "installing the MLflow server and client into $venv for the model-lifecycle tests"
	fi
	ensure_venv_module

	local t0=$SECONDS version
	# Empty it but keep the lock file this process holds.
	find "$venv" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
	log "creating the environment with $py ($pyver)"
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	log "pip install --require-hashes -r scripts/mlflow-requirements.txt: $(grep -c '^[a-z]' "$reqs") pinned packages from PyPI, wheels only"
	timeout "$install_timeout" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes --only-binary :all: --no-deps -r "$reqs" ||
		die "pip install failed (or ran past ${install_timeout}s)"
	"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"
	version=$("$mlflow" --version) || die "$mlflow does not run"
	want_stamp >"$stamp"
	log "installed $version in $((SECONDS - t0))s ($(du -sh "$venv" | cut -f1))"
	echo "$mlflow"
}

cmd_path() {
	[ -x "$mlflow" ] || die "not installed: run 'scripts/mlflow.sh install'"
	[ -f "$reqs" ] && [ -f "$stamp" ] && [ "$(sed -n 3p "$stamp")" = "$(requirements_line)" ] ||
		die "$venv is older than scripts/mlflow-requirements.txt: run 'scripts/mlflow.sh install'"
	echo "$mlflow"
}

# lock regenerates the pinned requirements. pip-compile runs from a throwaway
# environment; it resolves the closure of mlflow-requirements.in for this Python
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
		--no-emit-index-url --no-emit-find-links --output-file=mlflow-requirements.txt mlflow-requirements.in) ||
		die "pip-compile failed"
	log "wrote $reqs; run '$0 install' to use it"
}

case ${1:-} in
install) cmd_install ;;
path) cmd_path ;;
lock) cmd_lock ;;
*) usage ;;
esac
