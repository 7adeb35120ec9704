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
"$BIN/pwserve" --port "$PORT" --metrics-port $((PORT + 1000)) --pprof-addr "$PPROF" --memprofilerate 4096 2>"$BIN/pwserve.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/up" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/pwload" --scenario fanout --ramp "" --rate 100 --duration 40s --port "$PORT" --pid "$SRV" >>"$OUT-load.txt" 2>&1 &
LOAD=$!
sleep 7 # connected (2.5 s) and publishing for a few seconds
# Allocation counts are published at GC cycles, and the fan-out may run none in 10 s: take
# the allocation profile as the difference of two heap profiles each taken after a GC.
curl -fs -o "$OUT-cpu.pb.gz" "http://$PPROF/debug/pprof/profile?seconds=10" &
CPU=$!
curl -fs -o "$OUT-heap0.pb.gz" "http://$PPROF/debug/pprof/heap?gc=1"
wait $CPU
curl -fs -o "$OUT-heap1.pb.gz" "http://$PPROF/debug/pprof/heap?gc=1"
wait $LOAD || true
{
	echo "# CPU, 10 s of a saturated fan-out (5,000 subscribers, one channel, 100-byte events)"
	echo "# pwload phase: rate offered, published, pub/s, expected, received, delivered %, deliveries/s, p50, p90, p99, max ms, server CPU %, other %, held:"
	echo "# $(grep -A1 'phase  rate' "$OUT-load.txt" | tail -1 | tr -s ' ')"
	go tool pprof -top -nodecount=35 "$BIN/pwserve" "$OUT-cpu.pb.gz" 2>/dev/null
	echo
	echo "# the same, cumulative"
	go tool pprof -top -cum -nodecount=45 "$BIN/pwserve" "$OUT-cpu.pb.gz" 2>/dev/null | tail -45
} >"$OUT-cpu.txt"
{
	echo "# allocations (alloc_space and alloc_objects) between two heap profiles taken after a GC around the CPU profile (its 10 s or more; see Time), one sample per 4 KiB allocated"
	go tool pprof -sample_index=alloc_space -top -nodecount=25 -base "$OUT-heap0.pb.gz" "$BIN/pwserve" "$OUT-heap1.pb.gz" 2>/dev/null
	echo
	go tool pprof -sample_index=alloc_objects -top -nodecount=25 -base "$OUT-heap0.pb.gz" "$BIN/pwserve" "$OUT-heap1.pb.gz" 2>/dev/null | tail -26
} >"$OUT-alloc.txt"
rm -f "$OUT-cpu.pb.gz" "$OUT-heap0.pb.gz" "$OUT-heap1.pb.gz"
echo "wrote $OUT-cpu.txt $OUT-alloc.txt $OUT-load.txt"
