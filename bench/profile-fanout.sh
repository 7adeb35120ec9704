#!/usr/bin/env bash
# profile-fanout.sh OUT_PREFIX [TREE] — CPU and allocation profiles of pushwire's fan-out path.
# Builds bench/cmd/pwserve (the hub, WebSocket gateway and REST API in one process, plus
# net/http/pprof) from TREE (default: this repository), drives it with pwload's fan-out
# (5,000 subscribers on one channel, publishes offered at 100/s, more than it can take, so the
# profile shows the saturated path) and writes OUT_PREFIX-cpu.txt and OUT_PREFIX-alloc.txt
# (pprof -top of 10 s taken in the middle of the run) plus the raw .pb.gz profiles.
set -euo pipefail
OUT=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=${2:-$ROOT}
PORT=${PORT:-6203} PPROF=${PPROF:-127.0.0.1:6063}
BIN=$(mktemp -d)
(cd "$TREE" && go build -o "$BIN/pwserve" ./bench/cmd/pwserve)
(cd "$ROOT" && go build -o "$BIN/pwload" ./bench/cmd/pwload)
ulimit -n 20000 2>/dev/null || true
. "$ROOT/bench/quiet.sh"
echo "CPUs $(wait_quiet)% busy before the run" >"$OUT-load.txt"
"$BIN/pwserve" --port "$PORT" --metrics-port $((PORT + 1000)) --pprof-addr "$PPROF" 2>"$BIN/pwserve.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/pwload" --scenario fanout --ramp "" --rate 100 --duration 20s --port "$PORT" --pid "$SRV" >>"$OUT-load.txt" 2>&1 &
LOAD=$!
sleep 7 # connected (2.5 s) and publishing for a few seconds
curl -fs -o "$OUT-cpu.pb.gz" "http://$PPROF/debug/pprof/profile?seconds=10" &
CPU=$!
curl -fs -o "$OUT-allocs.pb.gz" "http://$PPROF/debug/pprof/allocs?seconds=10"
wait $CPU
wait $LOAD || true
{
	echo "# CPU, 10 s of a saturated fan-out (5,000 subscribers, one channel, 100-byte events)"
	echo "# $(tail -4 "$OUT-load.txt" | head -2 | tail -1 | tr -s ' ')"
	go tool pprof -top -nodecount=35 "$BIN/pwserve" "$OUT-cpu.pb.gz" 2>/dev/null
	echo
	echo "# the same, cumulative"
	go tool pprof -top -cum -nodecount=45 "$BIN/pwserve" "$OUT-cpu.pb.gz" 2>/dev/null | tail -45
} >"$OUT-cpu.txt"
{
	echo "# allocations (alloc_space and alloc_objects), the same 10 s"
	go tool pprof -sample_index=alloc_space -top -nodecount=25 "$BIN/pwserve" "$OUT-allocs.pb.gz" 2>/dev/null
	echo
	go tool pprof -sample_index=alloc_objects -top -nodecount=25 "$BIN/pwserve" "$OUT-allocs.pb.gz" 2>/dev/null | tail -26
} >"$OUT-alloc.txt"
rm -f "$OUT-cpu.pb.gz" "$OUT-allocs.pb.gz"
echo "wrote $OUT-cpu.txt $OUT-alloc.txt $OUT-load.txt"
