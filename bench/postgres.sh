#!/usr/bin/env bash
# PostgreSQL benchmarks (issues 5 and 13), each next to SQLite in the same run: release build, a
# throwaway PostgreSQL cluster of its own (scripts/pg-test-cluster.sh with a private state file;
# removed at the end), then the sections named in SECTIONS (default: all, in this order):
#
#   ingest    gen_snapshots N × K (~12 % changes, seed 42) with 10 % of the prospects enrolled
#             (POSTs of 20 ids); `prospect-events ingest FILE` timed into a fresh SQLite file and a
#             fresh PostgreSQL database, then the same file again (idempotent: nothing new) →
#             lines/s, client peak RSS, PostgreSQL ÷ SQLite;
#   api       `serve` on an empty database of each backend: PATCH replacing all 20 ids of a random
#             one of 1,000 enrollments, PATCH replacing 2 of the 20, POST, GET (crates/bench,
#             CONNS keep-alive connections, SECS s after a 3 s warm-up) → req/s, percentiles and
#             the CPU ms a request cost `serve` and the cluster (`cpu_ms_per_request`), and on
#             PostgreSQL the WAL the cluster wrote a request (`wal_kb_per_request`);
#   delivery  delivery_bench throughput (NOTIFS notifications queued by ingestion, drained by the
#             real worker into a local keep-alive receiver) with 1 and 10 webhooks, on SQLite and
#             on PostgreSQL with one and two replicas → deliveries/s, duplicates, connections the
#             receiver accepted per 100 deliveries; then latency at EPS events/s;
#   events    ≥ 1,000,000 events stored (gen_snapshots 200,000 × 6, every line a change) in each
#             backend; the events API with 1 and 20 ids a request over ECONNS connections
#             (req/s, percentiles, CPU ms a request as for api);
#   scale     ENROLLMENTS enrollments × 20 prospects loaded straight into PostgreSQL's tables with
#             INSERT … SELECT generate_series (rows identical in shape to what the API writes, see
#             the SQL below), VACUUM ANALYZE + CHECKPOINT, then the same PATCH load → p99 vs. the
#             empty database, the WAL a request wrote in each, serve's RSS, the database size.
#
# Usage: bench/postgres.sh   (env: SECTIONS="ingest api delivery events scale" CONNS=32 SECS=20
#                             N=200000 K=5 NOTIFS=100000 EPS=1000 ECONNS=8 ENROLLMENTS=1000000,
#                             KEEP=1 keeps the cluster running and prints its URL,
#                             BEFORE=REV also runs every PostgreSQL figure of ingest, api,
#                             delivery and events with REV's binaries — the previous code — in
#                             the same run, labelled `postgres@REV`;
#                             PG_TEST_SETTINGS=$'work_mem = 64MB' adds postgresql.conf
#                             lines to the cluster's, see scripts/pg-test-cluster.sh;
#                             SHARED_BUFFERS=128MB overrides the size below)
#
# The cluster is sized like a dedicated database server: shared_buffers a quarter of the
# machine's memory (at most 8 GB), as PostgreSQL's documentation suggests, where the test
# cluster keeps the 128 MB default. SQLite reads its file through the kernel's page cache
# (memory-mapped), so a 128 MB buffer pool made PostgreSQL copy each page of a 1M-event table
# in from the page cache on nearly every read (D122).
set -euo pipefail
cd "$(dirname "$0")/.."
SECTIONS=${SECTIONS:-ingest api delivery events scale}
CONNS=${CONNS:-32}
SECS=${SECS:-20}
N=${N:-200000}
K=${K:-5}
NOTIFS=${NOTIFS:-100000}
EPS=${EPS:-1000}
ECONNS=${ECONNS:-8}
ENROLLMENTS=${ENROLLMENTS:-1000000}

cargo build --release -q -p prospect-events -p prospect-events-bench
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
BIN=$TARGET/prospect-events
LOAD=$TARGET/prospect-events-bench
DELIVERY=$TARGET/delivery_bench
GEN=$TARGET/gen_snapshots
NOW_BIN=$BIN NOW_DELIVERY=$DELIVERY

# BEFORE=REV: REV's release binaries, built in a worktree of it into target/bench-before (kept
# between runs, so only the first run with a given REV pays for the build).
BEFORE=${BEFORE:-}
BACKENDS="sqlite postgres"
if [ -n "$BEFORE" ]; then
  BEFORE=$(git rev-parse --short "$BEFORE")
  BEFORE_TREE=$PWD/target/bench-before/src
  rm -rf "$BEFORE_TREE"; git worktree prune
  git worktree add -q --detach "$BEFORE_TREE" "$BEFORE"
  (cd "$BEFORE_TREE" && CARGO_TARGET_DIR=$PWD/../target cargo build --release -q -p prospect-events -p prospect-events-bench)
  git worktree remove --force "$BEFORE_TREE"
  BEFORE_BIN=$PWD/target/bench-before/target/release/prospect-events
  BEFORE_DELIVERY=$PWD/target/bench-before/target/release/delivery_bench
  BACKENDS="sqlite postgres postgres@$BEFORE"
fi
# use VARIANT: points BIN and DELIVERY at the binaries of a backend label (`postgres@REV`: REV's).
use() {
  case $1 in
    *@*) BIN=$BEFORE_BIN DELIVERY=$BEFORE_DELIVERY ;;
    *) BIN=$NOW_BIN DELIVERY=$NOW_DELIVERY ;;
  esac
}
# Database/file name part of a backend label.
tag() { echo "${1/@/_}"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg-bench.XXXXXX")
export PG_TEST_STATE=$WORK/pg-state
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" != 1 ]; then scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${SHARED_BUFFERS:-}" ]; then
  SHARED_BUFFERS=$(awk '/^MemTotal:/ { mb = int($2 / 4 / 1024); if (mb > 8192) mb = 8192; if (mb < 128) mb = 128; print mb "MB" }' /proc/meminfo)
fi
export PG_TEST_SETTINGS="shared_buffers = $SHARED_BUFFERS${PG_TEST_SETTINGS:+$'\n'$PG_TEST_SETTINGS}"
eval "$(env -u PG_TEST_PORT -u PG_TEST_CLUSTER_DIR scripts/pg-test-cluster.sh 2>"$WORK/cluster.log")"
BASE=${PROSPECT_EVENTS_TEST_POSTGRES_URL%/*}   # postgres://postgres@127.0.0.1:PORT
PGBIN=$(cat "$PG_TEST_CLUSTER_DIR/bindir")
psql() { "$PGBIN/psql" "$BASE/${DB:-postgres}" -v ON_ERROR_STOP=1 -qAt "$@"; }
createdb() { DB=postgres psql -c "CREATE DATABASE $1"; }
# new_db BACKEND NAME → a fresh, migrated database URL of that backend.
new_db() {
  local url
  case $1 in
    sqlite) url="sqlite://$WORK/$2.db" ;;
    postgres*) createdb "$2"; url="$BASE/$2" ;;
  esac
  "$BIN" migrate --database-url "$url" 2>/dev/null
  echo "$url"
}
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # URL [flags…] → SERVER, PORT
  local url=$1; shift
  PORT=$(free_port)
  RUST_LOG=warn "$BIN" serve --database-url "$url" --listen "127.0.0.1:$PORT" --rate-limit 0 "$@" \
    >"$WORK/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthcheck/http" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$WORK/serve.log"; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
rss() { awk '/VmRSS|VmHWM/{printf "%s %s %s  ", $1, $2, $3}' "/proc/$SERVER/status"; echo; }
# The load generator reports the CPU milliseconds a request cost `serve` and the cluster (the
# postmaster and its backends): on this shared machine steadier than throughput.
POSTMASTER=$(head -1 "$PG_TEST_CLUSTER_DIR/data/postmaster.pid")
cpu() { echo --cpu "serve=$SERVER" --cpu "postgres=$POSTMASTER"; }
# cluster_cpu → CPU ticks (1/100 s) the cluster has used: the postmaster, its reaped children
# (cutime, cstime) and its live ones.
cluster_cpu() {
  local t p
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$POSTMASTER/stat")
  for p in $(pgrep -P "$POSTMASTER"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# WAL_URL (set for PostgreSQL runs): the load reports the WAL the cluster wrote per request.
load() {
  "$LOAD" --addr "127.0.0.1:$PORT" --key "$KEY" --connections "$CONNS" --seconds "$SECS" $(cpu) \
    ${WAL_URL:+--wal "$WAL_URL"} "$@"
}

# enroll URL IDS_FILE: enrolls the ids, 20 per POST, through the API of a serve on URL.
enroll() {
  start_server "$1" --no-worker --no-scanner
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
PY
  stop_server
}

# run_ingest LABEL URL FILE: one timed CLI run → a result line; lines/s also in $WORK/LABEL.rate.
run_ingest() {
  local label=$1 url=$2 file=$3 t0 t1 c0 c1
  c0=$(cluster_cpu)
  t0=$(date +%s.%N)
  # gen_snapshots dates its feed from 2025-01-01: keep its events whatever today is.
  /usr/bin/time -v "$BIN" ingest "$file" --database-url "$url" --event-retention 100000d \
    >"$WORK/$label.summary" 2>"$WORK/$label.time" || { echo "ingest failed:"; tail -20 "$WORK/$label.time"; exit 1; }
  t1=$(date +%s.%N)
  sleep 0.5; c1=$(cluster_cpu)  # the backends have exited and been reaped
  python3 - "$label" "$t0" "$t1" "$WORK" "$((c1 - c0))" <<'PY'
import json, re, sys
label, t0, t1, work = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
cluster_cpu = int(sys.argv[5]) / 100
summary = json.load(open(f"{work}/{label}.summary"))
timing = open(f"{work}/{label}.time").read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1))
cpu = re.search(r"Percent of CPU this job got: (\S+)", timing).group(1)
rate = summary["lines"] / (t1 - t0)
open(f"{work}/{label}.rate", "w").write(f"{rate:.0f}")
print(f"{label}: {summary['lines']:,} lines in {t1 - t0:.2f}s = {rate:,.0f} lines/s, client peak RSS "
      f"{rss / 1024:.1f} MiB, CPU {cpu}, cluster CPU {cluster_cpu:.1f}s; events {summary.get('events_created')}, "
      f"notifications {summary.get('notifications_queued')}")
PY
}
ratio() { python3 -c "import sys; print(f'{int(sys.argv[1]) / int(sys.argv[2]):.2f}×')" "$(cat "$WORK/$1.rate")" "$(cat "$WORK/$2.rate")"; }

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL: $("$PGBIN/postgres" --version) (cluster settings: scripts/pg-test-cluster.sh; fsync on${PG_TEST_SETTINGS:+; plus: ${PG_TEST_SETTINGS//$'\n'/, }})"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'); sections: $SECTIONS"

if section ingest; then
  echo "== ingest: $N prospects × $K observations"
  "$GEN" --prospects "$N" --observations "$K" --out "$WORK/feed.ndjson" --enroll-out "$WORK/feed_ids.txt"
  for backend in $BACKENDS; do
    use "$backend"; t=$(tag "$backend")
    url=$(new_db "$backend" "ingest_$t")
    enroll "$url" "$WORK/feed_ids.txt"
    run_ingest "ingest_$t" "$url" "$WORK/feed.ndjson"
    run_ingest "reingest_$t" "$url" "$WORK/feed.ndjson"
  done
  use now
  echo "PostgreSQL ÷ SQLite: ingest $(ratio ingest_postgres ingest_sqlite), re-ingest $(ratio reingest_postgres reingest_sqlite)"
  if [ -n "$BEFORE" ]; then
    echo "PostgreSQL@$BEFORE ÷ SQLite: ingest $(ratio "ingest_postgres_$BEFORE" ingest_sqlite), re-ingest $(ratio "reingest_postgres_$BEFORE" reingest_sqlite)"
  fi
  rm -f "$WORK"/ingest_sqlite.db*
fi

if section api; then
  echo "== API on an empty database ($CONNS connections, ${SECS}s each)"
  for backend in $BACKENDS; do
    use "$backend"; t=$(tag "$backend")
    url=$(new_db "$backend" "api_$t")
    WAL_URL=; [ "$backend" != sqlite ] && WAL_URL=$url
    KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$url" 2>/dev/null)
    start_server "$url"
    # PATCH first, on a database holding only its own 1,000 enrollments.
    [ "$backend" != sqlite ] && DB="api_$t" psql -c "CHECKPOINT"
    echo "-- $backend: PATCH (20 of 20 ids replaced), PATCH (2 of 20), POST, GET"
    load --op patch --enrollments 1000
    load --op patch --enrollments 1000 --changed-ids 2
    load --op post
    load --op get --enrollments 1000
    echo "serve memory: $(rss)"
    stop_server
  done | tee "$WORK/api.json"
fi

if section delivery; then
  echo "== delivery: $NOTIFS notifications (delivery_bench throughput)"
  run=0
  specs=("sqlite 1 1" "sqlite 10 1")
  for shape in "1 1" "10 1" "1 2" "10 2"; do
    for backend in $BACKENDS; do [ "$backend" != sqlite ] && specs+=("$backend $shape"); done
  done
  for spec in "${specs[@]}"; do
    read -r backend webhooks replicas <<<"$spec"
    use "$backend"
    run=$((run + 1))
    url=
    if [ "$backend" != sqlite ]; then createdb "delivery_$run"; url="--database-url $BASE/delivery_$run"; fi
    echo -n "$backend, $webhooks webhook(s), $replicas replica(s): "
    # shellcheck disable=SC2086
    "$DELIVERY" $url --webhooks "$webhooks" --replicas "$replicas" throughput --notifications "$NOTIFS" 2>/dev/null
  done
  for backend in $BACKENDS; do
    [ "$backend" = sqlite ] && continue
    use "$backend"; t=$(tag "$backend")
    createdb "delivery_latency_$t"
    echo -n "$backend latency at $EPS events/s: "
    "$DELIVERY" --database-url "$BASE/delivery_latency_$t" latency --events-per-second "$EPS" --seconds 10 2>/dev/null
  done
  use now
fi

if section events; then
  echo "== events API: ≥ 1,000,000 events stored, $ECONNS connections"
  "$GEN" --prospects 200000 --observations 6 --change-pct 100 --seed 7 --out "$WORK/ev.ndjson" --enroll-out "$WORK/ev_ids.txt"
  for backend in $BACKENDS; do
    use "$backend"; t=$(tag "$backend")
    url=$(new_db "$backend" "events_$t")
    run_ingest "events_$t" "$url" "$WORK/ev.ndjson"
    [ "$backend" != sqlite ] && DB="events_$t" psql -c "VACUUM ANALYZE"
    KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$url" 2>/dev/null)
    start_server "$url" --no-worker --no-scanner
    for ids in 1 20; do
      echo -n "$backend, $ids id(s)/request: "
      "$LOAD" --addr "127.0.0.1:$PORT" --key "$KEY" $(cpu) --op events --prospect-file "$WORK/ev_ids.txt" \
        --ids "$ids" --connections "$ECONNS" --seconds "$SECS"
    done
    stop_server
  done
  use now
  rm -f "$WORK"/events_sqlite.db* "$WORK/ev.ndjson"
fi

if section scale; then
  echo "== scale: $ENROLLMENTS enrollments, $((ENROLLMENTS * 20)) enrolled prospect pairs"
  createdb bench_empty
  URL="$BASE/bench_empty"
  WAL_URL=$URL
  KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$URL" 2>/dev/null)
  start_server "$URL"
  DB=bench_empty psql -c "CHECKPOINT"
  load --op patch --enrollments 1000 | tee "$WORK/empty.json"
  stop_server
  createdb bench_scale
  URL="$BASE/bench_scale"
  WAL_URL=$URL
  KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$URL" 2>/dev/null)
  # Enrollment g (1..N) covers prospects n = (g-1)*20 … (g-1)*20+19; prospect n's id is
  # md5(n) (32 hex) followed by n as 8 hex digits: unique, and spread over the key space like
  # real ids. Rows are what the API writes: event_types in client order, the role|company mask
  # (3), prospect_ids as the concatenated 40-hex ids, one enrollment_prospects row per pair. The
  # primary key of enrollment_prospects is dropped during the load and rebuilt after.
  T0=$(date +%s)
  DB=bench_scale psql <<SQL
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
CREATE FUNCTION pg_temp.pid(n BIGINT) RETURNS TEXT IMMUTABLE LANGUAGE SQL
  AS \$\$ SELECT md5(n::TEXT) || lpad(to_hex(n), 8, '0') \$\$;
INSERT INTO enrollments (id, enrollment_id, tenant_id, partner_id, enrollment_key, event_types,
    event_mask, prospect_ids, created_at, updated_at)
SELECT g, 'en_' || lpad(to_hex(g), 24, '0'), 'con_bench', 'bench', 'scale_' || (g % 1000),
    'prospect_changed_role,prospect_changed_company', 3,
    (SELECT string_agg(pg_temp.pid((g - 1) * 20 + k), '' ORDER BY k)
       FROM generate_series(0, 19) k),
    1700000000, 1700000000
FROM generate_series(1, $ENROLLMENTS) g;
SELECT setval('enrollments_id_seq', $ENROLLMENTS);
ALTER TABLE enrollment_prospects DROP CONSTRAINT enrollment_prospects_pkey;
INSERT INTO enrollment_prospects (prospect_id, enrollment_ref)
SELECT decode(pg_temp.pid(n), 'hex'), n / 20 + 1
FROM generate_series(0, $ENROLLMENTS::BIGINT * 20 - 1) n;
ALTER TABLE enrollment_prospects ADD PRIMARY KEY (prospect_id, enrollment_ref);
SQL
  # What an operator does after a bulk load: vacuum + analyze, then a checkpoint.
  DB=bench_scale psql -c "VACUUM ANALYZE"
  DB=bench_scale psql -c "CHECKPOINT"
  T1=$(date +%s)
  echo "loaded in $((T1 - T0))s: $(DB=bench_scale psql -c "SELECT count(*) FROM enrollments") enrollments, $(DB=bench_scale psql -c "SELECT count(*) FROM enrollment_prospects") pairs; database $(DB=bench_scale psql -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
  start_server "$URL"
  load --op patch --enrollments 1000 | tee "$WORK/scale.json"
  P=$(DB=bench_scale psql -c "SELECT md5('12345') || lpad(to_hex(12345), 8, '0')")
  curl -s -o /dev/null -w "GET ?prospect_id= (one of the 20M pairs): %{http_code} in %{time_total}s\n" \
    -H "api_key: $KEY" "http://127.0.0.1:$PORT/v1/prospects/events/enrollments?prospect_id=$P"
  echo "serve memory: $(rss)"
  stop_server
  python3 - "$WORK/empty.json" "$WORK/scale.json" <<'EOF'
import json, sys
e = next(json.loads(l) for l in open(sys.argv[1]) if l.startswith("{"))
s = next(json.loads(l) for l in open(sys.argv[2]) if l.startswith("{"))
print(f"PATCH p99: empty {e['p99_ms']:.2f} ms, scale {s['p99_ms']:.2f} ms → {s['p99_ms'] / e['p99_ms']:.2f}× (target ≤ 1.5×); "
      f"throughput {e['rps']:.0f} → {s['rps']:.0f} req/s; WAL {e['wal_kb_per_request']} → {s['wal_kb_per_request']} kB a request")
EOF
fi
if [ "${KEEP:-0}" = 1 ]; then echo "cluster kept: $BASE (stop: PG_TEST_STATE=$PG_TEST_STATE scripts/pg-test-cluster.sh stop)"; fi
