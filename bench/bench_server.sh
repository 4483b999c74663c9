#!/usr/bin/env bash
# Load benchmark of `agentcompress serve` on loopback (not part of the tests).
#   bench/bench_server.sh [SECONDS] [CLIENTS] [-- extra bench_server.py flags]
# Starts the server on a free port, drives it with CLIENTS concurrent clients
# for SECONDS (bench_server.py), prints throughput, p50/p99 latency, failures
# and the server's /metrics, then stops it with SIGTERM and reports its exit
# status and peak resident memory. MODEL and THREADS may be set in the
# environment, or SERVE_ARGS to serve something else (e.g. "-V variants -c
# controller.gguf --mem-budget 200M" for the routed variants). Keep runs
# short on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-8}
shift $(( $# > 2 ? 2 : $# )); [ "${1:-}" = "--" ] && shift
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
CLI=${CLI:-build/agentcompress}
[ -x "$CLI" ] || make -j2 "$CLI" >/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086  # SERVE_ARGS is a list of words
"$CLI" serve ${SERVE_ARGS:--m "$MODEL"} --port 0 -q ${THREADS:+-t "$THREADS"} --max-queue 256 2>"$log" &
pid=$!
for _ in $(seq 100); do
    grep -q "serving" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
echo "server pid $pid on port $port, $CLIENTS clients for ${SECONDS_RUN}s"

rc=0
python3 bench/bench_server.py "http://127.0.0.1:$port" --clients "$CLIENTS" --seconds "$SECONDS_RUN" "$@" || rc=$?
peak=$(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo "server: peak RSS $peak, exit status $status after SIGTERM"
[ "$status" -eq 0 ] || rc=1
exit "$rc"
