#!/usr/bin/env bash
# pubpath.sh BIN_A BIN_B ROUNDS — the publish-path acceptance runs of issue 17 on Postgres
# history, for two pushwire binaries alternately (A B A B …), each against a freshly started
# process and a fresh database:
#
#   hot   one channel, 50 protocol-7 subscribers, batch publishes (100 events per
#         POST /batch_events, 8 publishers), --rate events/s offered (HOT_RATE, default 20000)
#   many  1,000 channels with one subscriber each, the same batches spread over them
#         (MANY_RATE, default 30000)
#
# The server runs pinned to CPU 0 and pwload to CPU 1 (taskset) when the machine has two
# CPUs or more; Postgres is the machine's (PGHOST/PGPORT, user postgres). The app publishes
# plain messages (enable_versioned_messages: false: mutable-message creates are one
# transaction each, see RESULTS.md) and allows batches of 100 and any event rate; a
# connection may queue 16,384 frames (QUEUE; the default 1,024 is less than one group
# commit of a channel taking 20,000 messages/s, delivered at once).
#
#   bench/pubpath.sh /tmp/pushwire-main /tmp/pushwire-pub17 2
set -euo pipefail
A=$1 B=$2 ROUNDS=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-6212}
PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
HOT_RATE=${HOT_RATE:-20000} MANY_RATE=${MANY_RATE:-30000} DURATION=${DURATION:-10s}
OUT=${OUT:-$(mktemp -d)}
PWLOAD=${PWLOAD:-$OUT/pwload}
[ -x "$PWLOAD" ] || (cd "$ROOT" && go build -o "$PWLOAD" ./bench/cmd/pwload)
ulimit -n 20000 2>/dev/null || true
SRV_CPU="" LOAD_CPU=""
if [ "$(nproc)" -ge 2 ]; then SRV_CPU="taskset -c 0" LOAD_CPU="taskset -c 1"; fi

run() { # bin scenario round pwload-args...
	local bin=$1 scen=$2 r=$3
	shift 3
	local name db
	name=$(basename "$bin")
	db="pwbench_${name//[^a-z0-9]/_}_${scen}_$r"
	psql -h "$PGHOST" -p "$PGPORT" -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
	cat >"$OUT/$db.yaml" <<EOF
port: $PORT
metrics_port: $((PORT + 1000))
log_level: warn
write_queue_messages: ${QUEUE:-16384}
history: postgres
database_url: postgres://postgres@$PGHOST:$PGPORT/$db?sslmode=disable
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    enable_versioned_messages: false
    max_backend_events_per_second: 10000000
    max_event_batch_size: 100
EOF
	$SRV_CPU "$bin" --config "$OUT/$db.yaml" >"$OUT/$db.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done
	$LOAD_CPU "$PWLOAD" --port "$PORT" --pid "$pid" --label "$name" --mode api --publishers "${PUBLISHERS:-32}" --batch 100 \
		--payload 100 --duration "$DURATION" --json-file "$OUT/$scen-$name-$r.json" "$@" >"$OUT/$scen-$name-$r.txt" 2>&1 || true
	echo "== $scen $name round $r" >&2
	grep -E 'phase|publish|deliver|latency|p99|rate|held' "$OUT/$scen-$name-$r.txt" | head -20 >&2 || true
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null || true
	psql -h "$PGHOST" -p "$PGPORT" -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null || true
}

for r in $(seq "$ROUNDS"); do
	for bin in "$A" "$B"; do
		run "$bin" hot "$r" --n ${HOT_SUBS:-5} --layout shared --rate "$HOT_RATE"
		run "$bin" many "$r" --n 1000 --layout own --rate "$MANY_RATE"
	done
done
echo "reports: $OUT" >&2
