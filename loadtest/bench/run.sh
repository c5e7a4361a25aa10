#!/usr/bin/env bash
# The performance campaign behind docs/performance.md: every comparison, side
# by side in alternating rounds, against the real Triton 2.51 on this CPU
# (scripts/triton-ci.sh) and the embedded ONNX Runtime backend.
#
#   loadtest/bench/run.sh          full campaign (~20 min on 2 cores, estimated with the Pillow-SIMD peer)
#   loadtest/bench/run.sh quick    every step once, 3-second runs (~2 min): checks the tooling
#
# Gateways: the Go gateway (go), and the reference Python gateway
# (loadtest/pygateway/app.py) twice: on stock Pillow (py, .bench-venv) and on
# Pillow-SIMD built with AVX2 (py-simd, .bench-simd-venv; SIMD_PEER=0 leaves it out).
#
# Steps (STEPS picks a subset, in this order):
#   check       every gateway classifies every test image alike (top-1 and confidences)
#   overhead    Go gateway vs a direct gRPC ModelInfer of the same tensors, fixed rate:
#               with the photos (overhead.*), then with an 8x8 PNG whose preprocessing
#               is ~0.5 ms of little CPU (overhead-tiny.*: the goal's definition)
#   saturation  Go gateway vs the Python gateways, closed loop at SAT_C connections
#   sizes       the same closed loop (SIZES_C connections) with one photo at a time:
#               preprocess/testdata/bench/photo_640x480, _1024x768 and _4032x3024.jpg
#   fixed       Go gateway vs the Python gateways, fixed rate (RATE; default half the
#               stock-Pillow Python gateway's saturation throughput measured just before)
#   rss         RSS_C connections (closed loop) to each gateway; then the Go gateway
#               again restarted with its default MAX_IN_FLIGHT (it sheds with 429)
#   embedded    the embedded ONNX backend, single images vs batches of BATCH, at each
#               concurrency of EMB_C
#   overhead-testserver  the 8x8 PNG again, Go gateway vs direct ModelInfer, against
#               the in-process KServe test server instead of Triton (nothing but the
#               gateway varies): go test -run '^TestOverhead$' ./loadtest/bench/
#   pillow      preprocessing vs Pillow and Pillow-SIMD (preprocess/bench/compare_pillow.py,
#               make venv; Pillow-SIMD from .bench-simd-venv)
#
# Results: loadtest/bench/results/<UTC time>/ (git-ignored): per step a .txt
# (the table) and a .json (everything), meta.txt (machine, versions, what else
# ran), logs/, and summary.txt (the summaries together).
#
# Environment (defaults: full / quick):
#   ROUNDS (5 / 1), DURATION (10s / 3s), WARMUP (3s / 1s), PAUSE (1s)
#   OVERHEAD_RATE (50)   requests/s of the overhead step (each target in turn)
#   TESTSERVER_RATE (200)  requests/s of the overhead-testserver step
#   SAT_C (16)           connections of the saturation step
#   SIZES_C (8), SIZES_ROUNDS (3 / 1)  connections and rounds of the sizes step
#   RATE (auto)          requests/s of the fixed-rate step
#   RSS_C (200)          connections of the rss step
#   EMB_C ("1 8")        concurrencies of the embedded step;  BATCH (8)
#   PY_WORKERS (2)       uvicorn workers of each Python gateway (one per core)
#   SIMD_PEER (1)        0: no Pillow-SIMD gateway (nor its build)
#   GO_MAX_IN_FLIGHT (256)  the Go gateway's MAX_IN_FLIGHT in every step but the
#                        second rss run (the Python gateways have no admission limit)
#   SERVER_CPUS, BENCH_CPUS  taskset CPU lists for the servers (Triton, gateways)
#                        and for the load generator; default: no pinning
#   STEPS ("check overhead saturation sizes fixed rss embedded overhead-testserver pillow";
#                        quick: without pillow)
#   PILLOW_ARGS          extra arguments of compare_pillow.py (e.g. "--rounds 5")
#   OUT                  results directory
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
mode=${1:-full}
case $mode in
full) : "${ROUNDS:=5}" "${DURATION:=10s}" "${WARMUP:=3s}" "${SIZES_ROUNDS:=3}" "${STEPS:=check overhead saturation sizes fixed rss embedded overhead-testserver pillow}" ;;
quick) : "${ROUNDS:=1}" "${DURATION:=3s}" "${WARMUP:=1s}" "${SIZES_ROUNDS:=1}" "${STEPS:=check overhead saturation sizes fixed rss embedded overhead-testserver}" ;;
*)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
: "${PAUSE:=1s}" "${OVERHEAD_RATE:=50}" "${TESTSERVER_RATE:=200}" "${SAT_C:=16}" "${SIZES_C:=8}" "${RATE:=auto}" "${RSS_C:=200}" "${EMB_C:=1 8}" "${BATCH:=8}"
: "${PY_WORKERS:=2}" "${SIMD_PEER:=1}" "${GO_MAX_IN_FLIGHT:=256}" "${SERVER_CPUS:=}" "${BENCH_CPUS:=}"
out=${OUT:-$root/loadtest/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
bin=$(mktemp -d -t bench-bin.XXXXXX) # the binaries (~50 MB) are not kept with the results

log() { echo "run.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}
has_step() { [[ " $STEPS " == *" $1 "* ]]; }

server_pin=()
bench_pin=()
[ -z "$SERVER_CPUS" ] || server_pin=(taskset -c "$SERVER_CPUS")
[ -z "$BENCH_CPUS" ] || bench_pin=(taskset -c "$BENCH_CPUS")

# ------------------------------------------------------------ processes
started=() # pids this script started (gateways)
triton_started=""

stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${started[@]+"${started[@]}"}"; do stop_pid "$pid"; done
	started=()
	if [ -n "$triton_started" ]; then
		scripts/triton-ci.sh stop || true
		triton_started=""
	fi
	rm -rf "$bin"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ------------------------------------------------------------ prerequisites
log "building the gateway and the load generator"
go build -o "$bin/gateway" ./gateway/cmd/gateway
go build -o "$bin/bench" ./loadtest/bench
ort=$(scripts/fetch-onnxruntime.sh)
py=$(loadtest/pygateway/install.sh)
simd_py=""
if [ "$SIMD_PEER" = 1 ]; then simd_py=$(loadtest/pygateway/install.sh simd); fi
scripts/triton-ci.sh install
if has_step pillow; then make -s venv; fi
bench=("${bench_pin[@]}" "$bin/bench")
common=(-rounds "$ROUNDS" -duration "$DURATION" -warmup "$WARMUP" -pause "$PAUSE")

free_port() {
	"$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL PID LOG: until GET URL/ready answers 200 (30 s).
wait_ready() {
	local url=$1 pid=$2 logf=$3 i
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$logf" >&2
			die "the server behind $url exited; log $logf"
		}
		if curl -sf -o /dev/null "$url/ready"; then return 0; fi
		sleep 0.1
	done
	tail -n 20 "$logf" >&2
	die "$url/ready did not answer 200 in 30 s; log $logf"
}

# start_go NAME ENV...: the Go gateway with these settings; sets pid and url.
start_go() {
	local name=$1 port
	shift
	port=$(free_port)
	env GATEWAY_LISTEN_ADDR="127.0.0.1:$port" MODEL_REPOSITORY="$root/triton-models" ONNXRUNTIME_LIB="$ort" "$@" \
		"${server_pin[@]}" "$bin/gateway" >"$out/logs/$name.log" 2>&1 &
	pid=$! url="http://127.0.0.1:$port"
	started+=("$pid")
	wait_ready "$url" "$pid" "$out/logs/$name.log"
	log "$name: pid $pid on $url"
}

# start_py NAME PYTHON: the reference Python gateway against the running Triton,
# run by PYTHON (its environment decides: stock Pillow or Pillow-SIMD); sets pid and url.
start_py() {
	local name=$1 python=$2 port
	port=$(free_port)
	env TRITON_URL="$TRITON_URL" MODEL_NAME=fish_classifier WORKERS="$PY_WORKERS" HOST=127.0.0.1 PORT="$port" \
		"${server_pin[@]}" "$python" loadtest/pygateway/app.py >"$out/logs/$name.log" 2>&1 &
	pid=$! url="http://127.0.0.1:$port"
	started+=("$pid")
	wait_ready "$url" "$pid" "$out/logs/$name.log"
	log "$name: pid $pid on $url ($PY_WORKERS workers, $("$python" -c 'import PIL; print("Pillow", PIL.__version__)'))"
}

stop_started() {
	local p
	for p in "$@"; do stop_pid "$p"; done
	local keep=() s
	for s in "${started[@]+"${started[@]}"}"; do [[ " $* " == *" $s "* ]] || keep+=("$s"); done
	started=("${keep[@]+"${keep[@]}"}")
}

# step NAME ARGS...: runs bench, table to NAME.txt, everything to NAME.json.
step() {
	local name=$1
	shift
	log "step $name"
	"${bench[@]}" "$@" -json "$out/$name.json" | tee "$out/$name.txt"
}

# ------------------------------------------------------------ meta
{
	echo "date: $(date -u +%FT%TZ)"
	echo "mode: $mode; ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP PAUSE=$PAUSE OVERHEAD_RATE=$OVERHEAD_RATE TESTSERVER_RATE=$TESTSERVER_RATE" \
		"SAT_C=$SAT_C RATE=$RATE RSS_C=$RSS_C EMB_C='$EMB_C' BATCH=$BATCH PY_WORKERS=$PY_WORKERS SIMD_PEER=$SIMD_PEER" \
		"GO_MAX_IN_FLIGHT=$GO_MAX_IN_FLIGHT SERVER_CPUS=$SERVER_CPUS BENCH_CPUS=$BENCH_CPUS"
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo '?') ($(git status --porcelain 2>/dev/null | wc -l) paths changed or untracked)"
	echo "kernel: $(uname -srm)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(nproc) online; $(lscpu 2>/dev/null | grep -E '^(Hypervisor vendor|Virtualization type)' | tr -s ' ' | paste -sd';')"
	echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB total, " $7 " MiB available"}')"
	echo "go: $(go version)"
	pyinfo='import sys, fastapi, uvicorn, PIL, numpy; from PIL import features; print(sys.version.split()[0], "fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__, "pillow", PIL.__version__, "libjpeg-turbo", features.version("libjpeg_turbo"), "numpy", numpy.__version__)'
	echo "python (pygateway, py): $("$py" -c "$pyinfo")"
	[ -z "$simd_py" ] || echo "python (pygateway, py-simd): $("$simd_py" -c "$pyinfo") (Pillow-SIMD, compiled with flags '${PILLOW_SIMD_FLAGS--mavx2}')"
	echo "onnxruntime library: $ort"
	echo "loadavg at start: $(cat /proc/loadavg)"
	echo "busiest processes at start (what else shares the cores):"
	ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -n 8
} >"$out/meta.txt"

# ------------------------------------------------------------ Triton steps
if has_step check || has_step overhead || has_step saturation || has_step sizes || has_step fixed || has_step rss; then
	log "starting Triton"
	"${server_pin[@]}" scripts/triton-ci.sh start >"$out/logs/triton-start.txt" 2>&1 ||
		{ cat "$out/logs/triton-start.txt" >&2; die "Triton did not start"; }
	triton_started=1
	eval "$(scripts/triton-ci.sh env)"
	echo "triton: $(grep -o 'Triton [0-9.]* ready' "$out/logs/triton-start.txt" | head -1) (nvidia-pytriton wheel, Python backend, TRITON_CI_ORT_THREADS=${TRITON_CI_ORT_THREADS:-1})" >>"$out/meta.txt"

	start_go gateway-triton BACKEND=triton TRITON_URL="$TRITON_URL" MAX_IN_FLIGHT="$GO_MAX_IN_FLIGHT"
	go_pid=$pid go_url=$url
	start_py pygateway "$py"
	py_pid=$pid py_url=$url
	gw=(-target "go=$go_url/predict" -target "py=$py_url/predict" -pid "go=$go_pid" -pid "py=$py_pid")
	checked=(-target "go=$go_url/predict" -target "py=$py_url/predict")
	simd_pid=""
	if [ -n "$simd_py" ]; then
		start_py pygateway-simd "$simd_py"
		simd_pid=$pid
		gw+=(-target "py-simd=$url/predict" -pid "py-simd=$pid" -baseline "py,py-simd")
		checked+=(-target "py-simd=$url/predict")
	else
		gw+=(-baseline py)
	fi

	if has_step check; then
		log "step check"
		"${bench[@]}" check "${checked[@]}" | tee "$out/check.txt"
	fi
	if has_step overhead; then
		step overhead rate -label "overhead: Go gateway vs direct gRPC ModelInfer" -rate "$OVERHEAD_RATE" "${common[@]}" \
			-target "direct=grpc://$TRITON_GRPC_ADDR" -target "go=$go_url/predict" -pid "go=$go_pid" -baseline direct
		step overhead-tiny rate -label "overhead, 8x8 PNG: Go gateway vs direct gRPC ModelInfer" -rate "$OVERHEAD_RATE" \
			"${common[@]}" -images "$root/preprocess/testdata/parity/inputs/rgb8_8x8.png" \
			-target "direct=grpc://$TRITON_GRPC_ADDR" -target "go=$go_url/predict" -pid "go=$go_pid" -baseline direct
	fi
	if has_step saturation; then
		step saturation max -label "saturation: Go vs the Python gateways" -c "$SAT_C" "${common[@]}" "${gw[@]}"
	fi
	if has_step sizes; then
		for size in 640x480 1024x768 4032x3024; do
			step "sizes-$size" max -label "one photo, $size: Go vs the Python gateways" -c "$SIZES_C" \
				-rounds "$SIZES_ROUNDS" -duration "$DURATION" -warmup "$WARMUP" -pause "$PAUSE" \
				-images "$root/preprocess/testdata/bench/photo_$size.jpg" "${gw[@]}"
		done
	fi
	if has_step fixed; then
		rate=$RATE
		if [ "$rate" = auto ]; then
			[ -f "$out/saturation.json" ] || die "RATE=auto needs the saturation step first; set RATE"
			rate=$("$py" -c 'import json, sys
r = json.load(open(sys.argv[1]))
py = [s for s in r["summary"] if s["target"] == "py"][0]
print(max(1, round(py["img_per_s"]["median"] / 2)))' "$out/saturation.json")
			log "fixed rate: $rate req/s (half the stock-Pillow Python gateway's saturation throughput)"
		fi
		step fixed-rate rate -label "fixed rate: Go vs the Python gateways" -rate "$rate" "${common[@]}" "${gw[@]}"
	fi
	if has_step rss; then
		step rss max -label "peak RSS at $RSS_C connections (MAX_IN_FLIGHT=$GO_MAX_IN_FLIGHT)" -c "$RSS_C" -rounds 1 \
			-duration "$DURATION" -warmup "$WARMUP" -pause "$PAUSE" -reset-hwm "${gw[@]}"
		# The Go gateway as shipped: MAX_IN_FLIGHT 4 per core, the rest shed with 429.
		stop_started "$go_pid"
		start_go gateway-triton-default BACKEND=triton TRITON_URL="$TRITON_URL"
		step rss-default max -label "peak RSS at $RSS_C connections, default MAX_IN_FLIGHT (429s expected)" -c "$RSS_C" \
			-rounds 1 -duration "$DURATION" -warmup "$WARMUP" -pause "$PAUSE" -reset-hwm \
			-target "go=$url/predict" -pid "go=$pid" || true # sheds: few answers are 200
		go_pid=$pid
	fi
	stop_started "$go_pid" "$py_pid" ${simd_pid:+"$simd_pid"}
	scripts/triton-ci.sh stop
	triton_started=""
fi

# ------------------------------------------------------------ embedded backend
if has_step embedded; then
	start_go gateway-onnx BACKEND=onnx MAX_IN_FLIGHT="$GO_MAX_IN_FLIGHT"
	for c in $EMB_C; do
		step "embedded-c$c" max -label "embedded ONNX backend: single vs batch of $BATCH, $c connection(s)" -c "$c" "${common[@]}" \
			-target "single=$url/predict" -target "batch$BATCH=$url/predict/batch" -batch "batch$BATCH=$BATCH" \
			-pid "single=$pid" -pid "batch$BATCH=$pid" -baseline single
	done
	stop_started "$pid"
fi

# ------------------------------------------------------------ overhead over the test server
if has_step overhead-testserver; then
	# The test server, the load and the gateway it builds share the machine;
	# SERVER_CPUS and BENCH_CPUS do not apply. The table is in the test's log.
	log "step overhead-testserver (go test -run '^TestOverhead\$' ./loadtest/bench/)"
	go test -count=1 -run '^TestOverhead$' -v ./loadtest/bench/ -args -overhead.rounds="$ROUNDS" \
		-overhead.duration="$DURATION" -overhead.rate="$TESTSERVER_RATE" -overhead.json="$out/overhead-testserver.json" |
		sed 's/^        //' | tee "$out/overhead-testserver.txt"
fi

# ------------------------------------------------------------ preprocessing vs Pillow
if has_step pillow; then
	log "step pillow (make bench-pillow, with Pillow-SIMD)"
	simd_arg=(--no-simd)
	[ -z "$simd_py" ] || simd_arg=(--simd-python "$simd_py")
	# shellcheck disable=SC2086 # PILLOW_ARGS is a list of arguments
	.venv/bin/python preprocess/bench/compare_pillow.py "${simd_arg[@]}" ${PILLOW_ARGS:-} | tee "$out/pillow.txt"
fi

echo "loadavg at end: $(cat /proc/loadavg)" >>"$out/meta.txt"
for f in check overhead overhead-tiny saturation sizes-* fixed-rate rss rss-default embedded-c* overhead-testserver pillow; do
	for g in "$out"/$f.txt; do
		[ -f "$g" ] || continue
		echo "=== $(basename "$g" .txt)"
		sed -n '/^## /,$p' "$g"
		[ "$(basename "$g")" != check.txt ] || tail -n 1 "$g"
		[ "$(basename "$g")" != pillow.txt ] || cat "$g"
		echo
	done
done >"$out/summary.txt"
log "done: $out (summary.txt, meta.txt, *.json)"
