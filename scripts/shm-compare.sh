#!/usr/bin/env bash
# Side by side: the gateway with TRITON_SHARED_MEMORY=system and without, in
# front of one real Triton (scripts/triton-ci.sh: 2.51 on the CPU), on the same
# photo, in alternating rounds so that both see the same moments of a noisy
# machine: loadtest/bench max (closed loop) at each connection count, with
# images/s, p50/p99, the CPU per image of each gateway process (-pid) and of
# Triton, server and Python stub (-backend-pid), from /proc, and the medians
# over the rounds. docs/shared-memory.md has a run's figures.
#
#   scripts/shm-compare.sh [photo] [rounds] [seconds per round] [connections...]
#
# Defaults: preprocess/testdata/bench/photo_640x480.jpg, 3 rounds, 5 seconds,
# connections 1 and 8. Needs Linux, Go, and the real Triton
# (scripts/triton-ci.sh install, done here if needed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
photo=${1:-$root/preprocess/testdata/bench/photo_640x480.jpg}
rounds=${2:-3}
seconds=${3:-5}
shift $(($# < 3 ? $# : 3))
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(1 8)
for v in "$rounds" "$seconds" "${conns[@]}"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "shm-compare: '$v' is not a positive integer" >&2; exit 2; }
done
[ -f "$photo" ] || { echo "shm-compare: no photo $photo" >&2; exit 2; }
photo=$(realpath "$photo")

work=$(mktemp -d)
export TRITON_CI_RUN_DIR=$work/triton
pids=()
cleanup() {
	for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
	"$root/scripts/triton-ci.sh" stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/triton-ci.sh" install >/dev/null
"$root/scripts/triton-ci.sh" start >/dev/null
eval "$("$root/scripts/triton-ci.sh" env)" # TRITON_URL, TRITON_CI_PID (Triton's server; its stubs are its children)
(cd "$root" && go build -o "$work/gateway" ./gateway/cmd/gateway && go build -o "$work/bench" ./loadtest/bench)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_gateway NAME [VAR=value...]: sets gw_pid and gw_port.
start_gateway() {
	local name=$1 port
	shift
	port=$(free_port)
	env -i PATH="$PATH" BACKEND=triton TRITON_URL="$TRITON_URL" MODEL_REPOSITORY="$root/triton-models" \
		GATEWAY_LISTEN_ADDR="127.0.0.1:$port" GATEWAY_LOG_LEVEL=warn "$@" \
		"$work/gateway" >"$work/$name.log" 2>&1 &
	gw_pid=$! gw_port=$port
	pids+=("$gw_pid")
	for _ in $(seq 300); do
		curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "shm-compare: gateway $name did not become ready; log:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

start_gateway shm TRITON_SHARED_MEMORY=system
on_pid=$gw_pid on_port=$gw_port
start_gateway inline
off_pid=$gw_pid off_port=$gw_port

for c in "${conns[@]}"; do
	(cd "$root" && "$work/bench" max -c "$c" -rounds "$rounds" -duration "${seconds}s" -warmup 2s -images "$photo" \
		-label "shared memory vs the tensor in the message, $c connection(s), $(basename "$photo")" \
		-target "shm=http://127.0.0.1:$on_port/predict" -target "inline=http://127.0.0.1:$off_port/predict" \
		-pid "shm=$on_pid" -pid "inline=$off_pid" -backend-pid "$TRITON_CI_PID" -baseline inline -json "$work/c$c.json")
	# Every request must succeed (the JSON has "errors" only where some failed).
	if grep -q '"errors"' "$work/c$c.json"; then
		echo "shm-compare: some requests failed at $c connection(s): see the errors column above" >&2
		exit 1
	fi
	echo
done
if [ "$(curl -fsS "http://127.0.0.1:$on_port/metrics" | awk '/^triton_infer_inputs_total\{via="message"\}/ {print $2}')" != 0 ]; then
	echo "shm-compare: the shared-memory gateway sent some tensors in the message (see triton_shared_memory_fallbacks_total)" >&2
	exit 1
fi
