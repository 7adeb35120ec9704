#!/usr/bin/env bash
# ab.sh BIN_A BIN_B ROUNDS PWLOAD_ARGS... — compare two pushwire binaries with the same pwload
# run, alternately (A B A B …), each run against a freshly started process, e.g.
#
#   bench/ab.sh /tmp/pushwire-before /tmp/pushwire-after 3 --scenario idle-memory
#
# It prints `pwload compare` of the reports (B ÷ A), which stay in a temporary directory.
# Used for the before/after figures of server/conn.go in bench/RESULTS.md.
set -euo pipefail
A=$1 B=$2 ROUNDS=$3
shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-6202}
OUT=$(mktemp -d)
PWLOAD=${PWLOAD:-$OUT/pwload}
[ -x "$PWLOAD" ] || (cd "$ROOT" && go build -o "$PWLOAD" ./bench/cmd/pwload)
ulimit -n 20000 2>/dev/null || true
. "$ROOT/bench/quiet.sh"
for r in $(seq "$ROUNDS"); do
	for bin in "$A" "$B"; do
		busy=$(wait_quiet)
		"$bin" --port "$PORT" --metrics-port $((PORT + 1000)) --log-level warn >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done
		sleep 1
		name=$(basename "$bin")
		"$PWLOAD" "$@" --port "$PORT" --pid "$pid" --label "$name" --json-file "$OUT/$name-$r.json" >"$OUT/$name-$r.txt" 2>&1 || true
		echo "$name round $r: CPUs $busy% busy before; $(grep -E '^(server RSS|cpu) ' "$OUT/$name-$r.txt" | tr -s ' ' | paste -sd';')" >&2
		kill -TERM "$pid"
		wait "$pid" 2>/dev/null || true
	done
done
"$PWLOAD" compare --dir "$OUT" --ours "$(basename "$B")" --peer "$(basename "$A")"
echo "reports: $OUT" >&2
