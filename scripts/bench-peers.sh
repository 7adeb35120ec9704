#!/usr/bin/env bash
# bench-peers.sh — pushwire against soketi, measured by the same load tool in the same run.
#
#   scripts/bench-peers.sh              # every scenario, 3 rounds, results into bench/RESULTS.md
#   ROUNDS=1 SCENARIOS="idle-memory chat" scripts/bench-peers.sh
#
# It installs soketi (@soketi/soketi 1.6.1, with uWebSockets.js overridden by the unofficial
# build that carries a Node 20 binary) into bench/.peers/ (git-ignored), builds pushwire and
# pwload, and runs each scenario against soketi and pushwire alternately (A B A B …), each run
# against a freshly started server so that memory figures start from the same state. Both
# servers run the same single app (app-id / app-key / app-secret) with presence channels of up
# to 10,000 members and client events on. The JSON reports go to bench/.peers/results/<time>/;
# the comparison (medians over the rounds, ratios) replaces the "pwload: pushwire vs soketi"
# section of bench/RESULTS.md.
#
# Environment: ROUNDS (3), SCENARIOS (all), DURATION (phase length, 10s), SOKETI_PORT (6101),
# PUSHWIRE_PORT (6102), NO_RESULTS=1 to leave bench/RESULTS.md alone.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PEERS="$ROOT/bench/.peers"
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-"fanout fanout-latency many-channels idle-memory presence-storm chat"}
DURATION=${DURATION:-10s}
SOKETI_PORT=${SOKETI_PORT:-6101}
PUSHWIRE_PORT=${PUSHWIRE_PORT:-6102}
SOKETI_VERSION=1.6.1
UWS_OVERRIDE="npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0"
APP_ID=app-id APP_KEY=app-key APP_SECRET=app-secret

# shellcheck source=bench/quiet.sh
. "$ROOT/bench/quiet.sh"

log() { printf '%s bench-peers: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

command -v node >/dev/null || { echo "bench-peers: node (20+) is required for soketi" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench-peers: npm is required for soketi" >&2; exit 1; }
ulimit -n 20000 2>/dev/null || true

# --- soketi into the scratch folder -------------------------------------------------------
mkdir -p "$PEERS/bin"
if [ "$(node -p "try{require('$PEERS/node_modules/@soketi/soketi/package.json').version}catch(e){''}" 2>/dev/null)" != "$SOKETI_VERSION" ]; then
	log "installing @soketi/soketi@$SOKETI_VERSION into $PEERS"
	cat >"$PEERS/package.json" <<EOF
{
  "name": "pushwire-bench-peers",
  "private": true,
  "description": "Peer servers for scripts/bench-peers.sh (git-ignored scratch folder)",
  "dependencies": { "@soketi/soketi": "$SOKETI_VERSION" },
  "overrides": { "uWebSockets.js": "$UWS_OVERRIDE" }
}
EOF
	(cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error)
fi
SOKETI_JS="$PEERS/node_modules/@soketi/soketi/bin/server.js"

# --- pushwire and the load tool -----------------------------------------------------------
log "building pushwire and pwload"
CGO_ENABLED=0 go build -trimpath -o "$PEERS/bin/pushwire" ./cmd/pushwire
go build -trimpath -o "$PEERS/bin/pwload" ./bench/cmd/pwload
PWLOAD="$PEERS/bin/pwload"

OUT="$PEERS/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

SOKETI_CMD="SOKETI_PORT=$SOKETI_PORT SOKETI_METRICS_SERVER_PORT=$((SOKETI_PORT + 1000)) SOKETI_DEFAULT_APP_ID=$APP_ID SOKETI_DEFAULT_APP_KEY=$APP_KEY SOKETI_DEFAULT_APP_SECRET=$APP_SECRET SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOKETI_PRESENCE_MAX_MEMBERS=10000 node ${SOKETI_JS#"$ROOT/"} start"
PUSHWIRE_CMD="PUSHWIRE_APP_ID=$APP_ID PUSHWIRE_APP_KEY=$APP_KEY PUSHWIRE_APP_SECRET=$APP_SECRET PUSHWIRE_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=10000 bench/.peers/bin/pushwire --port $PUSHWIRE_PORT --metrics-port $((PUSHWIRE_PORT + 1000)) --log-level warn"

SERVER_PID=
start_server() { # name → SERVER_PID, SERVER_PORT
	case $1 in
	soketi)
		SERVER_PORT=$SOKETI_PORT
		env SOKETI_PORT="$SOKETI_PORT" SOKETI_METRICS_SERVER_PORT=$((SOKETI_PORT + 1000)) \
			SOKETI_DEFAULT_APP_ID=$APP_ID SOKETI_DEFAULT_APP_KEY=$APP_KEY SOKETI_DEFAULT_APP_SECRET=$APP_SECRET \
			SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOKETI_PRESENCE_MAX_MEMBERS=10000 \
			node "$SOKETI_JS" start >>"$OUT/soketi.log" 2>&1 &
		SERVER_PID=$!
		;;
	pushwire)
		SERVER_PORT=$PUSHWIRE_PORT
		env PUSHWIRE_APP_ID=$APP_ID PUSHWIRE_APP_KEY=$APP_KEY PUSHWIRE_APP_SECRET=$APP_SECRET \
			PUSHWIRE_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=10000 \
			"$PEERS/bin/pushwire" --port "$PUSHWIRE_PORT" --metrics-port $((PUSHWIRE_PORT + 1000)) --log-level warn \
			>>"$OUT/pushwire.log" 2>&1 &
		SERVER_PID=$!
		;;
	esac
	for _ in $(seq 100); do
		if curl -fs "http://127.0.0.1:$SERVER_PORT/" >/dev/null 2>&1 || curl -fs "http://127.0.0.1:$SERVER_PORT/up" >/dev/null 2>&1; then
			sleep 1 # let the runtime settle before the "before" RSS reading
			return 0
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench-peers: $1 exited at start, see $OUT/$1.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench-peers: $1 did not come up on port $SERVER_PORT" >&2
	exit 1
}

stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}
trap stop_server EXIT

# pwload flags per scenario (the preset does the rest; see `pwload --help`).
scenario_args() {
	case $1 in
	idle-memory | presence-storm) echo "--scenario $1" ;;
	*) echo "--scenario $1 --duration $DURATION" ;;
	esac
}

# other_cpu_pct of a report: CPU that processes other than the server and pwload took.
other_cpu() { sed -n 's/^  "other_cpu_pct": \([0-9.]*\).*/\1/p' "$1" 2>/dev/null | head -1; }
MAX_OTHER=${MAX_OTHER:-30} # % of a core; a pair of runs disturbed more than this is run again

run_one() { # scenario server round
	local sc=$1 server=$2 round=$3 busy
	busy=$(wait_quiet) # other work on the machine skews both servers' figures
	echo "$sc	$server	$round	$busy" >>"$OUT/busy.tsv"
	start_server "$server"
	log "round $round/$ROUNDS: $sc against $server (pid $SERVER_PID, port $SERVER_PORT; CPUs ${busy}% busy before)"
	# shellcheck disable=SC2046
	"$PWLOAD" $(scenario_args "$sc") --port "$SERVER_PORT" --pid "$SERVER_PID" --label "$server" \
		--json-file "$OUT/$sc-$server-$round.json" >"$OUT/$sc-$server-$round.txt" 2>"$OUT/$sc-$server-$round.log" ||
		log "pwload failed, see $OUT/$sc-$server-$round.log"
	stop_server
}

for round in $(seq "$ROUNDS"); do
	for sc in $SCENARIOS; do
		for try in 1 2 3; do
			run_one "$sc" soketi "$round"
			run_one "$sc" pushwire "$round"
			disturbed=$(for s in soketi pushwire; do other_cpu "$OUT/$sc-$s-$round.json"; done |
				awk -v m="$MAX_OTHER" '$1 > m {d = 1} END {print d + 0}')
			[ "$disturbed" = 0 ] && break
			log "$sc round $round: other processes took over $MAX_OTHER% of a core during a run; running the pair again"
			mkdir -p "$OUT/disturbed"
			for s in soketi pushwire; do
				for ext in json txt log; do mv "$OUT/$sc-$s-$round.$ext" "$OUT/disturbed/$sc-$s-$round-try$try.$ext" 2>/dev/null || true; done
			done
			[ "$try" = 3 ] && log "$sc round $round: still disturbed after 3 tries; the round is left out"
		done
	done
done

# --- results ------------------------------------------------------------------------------
TABLES=$("$PWLOAD" compare --dir "$OUT" --ours pushwire --peer soketi)
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=
[ -n "$(git status --porcelain 2>/dev/null)" ] && DIRTY=" plus uncommitted changes"
SECTION=$(mktemp)
{
	echo "<!-- bench-peers:start -->"
	echo "## pwload: pushwire vs soketi (scripts/bench-peers.sh)"
	echo
	echo "**The load tool runs on the same machine as the server and shares its $(nproc) cores**: every"
	echo "deliveries/s figure below is what a server achieved with roughly half the CPU taken by the"
	echo "subscribers reading it. Both servers face exactly the same tool, flags and machine."
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree at \`$COMMIT\`$DIRTY."
	echo "- Machine: $(nproc) cores (\`nproc\`), $CPU_MODEL, $MEM RAM, Linux $(uname -r), $(go version | cut -d' ' -f3-4), Node $(node --version)."
	echo "- Peer: soketi $SOKETI_VERSION (uWebSockets.js from \`$UWS_OVERRIDE\`), one process."
	echo "- Rounds: $ROUNDS, each scenario run against soketi then pushwire (A B A B …), each run against a"
	echo "  freshly started server. Figures are medians over the rounds, range in brackets; the last"
	echo "  column is pushwire ÷ soketi, ✓ where pushwire is at least as good."
	echo "- Reports: \`bench/.peers/results/$(basename "$OUT")/\` (git-ignored; one JSON, table and log per run)."
	echo "- Other work on the machine: before each run the script waits (up to 3 min) until the CPUs are"
	echo "  under 25% busy; the busy share measured just before the runs was at most"
	echo "  $(sort -t'	' -k4 -n "$OUT/busy.tsv" | tail -1 | cut -f4)% (median $(cut -f4 "$OUT/busy.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')%). pwload also measures the CPU other processes take"
	echo "  during each run (last row of each table); a pair of runs where that exceeded $MAX_OTHER% of a core was"
	echo "  run again ($(ls "$OUT/disturbed" 2>/dev/null | grep -c json || true) disturbed runs set aside in \`disturbed/\`)."
	echo
	echo "Exact commands (\$PID is the server's process id, given for the RSS and CPU readings):"
	echo
	echo '```sh'
	echo "# soketi"
	echo "$SOKETI_CMD"
	echo "# pushwire"
	echo "$PUSHWIRE_CMD"
	for sc in $SCENARIOS; do
		echo "bench/.peers/bin/pwload $(scenario_args "$sc") --port <$SOKETI_PORT|$PUSHWIRE_PORT> --pid \$PID --label <soketi|pushwire> --json-file <file>"
	done
	echo "bench/.peers/bin/pwload compare --dir bench/.peers/results/$(basename "$OUT")"
	echo '```'
	echo "$TABLES"
	echo "<!-- bench-peers:end -->"
} >"$SECTION"
cp "$SECTION" "$OUT/RESULTS-section.md"
if [ -z "${NO_RESULTS:-}" ]; then
	RESULTS="$ROOT/bench/RESULTS.md"
	if grep -q '<!-- bench-peers:start -->' "$RESULTS"; then
		awk -v f="$SECTION" '
			/<!-- bench-peers:start -->/ { while ((getline line < f) > 0) print line; skip = 1; next }
			/<!-- bench-peers:end -->/ { skip = 0; next }
			!skip { print }' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
	else
		{ echo; cat "$SECTION"; } >>"$RESULTS"
	fi
	log "wrote the comparison into bench/RESULTS.md"
fi
rm -f "$SECTION"
cat "$OUT/RESULTS-section.md"
