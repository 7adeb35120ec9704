#!/usr/bin/env bash
# Cross-node fan-out: the same pwload run against one pushwire node, and against three nodes
# clustered through Redis and through NATS, where the subscribers sit on node 2 and every
# publish is made on node 1 (so each message crosses the broker; node 3 receives every
# envelope too and has no subscribers).
#
#   scripts/bench-cluster.sh               # N=1000 RATE=200 DURATION=10s ROUNDS=2
#   N=2000 RATE=100 scripts/bench-cluster.sh
#
# Needs redis-server on 127.0.0.1:6379 and nats-server on 127.0.0.1:4222. Prints one line per
# run (delivered %, deliveries/s, latency percentiles) and leaves the JSON reports in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
RATE=${RATE:-200}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
RAMP=${RAMP:-} # e.g. auto: search the highest rate held at 100% delivery
OUT=${OUT:-$(mktemp -d)}
bin=$OUT/bin
mkdir -p "$bin"
go build -o "$bin/pushwire" ./cmd/pushwire
go build -o "$bin/pwload" ./bench/cmd/pwload

pids=()
stop_nodes() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_nodes EXIT

# start_node PORT ARGS... ; waits for /up
start_node() {
  local port=$1
  shift
  "$bin/pushwire" --port "$port" --metrics-enabled=false --log-level warn "$@" >>"$OUT/nodes.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/up" >/dev/null && return 0
    sleep 0.1
  done
  echo "node on $port did not start" >&2
  exit 1
}

run() { # name ws_port http_port
  local name=$1 ws=$2 api=$3 round=$4
  "$bin/pwload" --label "$name" --scenario fanout --url "ws://127.0.0.1:$ws" --http-url "http://127.0.0.1:$api" \
    -n "$N" --rate "$RATE" --duration "$DURATION" --ramp "$RAMP" --json-file "$OUT/$name-$round.json" >"$OUT/$name-$round.txt" 2>&1
  awk -v n="$name" -v r="$round" '$1 == "0" && NF >= 12 {printf "%-14s round %s: %s/s, delivered %s%%, %s deliveries/s, p50 %s ms, p90 %s ms, p99 %s ms, max %s ms\n", n, r, $2, $7, $8, $9, $10, $11, $12}
    /^best/ {print n " round " r ": " $0}' "$OUT/$name-$round.txt"
}

prefix=bench$$
for round in $(seq "$ROUNDS"); do
  start_node 6301
  run 1-node 6301 6301 "$round"
  stop_nodes

  for broker in redis nats; do
    args=(--cluster "$broker" --redis-url redis://127.0.0.1:6379/0 --nats-url nats://127.0.0.1:4222 --cluster-prefix "$prefix$broker$round")
    start_node 6311 "${args[@]}"
    start_node 6312 "${args[@]}"
    start_node 6313 "${args[@]}"
    sleep 1 # the nodes find each other (hello/sync)
    run "3-nodes-$broker" 6312 6311 "$round"
    stop_nodes
  done
done
echo "reports in $OUT"
