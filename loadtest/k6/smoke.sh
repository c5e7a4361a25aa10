#!/usr/bin/env bash
# Smoke-tests the gateway with both k6 scripts (SCENARIO=smoke): every test
# image, valid and invalid, through POST /predict and POST /predict/batch, with
# the SLO thresholds and every check required to pass. What CI runs.
#
# Without BASE_URL it builds the gateway, serves the embedded ONNX backend on a
# free loopback port (SMOKE_PORT, default 18090), runs the two scripts against
# it and stops it. With BASE_URL it runs them against that gateway instead.
# k6 comes from scripts/k6.sh (pinned, fetched once). Summaries are written to
# SUMMARY_DIR (default: a new temporary folder, printed at the end).
#
#   loadtest/k6/smoke.sh
#   BASE_URL=http://localhost:8000 loadtest/k6/smoke.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
die() { echo "smoke.sh: $*" >&2; exit 1; }

summary_dir=${SUMMARY_DIR:-$(mktemp -d -t k6-smoke.XXXXXX)}
mkdir -p "$summary_dir"
k6=$(scripts/k6.sh --path) # fetch before the gateway starts, so its time is not on the clock

pid=
if [ -z "${BASE_URL:-}" ]; then
	port=${SMOKE_PORT:-18090}
	# Refuse a busy port: the smoke test would measure whatever listens there.
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is in use; set SMOKE_PORT to a free port"
	fi
	ort=$(scripts/fetch-onnxruntime.sh)
	work=$(mktemp -d -t k6-smoke-gateway.XXXXXX)
	echo "smoke.sh: building the gateway ..." >&2
	go build -o "$work/gateway" ./gateway/cmd/gateway
	GATEWAY_LISTEN_ADDR="127.0.0.1:$port" ONNXRUNTIME_LIB="$ort" GATEWAY_LOG_LEVEL=warn \
		"$work/gateway" >"$work/gateway.log" 2>&1 &
	pid=$!
	stop() {
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		rm -rf "$work"
	}
	trap stop EXIT
	BASE_URL="http://127.0.0.1:$port"
fi

status=0
for script in predict predict-batch; do
	echo "smoke.sh: $script.js against $BASE_URL" >&2
	# setup() waits for /ready (READY_TIMEOUT, 60 s by default).
	if ! K6="$k6" scripts/k6.sh run --quiet \
		-e SCENARIO=smoke -e BASE_URL="$BASE_URL" -e SUMMARY_DIR="$summary_dir" \
		"loadtest/k6/$script.js"; then
		status=1
	fi
	if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
		echo "smoke.sh: the gateway exited; its log:" >&2
		tail -n 50 "$work/gateway.log" >&2
		exit 1
	fi
done
[ $status -eq 0 ] || { [ -n "$pid" ] && { echo "smoke.sh: gateway log (last 50 lines):" >&2; tail -n 50 "$work/gateway.log" >&2; }; }
echo "smoke.sh: summaries in $summary_dir" >&2
exit $status
