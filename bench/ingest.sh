#!/usr/bin/env bash
# Ingestion benchmark (issue 3): release build; generated snapshot files (crates/bench
# gen_snapshots: N prospects × K observations, ~10 % of lines carrying a change, fixed seed);
# a fresh SQLite database per run with 10 % of the prospects enrolled (POSTs of 20 ids through
# the API); then `/usr/bin/time -v prospect-events ingest FILE` → lines/s and peak RSS, for the
# 1× file and a 2× file (RSS must be flat). Finally the events API p99 with ≥ 1,000,000 events
# stored (a change-heavy file), measured by crates/bench `--op events`.
#
# Usage: bench/ingest.sh            (N=200000 K=5; env: N, K, CONNS, SECS, KEEP=1 keeps the dir)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
K=${K:-5}
CONNS=${CONNS:-8}
SECS=${SECS:-15}
cargo build --release -q -p prospect-events -p prospect-events-bench
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
BIN=$TARGET/prospect-events
GEN=$TARGET/gen_snapshots
LOAD=$TARGET/prospect-events-bench
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ingest-bench.XXXXXX")
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server DB → sets SERVER (pid) and PORT, waits until healthy.
start_server() {
  PORT=$(free_port)
  RUST_LOG=warn "$BIN" serve --database-url "$1" --listen "127.0.0.1:$PORT" --rate-limit 0 \
    --no-worker --no-scanner >"$DIR/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthcheck/http" >/dev/null && return; sleep 0.05; done
  echo "server did not start"; cat "$DIR/serve.log"; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }

# enroll DB IDS_FILE: enrolls the ids, 20 per POST, over one keep-alive connection.
enroll() {
  start_server "$1"
  local key
  key=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$1" 2>/dev/null)
  python3 - "$PORT" "$key" "$2" <<'PY'
import http.client, json, sys
port, key, path = sys.argv[1], sys.argv[2], sys.argv[3]
ids = [l.strip() for l in open(path) if l.strip()]
c = http.client.HTTPConnection("127.0.0.1", int(port))
types = ["prospect_changed_role", "prospect_changed_company", "prospect_job_start_anniversary"]
for i in range(0, len(ids), 20):
    body = json.dumps({"enrollment_key": f"bench_{i // 20 % 100}", "event_types": types,
                       "prospect_ids": ids[i:i + 20]})
    c.request("POST", "/v1/prospects/events/enrollments", body,
              {"api_key": key, "content-type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"enrollment POST answered {r.status}")
print(f"enrolled {len(ids)} prospects in {(len(ids) + 19) // 20} enrollments", file=sys.stderr)
PY
  stop_server
}

# run_ingest LABEL DB FILE: one timed CLI run; prints a result line.
run_ingest() {
  local label=$1 db=$2 file=$3
  local t0 t1
  t0=$(date +%s.%N)
  # gen_snapshots dates its feed from 2025-01-01: keep its events whatever today is, so the
  # figures stay comparable (the default 400-day retention would drop them as they age).
  /usr/bin/time -v "$BIN" ingest "$file" --database-url "$db" --event-retention 100000d >"$DIR/$label.summary" 2>"$DIR/$label.time" || {
    echo "ingest failed:"; tail -20 "$DIR/$label.time"; exit 1; }
  t1=$(date +%s.%N)
  local rss lines cpu
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$DIR/$label.time")
  cpu=$(awk -F': ' '/Percent of CPU/{print $2}' "$DIR/$label.time")
  lines=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lines"])' "$DIR/$label.summary")
  python3 - "$label" "$lines" "$t0" "$t1" "$rss" "$cpu" "$file" "$DIR/$label.summary" <<'PY'
import json, os, sys
label, lines, t0, t1, rss, cpu, f, summ = sys.argv[1:]
secs = float(t1) - float(t0)
print(f"{label}: {int(lines):,} lines ({os.path.getsize(f) / 1e6:.0f} MB) in {secs:.2f}s = "
      f"{int(lines) / secs:,.0f} lines/s, peak RSS {int(rss) / 1024:.1f} MiB, CPU {cpu}")
print(f"  summary: {open(summ).read().strip()}")
PY
}

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, $(uname -r)"
echo "disk for $DIR: $(df -h "$DIR" | awk 'NR==2{print $1, $2}')"

"$GEN" --prospects "$N" --observations "$K" --out "$DIR/s1.ndjson" --enroll-out "$DIR/ids1.txt"
"$GEN" --prospects $((2 * N)) --observations "$K" --out "$DIR/s2.ndjson" --enroll-out "$DIR/ids2.txt"

for x in 1 2; do
  DB="sqlite://$DIR/ingest$x.db"
  "$BIN" migrate --database-url "$DB" 2>/dev/null
  enroll "$DB" "$DIR/ids$x.txt"
  run_ingest "ingest_${x}x" "$DB" "$DIR/s$x.ndjson"
  echo "  database: $(du -sh "$DIR/ingest$x.db" | cut -f1)"
  # Re-ingesting the same file: nothing new, all lines unchanged.
  [ "$x" = 1 ] && run_ingest "reingest_${x}x" "$DB" "$DIR/s$x.ndjson"
done

# Events API with ≥ 1,000,000 events: every non-baseline line changes (1.2 events per change).
"$GEN" --prospects "$N" --observations 6 --change-pct 100 --seed 7 --out "$DIR/ev.ndjson" --enroll-out "$DIR/ev_ids.txt"
EVDB="sqlite://$DIR/events.db"
"$BIN" migrate --database-url "$EVDB" 2>/dev/null
enroll "$EVDB" "$DIR/ev_ids.txt"
run_ingest "events_db" "$EVDB" "$DIR/ev.ndjson"
EVENTS=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "$DIR/events.db")
echo "events stored: $EVENTS"
start_server "$EVDB"
KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$EVDB" 2>/dev/null)
for ids in 1 20; do
  echo -n "events API, $ids id(s)/request, $CONNS connections: "
  "$LOAD" --addr "127.0.0.1:$PORT" --key "$KEY" --op events --prospect-file "$DIR/ev_ids.txt" \
    --ids "$ids" --connections "$CONNS" --seconds "$SECS"
done
echo "server peak RSS: $(awk '/VmHWM/{print $2, $3}' /proc/$SERVER/status)"
