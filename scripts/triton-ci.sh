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
#   scripts/triton-ci.sh stop      stop it (SIGTERM, then SIGKILL after a timeout)
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
#                              fixed ports (default: free ones picked at start)
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
# State of a running server: <run>/{pid,grpc_port,http_port,metrics_port,log};
# the model repository it serves is assembled in <run>/models at each start.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${TRITON_CI_VENV:-$root/.triton-venv}
# The real path: a venv reached through a symlink (a worktree sharing one) must
# still be recognised in /proc/<pid>/exe, which names the resolved path.
if [ -d "$venv" ]; then venv=$(cd "$venv" && pwd -P); fi
run=${TRITON_CI_RUN_DIR:-$venv/run}
reqs=$root/triton-ci/requirements.txt
ci_model=$root/triton-ci/models/fish_classifier
prod_model=$root/triton-models/fish_classifier
model=fish_classifier
backends=$venv/triton-backends
state=$venv/.triton-ci-installed
start_timeout=${TRITON_CI_START_TIMEOUT:-90}
stop_timeout=${TRITON_CI_STOP_TIMEOUT:-30}
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

for v in start_timeout stop_timeout install_timeout; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number of seconds, not '${!v}'"
done

# Serialise install/start/stop of one venv (CI jobs may share a checkout).
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
	if server_running; then
		die "a server from this venv is running (pid $(cat "$run/pid")); run '$0 stop' before reinstalling"
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

load_state() {
	if ! [ -f "$state" ] || ! installed_ok; then die "not installed: run '$0 install' first"; fi
	server=$(sed -n 's/^server=//p' "$state")
	ld_path=$(sed -n 's/^ld_library_path=//p' "$state")
	vpy=$venv/bin/python
}

# ---------------------------------------------------------------- processes

# True when $run/pid names a live tritonserver started from this venv.
server_running() {
	[ -f "$run/pid" ] || return 1
	local pid exe
	pid=$(cat "$run/pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	is_our_server "$pid"
}

is_our_server() {
	local pid=$1 exe st
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ $exe == "$venv"/*/tritonserver ]] || return 1
	st=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null | awk '{print $1}') || return 1
	[ "$st" != Z ]
}

# Live (not zombie) processes whose process group is $1: the server and its
# Python stubs. Builtins only: it runs in wait loops.
group_members() {
	local group=$1 d s st pgrp
	for d in /proc/[0-9]*; do
		read -r s 2>/dev/null <"$d/stat" || continue
		s=${s##*) } # after the command name: state ppid pgrp ...
		read -r st _ pgrp _ <<<"$s"
		[ "$pgrp" = "$group" ] && [ "$st" != Z ] && echo "${d#/proc/}"
	done
	return 0
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(cut -d')' -f2- "/proc/$1/stat" 2>/dev/null | awk '{print $1}')" != Z ]; }

# Stops the process group led by $1: SIGTERM to the server (it unloads the
# model and stops its stubs), SIGKILL to the whole group after stop_timeout;
# then removes the shared-memory regions a killed stub leaves in /dev/shm.
stop_group() {
	local pid=$1 shm=() p deadline
	# The regions: named on each stub's command line, mapped by the server (also
	# those of stubs that died).
	local name
	for p in $(group_members "$pid"); do
		while read -r name; do shm+=("$name"); done < <( (
			tr '\0' '\n' <"/proc/$p/cmdline"
			awk '{print $6}' "/proc/$p/maps"
		) 2>/dev/null | sed -n 's|^\(/dev/shm/\)\{0,1\}\(triton_python_backend_shm_region[-_[:alnum:]]*\)$|\2|p')
	done
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + stop_timeout))
	while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
	if alive "$pid"; then
		log "pid $pid still running ${stop_timeout}s after SIGTERM: SIGKILL to its process group"
	fi
	# A group id cannot be reused while a member lives: members left are ours.
	[ -z "$(group_members "$pid")" ] || kill -KILL -- "-$pid" 2>/dev/null || true
	deadline=$((SECONDS + 10))
	while [ -n "$(group_members "$pid")" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
	[ -z "$(group_members "$pid")" ] || log "process group $pid did not go away: $(group_members "$pid" | tr '\n' ' ')"
	for p in $(printf '%s\n' "${shm[@]+"${shm[@]}"}" | sort -u); do rm -f "/dev/shm/$p"; done
}

clear_run_state() { rm -f "$run/pid" "$run/grpc_port" "$run/http_port" "$run/metrics_port" "$run/.version"; }

# ---------------------------------------------------------------- start

# The repository Triton serves: the CI configuration and model.py from
# triton-ci/, the labels and the ONNX file from the production repository
# (copied, not linked, so that rebuilding triton-models/ mid-run cannot change
# what a running server reloads).
assemble_repository() {
	local dst=$run/models/$model
	local f
	for f in "$ci_model/config.pbtxt" "$ci_model/1/model.py" "$prod_model/labels.txt" "$prod_model/1/model.onnx"; do
		[ -f "$f" ] || die "missing $f"
	done
	rm -rf "$run/models"
	mkdir -p "$dst/1"
	cp "$ci_model/config.pbtxt" "$dst/config.pbtxt"
	cp "$prod_model/labels.txt" "$dst/labels.txt"
	cp "$ci_model/1/model.py" "$prod_model/1/model.onnx" "$dst/1/"
}

valid_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# Prints "grpc http metrics": the fixed ones from the environment, free
# loopback ports (bound together, so distinct) for the rest.
pick_ports() {
	"$vpy" - "${TRITON_CI_GRPC_PORT:-0}" "${TRITON_CI_HTTP_PORT:-0}" "${TRITON_CI_METRICS_PORT:-0}" <<'EOF'
import socket, sys
socks, ports = [], []
for want in sys.argv[1:]:
    if want != "0":
        ports.append(want)
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(str(s.getsockname()[1]))
print(*ports)
EOF
}

# Waits until Triton is ready (server and model) or the time is up or it died.
# Prints Triton's version on success. Run it in the background only (it execs):
# bash defers a trapped signal until a foreground command ends, not a `wait`.
wait_ready() {
	exec "$vpy" - "$1" "$2" "$start_timeout" "$model" <<'EOF'
import json, sys, time, urllib.request
pid, port, timeout, model = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + timeout

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def ok(path):
    try:
        with urllib.request.urlopen(base + path, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False

while True:
    if not alive():
        sys.exit("triton-ci: tritonserver exited before it was ready")
    if ok("/v2/health/ready") and ok(f"/v2/models/{model}/ready"):
        with urllib.request.urlopen(base + "/v2", timeout=2) as r:
            print(json.load(r).get("version", "?"))
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit(f"triton-ci: not ready after {timeout:.0f}s (TRITON_CI_START_TIMEOUT)")
    time.sleep(0.1)
EOF
}

cmd_start() {
	load_state
	lock
	if server_running; then
		die "already running (pid $(cat "$run/pid"), gRPC 127.0.0.1:$(cat "$run/grpc_port" 2>/dev/null)); '$0 stop' first"
	fi
	clear_run_state
	mkdir -p "$run"
	assemble_repository
	local p
	for p in TRITON_CI_GRPC_PORT TRITON_CI_HTTP_PORT TRITON_CI_METRICS_PORT; do
		[ -z "${!p:-}" ] || valid_port "${!p}" || die "$p must be a port number, not '${!p}'"
	done
	# Interrupted (Ctrl-C, a CI timeout's SIGTERM) while starting: leave nothing behind.
	starting="" waiter=""
	trap 'log "interrupted"; [ -z "$waiter" ] || kill "$waiter" 2>/dev/null; if [ -n "$starting" ]; then stop_group "$starting"; clear_run_state; fi; exit 130' INT TERM HUP
	# Picked ports can be taken between the pick and Triton's bind: then try
	# others. A fixed port that is taken fails at once.
	local attempts=3
	[ -z "${TRITON_CI_GRPC_PORT:-}${TRITON_CI_HTTP_PORT:-}${TRITON_CI_METRICS_PORT:-}" ] || attempts=1

	local attempt ports grpc http metrics pid version t0 extra=()
	read -r -a extra <<<"${TRITON_CI_ARGS:-}"
	for ((attempt = 1; attempt <= attempts; attempt++)); do
		ports=$(pick_ports) || die "could not pick free ports"
		read -r grpc http metrics <<<"$ports"
		rm -f "$run/pid"
		: >"$run/log"
		t0=$(date +%s%N)
		# setsid: Triton and its Python stubs get their own process group, so
		# stop can kill every one of them. The inner sh writes its pid (which
		# exec makes Triton's) before exec. PATH: the stub embeds libpython in
		# isolated mode (PYTHONPATH is ignored) and finds its prefix, hence the
		# venv's site-packages (numpy, onnxruntime), from the first python3 on PATH.
		(
			exec 9>&- # the lock stays with this script, not with the server
			cd "$run"
			unset PYTHONPATH PYTHONHOME
			export PATH="$venv/bin:$PATH" TRITON_CI_ORT_THREADS="${TRITON_CI_ORT_THREADS:-1}"
			[ -z "$ld_path" ] || export LD_LIBRARY_PATH="$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
			# shellcheck disable=SC2016 # expanded by the inner sh
			exec setsid sh -c 'echo $$ >"$0"; exec "$@"' "$run/pid" \
				"$server/bin/tritonserver" \
				--model-repository="$run/models" \
				--backend-directory="$backends" \
				--cache-directory="$server/caches" \
				--model-control-mode=explicit --load-model="$model" \
				--strict-readiness=true \
				--grpc-address=127.0.0.1 --grpc-port="$grpc" \
				--http-address=127.0.0.1 --http-port="$http" \
				--metrics-address=127.0.0.1 --metrics-port="$metrics" \
				--allow-metrics=true --allow-gpu-metrics=false --allow-cpu-metrics=true \
				--exit-timeout-secs=10 \
				--log-verbose="${TRITON_CI_LOG_VERBOSE:-0}" \
				"${extra[@]}" \
				</dev/null >>"$run/log" 2>&1
		) &
		local deadline=$((SECONDS + 10))
		while [ ! -s "$run/pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
		[ -s "$run/pid" ] || die "tritonserver did not start (no pid file); log: $run/log"
		pid=$(cat "$run/pid")
		starting=$pid
		wait_ready "$pid" "$http" >"$run/.version" &
		waiter=$!
		if wait "$waiter"; then
			waiter=
			version=$(cat "$run/.version")
			echo "$grpc" >"$run/grpc_port"
			echo "$http" >"$run/http_port"
			echo "$metrics" >"$run/metrics_port"
			log "Triton $version ready in $((($(date +%s%N) - t0) / 1000000)) ms (pid $pid, log $run/log)"
			printf 'grpc_port=%s\nhttp_port=%s\nmetrics_port=%s\n' "$grpc" "$http" "$metrics"
			starting=
			return 0
		fi
		waiter=
		stop_group "$pid"
		starting=
		rm -f "$run/pid"
		if [ $attempt -lt $attempts ] && grep -q -i 'address already in use' "$run/log"; then
			log "a port was taken meanwhile; trying other ports"
			continue
		fi
		break
	done
	log "Triton did not become ready; last lines of $run/log:"
	grep -v -E '^[|+]|^$' "$run/log" | tail -n 30 >&2
	clear_run_state
	exit 1
}

# ---------------------------------------------------------------- stop, env, status

cmd_stop() {
	lock
	if [ ! -f "$run/pid" ]; then
		log "not running"
		return 0
	fi
	local pid
	pid=$(cat "$run/pid")
	if [[ $pid =~ ^[0-9]+$ ]] && is_our_server "$pid"; then
		local t0=$SECONDS
		stop_group "$pid"
		log "stopped pid $pid in $((SECONDS - t0))s"
	else
		log "pid file $run/pid is stale (process $pid is gone); cleaned up"
	fi
	clear_run_state
}

cmd_env() {
	server_running && [ -s "$run/metrics_port" ] || die "not running: '$0 start' first"
	local g h m
	g=$(cat "$run/grpc_port") h=$(cat "$run/http_port") m=$(cat "$run/metrics_port")
	echo "export TRITON_GRPC_ADDR=127.0.0.1:$g"
	echo "export TRITON_HTTP_URL=http://127.0.0.1:$h"
	echo "export TRITON_METRICS_URL=http://127.0.0.1:$m/metrics"
	# The gateway's own variable (BACKEND=triton), for running it against this server.
	echo "export TRITON_URL=127.0.0.1:$g"
}

cmd_status() {
	if ! server_running || ! [ -s "$run/metrics_port" ]; then
		echo "not running"
		return 3
	fi
	local pid rss=0 p
	pid=$(cat "$run/pid")
	for p in $(group_members "$pid"); do
		rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo "running: pid $pid, gRPC 127.0.0.1:$(cat "$run/grpc_port"), HTTP 127.0.0.1:$(cat "$run/http_port")," \
		"metrics 127.0.0.1:$(cat "$run/metrics_port"); RSS $((rss / 1024)) MiB (server + stubs); log $run/log"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*) usage ;;
esac
