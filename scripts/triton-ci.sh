#!/usr/bin/env bash
# Runs the real NVIDIA Triton Inference Server on the CPU for CI, serving the
# fish classifier from a CI-only model repository (triton-ci/, see its README).
# Triton comes from PyPI: the nvidia-pytriton wheel ships bin/tritonserver with
# the Python backend; the model runs the production model.onnx with onnxruntime.
#
#   scripts/triton-ci.sh install   make .triton-venv/ (pinned, idempotent)
#   scripts/triton-ci.sh start     start Triton on free loopback ports, wait until ready
#   scripts/triton-ci.sh env       print export lines for the running server
#   scripts/triton-ci.sh status    say whether it runs, where, and how big it is
#   scripts/triton-ci.sh stop      stop it (SIGTERM, then SIGKILL to its process group
#                                  after a timeout) and remove the shared memory that
#                                  killed servers left in /dev/shm
#
# install is this script (venv, pip, the wheel's layout). start, stop, env and
# status are internal/tritonci, the Go supervision the tests use too, built and
# run by this script (needs Go).
#
# Typical use:
#   scripts/triton-ci.sh install && scripts/triton-ci.sh start
#   eval "$(scripts/triton-ci.sh env)"; go test ./...; scripts/triton-ci.sh stop
#
# Environment (all optional):
#   TRITON_CI_VENV             the environment (default: <repo>/.triton-venv)
#   TRITON_CI_PYTHON           interpreter for the venv (default /usr/bin/python3, else
#                              python3); CPython 3.8-3.13 with its shared libpython
#   TRITON_CI_GRPC_PORT, TRITON_CI_HTTP_PORT, TRITON_CI_METRICS_PORT
#                              fixed ports (default: free ones picked at start; a
#                              picked port taken meanwhile is retried, twice)
#   TRITON_CI_START_TIMEOUT    seconds to wait for readiness (default 90)
#   TRITON_CI_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   TRITON_CI_INSTALL_TIMEOUT  seconds for apt-get and for pip each (default 900)
#   TRITON_CI_LOG_VERBOSE      tritonserver --log-verbose level (default 0)
#   TRITON_CI_ARGS             extra tritonserver arguments, split on spaces
#   TRITON_CI_ORT_THREADS      onnxruntime intra-op threads in the model (default 1)
#
#   TRITON_CI_RUN_DIR          state of the running server (default <venv>/run): a test
#                              gives its own, so it never meets a server started by hand
#
# State of a running server: <run>/{pid,grpc_port,http_port,metrics_port,log,shm};
# the model repository it serves is assembled in <run>/models at each start.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TRITON_CI_VENV:-$root/.triton-venv}
# The real path: a venv reached through a symlink (a worktree sharing one) must
# still be recognised in /proc/<pid>/exe, which names the resolved path.
if [ -d "$venv" ]; then venv=$(cd "$venv" && pwd -P); fi
reqs=$root/triton-ci/requirements.txt
backends=$venv/triton-backends
state=$venv/.triton-ci-installed
install_timeout=${TRITON_CI_INSTALL_TIMEOUT:-900}
# Bump when the install layout below changes, so that install redoes it.
layout_version=1

log() { echo "triton-ci: $*" >&2; }
die() {
	log "$*"
	exit 1
}
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

[[ $install_timeout =~ ^[1-9][0-9]*$ ]] || die "TRITON_CI_INSTALL_TIMEOUT must be a positive number of seconds, not '$install_timeout'"

# Serialise installs of one venv (CI jobs may share a checkout); start and stop
# take the same lock (flock on <venv>/.lock, internal/tritonci).
lock() {
	mkdir -p "$venv"
	exec 9>"$venv/.lock"
	flock -w 120 9 || die "another triton-ci.sh holds $venv/.lock for more than 120s"
}

# ---------------------------------------------------------------- install

check_platform() {
	[ "$(uname -s)" = Linux ] || die "the Triton in nvidia-pytriton runs on Linux only; this is $(uname -s)"
	case "$(uname -m)" in
	x86_64 | amd64) ;;
	*) die "requirements.txt pins the x86_64 wheel of nvidia-pytriton; this is $(uname -m)" ;;
	esac
	local glibc
	glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}') || true
	[ -n "$glibc" ] || die "cannot tell the glibc version (getconf GNU_LIBC_VERSION); tritonserver needs glibc >= 2.35"
	if [ "$(printf '%s\n2.35\n' "$glibc" | sort -V | head -n1)" != 2.35 ]; then
		die "tritonserver (manylinux_2_35 wheel) needs glibc >= 2.35; this machine has $glibc"
	fi
}

# Debian/Ubuntu: the venv module and the shared libpython the Python backend's
# stub links against (libpython3.X.so.1.0) are separate packages.
ensure_debian_packages() {
	local pyver=$1 need=() pkg
	command -v dpkg >/dev/null || return 0
	# Only for Debian's own interpreter; another one brings its own libpython.
	[ "$(readlink -f "$(command -v "$py")")" = "/usr/bin/python$pyver" ] || return 0
	for pkg in "libpython$pyver" "python$pyver-venv"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	log "installing Debian packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout "$install_timeout" "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
	timeout "$install_timeout" "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" ||
		die "apt-get install ${need[*]} failed"
}

# Writes the stamp's contents: what the install depends on.
want_stamp() {
	printf 'layout=%s\npython=%s %s\nrequirements=%s\n' "$layout_version" "$(readlink -f "$(command -v "$py")")" "$pyver" \
		"$(sha256sum "$reqs" | cut -d' ' -f1)"
}

cmd_install() {
	check_platform
	[ -f "$reqs" ] || die "missing $reqs"
	py=${TRITON_CI_PYTHON:-}
	if [ -z "$py" ]; then
		if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py=python3; fi
	fi
	command -v "$py" >/dev/null || die "no Python interpreter '$py' (set TRITON_CI_PYTHON)"
	pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
	case $pyver in
	3.8 | 3.9 | 3.10 | 3.11 | 3.12 | 3.13) ;;
	*) die "nvidia-pytriton ships Python backend stubs for CPython 3.8-3.13; $py is $pyver" ;;
	esac
	lock
	ensure_debian_packages "$pyver"

	if [ -f "$state" ] && [ "$(sed -n '1,3p' "$state")" = "$(want_stamp)" ] && installed_ok; then
		log "up to date: $venv ($(sed -n 's/^package=//p' "$state"))"
		return 0
	fi
	local running
	running=$(servers_running)
	if [ -n "$running" ]; then
		die "servers from this venv are running (pid $running); stop them before reinstalling"
	fi

	local t0=$SECONDS
	log "creating $venv with $py ($pyver)"
	# Empty it but keep the lock file this process holds.
	find "$venv" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
	"$py" -m venv "$venv" || die "$py -m venv failed (Debian: apt-get install python$pyver-venv)"
	log "pip install -r triton-ci/requirements.txt (about 200 MB to download)"
	timeout "$install_timeout" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
		-r "$reqs" || die "pip install failed (or ran past ${install_timeout}s)"
	"$venv/bin/python" -m pip check >&2 || die "pip check found broken requirements"

	# The wheel's Triton: tritonserver, the Python backend and one stub per
	# Python version. Triton looks for the stub next to libtriton_python.so, so
	# the backend directory gets the stub that matches this venv's Python.
	local server
	server=$venv/lib/python$pyver/site-packages/pytriton/tritonserver
	[ -x "$server/bin/tritonserver" ] || die "no bin/tritonserver under $server"
	local stub=$server/python_backend_stubs/$pyver/triton_python_backend_stub
	[ -x "$stub" ] || die "nvidia-pytriton has no Python backend stub for Python $pyver ($stub)"
	mkdir -p "$backends/python"
	ln -sfn "$server/backends/python/libtriton_python.so" "$backends/python/libtriton_python.so"
	ln -sfn "$server/backends/python/triton_python_backend_utils.py" "$backends/python/triton_python_backend_utils.py"
	ln -sfn "$stub" "$backends/python/triton_python_backend_stub"

	# The stub links libpython$pyver.so.1.0. Debian's package puts it on the
	# default library path; a Python built elsewhere (pyenv, a toolcache) has it
	# in its own LIBDIR, which start then puts on LD_LIBRARY_PATH.
	local ld_path="" missing
	missing=$(ldd "$server/bin/tritonserver" "$server/backends/python/libtriton_python.so" 2>&1 | grep 'not found' || true)
	[ -z "$missing" ] || die "tritonserver's libraries are missing: $missing"
	missing=$(ldd "$stub" 2>&1 || true)
	if grep -q "libpython$pyver.*not found" <<<"$missing"; then
		local libdir
		libdir=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
		if [ -n "$libdir" ] && [ -e "$libdir/libpython$pyver.so.1.0" ]; then
			ld_path=$libdir
		else
			die "the Python backend stub needs libpython$pyver.so.1.0, which $py does not provide (Debian/Ubuntu: apt-get install libpython$pyver)"
		fi
	fi
	missing=$(LD_LIBRARY_PATH=$ld_path ldd "$stub" 2>&1 | grep 'not found' || true)
	[ -z "$missing" ] || die "the Python backend stub's libraries are missing: $missing"

	# tritonserver has no --version; its server metadata says the version
	# (2.51.0 in nvidia-pytriton 0.7.0), which start prints.
	local package
	package="nvidia-pytriton $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nvidia-pytriton"))')"
	{
		want_stamp
		printf 'server=%s\nld_library_path=%s\npackage=%s\n' "$server" "$ld_path" "$package"
	} >"$state"
	log "installed in $((SECONDS - t0))s: $venv ($package, Python $pyver, $(du -sh "$venv" | cut -f1))"
}

installed_ok() {
	local server
	server=$(sed -n 's/^server=//p' "$state")
	[ -x "$venv/bin/python" ] && [ -x "$server/bin/tritonserver" ] && [ -x "$backends/python/triton_python_backend_stub" ] &&
		[ -e "$backends/python/libtriton_python.so" ]
}

# Prints the pids of the live tritonservers of this venv (whatever their run folder).
servers_running() {
	local d exe
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		[[ $exe == "$venv"/*/tritonserver ]] && echo -n "${d#/proc/} "
	done
	return 0
}

# ---------------------------------------------------------------- start, stop, env, status

# The supervision is Go (internal/tritonci, also what the tests use): built
# into bin/ (git-ignored; cached by Go, so about a second when nothing
# changed) and run in place of this script, so that Ctrl-C and SIGTERM reach it.
supervise() {
	command -v go >/dev/null || die "'$1' needs Go: the supervision is internal/tritonci"
	# The command runs in the repository: relative folders are made absolute.
	export TRITON_CI_ROOT=$root
	[ -z "${TRITON_CI_VENV:-}" ] || TRITON_CI_VENV=$(realpath -m -- "$TRITON_CI_VENV")
	[ -z "${TRITON_CI_RUN_DIR:-}" ] || TRITON_CI_RUN_DIR=$(realpath -m -- "$TRITON_CI_RUN_DIR")
	export TRITON_CI_VENV TRITON_CI_RUN_DIR
	mkdir -p "$root/bin"
	local tmp=$root/bin/.triton-ci.$$
	(cd "$root" && CGO_ENABLED=0 go build -o "$tmp" ./internal/tritonci/cmd/triton-ci) || {
		rm -f "$tmp"
		die "building internal/tritonci/cmd/triton-ci failed"
	}
	mv -f "$tmp" "$root/bin/triton-ci"
	exec "$root/bin/triton-ci" "$1"
}

case "${1:-}" in
install) cmd_install ;;
start | stop | env | status) supervise "$1" ;;
*) usage ;;
esac
