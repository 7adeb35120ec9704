#!/usr/bin/env bash
# presence-history.sh [ROUNDS] — the presence churn of issue 18: pwload's presence-storm
# (2,000 members joining one presence channel within 5 s, then leaving when pwload exits)
# against pushwire on Postgres with presence history off (A) and on (B), alternately, each
# run on a fresh process and a fresh database. Prints `pwload compare` (B ÷ A: member_added
# latency) and then, for every B run, what the presence history holds: every member's
# member_added and member_removed exactly once, serials 1..n without a gap.
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432}
WORK=$(mktemp -d)
(cd "$ROOT" && go build -o "$WORK/pushwire" ./cmd/pushwire && go build -o "$WORK/pwload" ./bench/cmd/pwload)
for mode in off on; do
	enabled=false
	[ "$mode" = on ] && enabled=true
	cat >"$WORK/$mode.yaml" <<YAML
history: postgres
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    max_presence_members_per_channel: 10000
    presence_history:
      enabled: $enabled
YAML
	# One binary per mode for ab.sh: a fresh database per run, its name kept for the check.
	cat >"$WORK/presence-history-$mode" <<SH
#!/usr/bin/env bash
db=pwbench_${mode}_\$(date +%s%N)
psql "$PG/postgres" -qc "CREATE DATABASE \$db" >/dev/null
echo "\$db" >>"$WORK/dbs-$mode"
exec "$WORK/pushwire" --config "$WORK/$mode.yaml" --database-url "$PG/\$db" "\$@"
SH
	chmod +x "$WORK/presence-history-$mode"
done
PWLOAD="$WORK/pwload" "$ROOT/bench/ab.sh" "$WORK/presence-history-off" "$WORK/presence-history-on" "$ROUNDS" --scenario presence-storm
echo
echo "presence history of each run with it on (event cause count; serials; users added/removed not exactly once):"
for db in $(cat "$WORK/dbs-on"); do
	psql "$PG/$db" -Atc "SELECT CASE event WHEN 1 THEN 'member_added' WHEN 2 THEN 'member_updated' ELSE 'member_removed' END, cause, count(*) FROM pushwire_presence_events GROUP BY 1, 2 ORDER BY 1" | tr '\n' ' '
	psql "$PG/$db" -Atc "SELECT 'serials ' || min(serial) || '..' || max(serial) || ' (' || count(DISTINCT serial) || ' distinct)' FROM pushwire_presence_events" | tr '\n' ' '
	psql "$PG/$db" -Atc "SELECT 'users not added once: ' || count(*) FROM (SELECT user_id FROM pushwire_presence_events WHERE event = 1 GROUP BY user_id HAVING count(*) <> 1) x" | tr '\n' ' '
	psql "$PG/$db" -Atc "SELECT 'users not removed once: ' || count(*) FROM (SELECT user_id FROM pushwire_presence_events WHERE event = 3 GROUP BY user_id HAVING count(*) <> 1) x"
done
for db in $(cat "$WORK/dbs-on" "$WORK/dbs-off"); do psql "$PG/postgres" -qc "DROP DATABASE $db" >/dev/null; done
rm -rf "$WORK"
