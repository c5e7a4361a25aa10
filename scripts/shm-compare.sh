#!/usr/bin/env bash
# Side by side: the gateway with TRITON_SHARED_MEMORY=system and without, in
# front of one real Triton (scripts/triton-ci.sh: 2.51 on the CPU), on the same
# photo, in alternating rounds so that both see the same moments of a noisy
# machine. For each round: images/s and p50/p99 (loadtest/loadgen, closed
# loop), CPU per image of the gateway process and of Triton (server + Python
# stub), from /proc. Then the medians per setting. docs/shared-memory.md has
# a run's figures.
#
#   scripts/shm-compare.sh [photo] [rounds] [requests per round] [connections...]
#
# Defaults: preprocess/testdata/bench/photo_640x480.jpg, 3 rounds, 200
# requests, connections 1 and 8. Needs Linux, Go, and the real Triton
# (scripts/triton-ci.sh install, done here if needed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
photo=${1:-$root/preprocess/testdata/bench/photo_640x480.jpg}
rounds=${2:-3}
requests=${3:-200}
shift $(($# < 3 ? $# : 3))
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(1 8)
for v in "$rounds" "$requests" "${conns[@]}"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "shm-compare: '$v' is not a positive integer" >&2; exit 2; }
done
[ -f "$photo" ] || { echo "shm-compare: no photo $photo" >&2; exit 2; }

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
eval "$("$root/scripts/triton-ci.sh" env)"
triton_pid=$(cat "$TRITON_CI_RUN_DIR/pid")
(cd "$root" && go build -o "$work/gateway" ./gateway/cmd/gateway && go build -o "$work/loadgen" ./loadtest/loadgen)

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

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local total=0 p s
	for p in "$@"; do
		s=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
		total=$((total + $(awk '{print $12 + $13}' <<<"$s")))
	done
	echo "$total"
}

# triton_group: Triton's server and stubs (its process group).
triton_group() {
	local d s
	for d in /proc/[0-9]*; do
		s=$(cut -d')' -f2- "$d/stat" 2>/dev/null) || continue
		[ "$(awk '{print $3}' <<<"$s")" = "$triton_pid" ] && echo "${d#/proc/}"
	done
	return 0
}

start_gateway shm TRITON_SHARED_MEMORY=system
on_pid=$gw_pid on_port=$gw_port
start_gateway inline
off_pid=$gw_pid off_port=$gw_port
hz=$(getconf CLK_TCK)
mapfile -t tgroup < <(triton_group)

# Warm-up: both paths, every connection count.
for port in "$on_port" "$off_port"; do
	"$work/loadgen" -url "http://127.0.0.1:$port" -file "$photo" -c 2 -n 40 >/dev/null
done

printf '%-6s %-4s %-5s %9s %8s %8s %12s %12s\n' setting c round images/s p50_ms p99_ms gw_cpu_ms/img triton_ms/img
results=$work/results
: >"$results"
for c in "${conns[@]}"; do
	for r in $(seq "$rounds"); do
		for setting in shm inline; do
			if [ "$setting" = shm ]; then pid=$on_pid port=$on_port; else pid=$off_pid port=$off_port; fi
			g0=$(cpu_ticks "$pid")
			t0=$(cpu_ticks "${tgroup[@]}")
			out=$("$work/loadgen" -url "http://127.0.0.1:$port" -file "$photo" -c "$c" -n "$requests")
			g1=$(cpu_ticks "$pid")
			t1=$(cpu_ticks "${tgroup[@]}")
			ips=$(sed -n 's/.* \([0-9.]*\) images\/s.*/\1/p' <<<"$out")
			p50=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' <<<"$out")
			p99=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' <<<"$out")
			failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$out")
			[ "$failed" = 0 ] || { echo "shm-compare: $failed failed requests: $out" >&2; exit 1; }
			gw=$(awk -v d=$((g1 - g0)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.3f", 1000 * d / hz / n}')
			tt=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.3f", 1000 * d / hz / n}')
			printf '%-6s %-4s %-5s %9s %8s %8s %12s %12s\n' "$setting" "$c" "$r" "$ips" "$p50" "$p99" "$gw" "$tt"
			echo "$setting $c $ips $p50 $p99 $gw $tt" >>"$results"
		done
	done
done

echo
echo "medians over $rounds rounds of $requests requests ($(basename "$photo")):"
printf '%-6s %-4s %9s %8s %8s %12s %12s\n' setting c images/s p50_ms p99_ms gw_cpu_ms/img triton_ms/img
# median COLUMN SETTING C: the median of a column of the rounds of a setting.
median() {
	awk -v s="$2" -v c="$3" -v col="$1" '$1 == s && $2 == c {print $col}' "$results" | sort -g |
		awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
for c in "${conns[@]}"; do
	for setting in shm inline; do
		printf '%-6s %-4s %9.1f %8.1f %8.1f %12.3f %12.3f\n' "$setting" "$c" \
			"$(median 3 "$setting" "$c")" "$(median 4 "$setting" "$c")" "$(median 5 "$setting" "$c")" \
			"$(median 6 "$setting" "$c")" "$(median 7 "$setting" "$c")"
	done
done
if [ "$(curl -fsS "http://127.0.0.1:$on_port/metrics" | awk '/^triton_infer_inputs_total\{via="message"\}/ {print $2}')" != 0 ]; then
	echo "shm-compare: the shared-memory gateway sent some tensors in the message (see triton_shared_memory_fallbacks_total)" >&2
	exit 1
fi
