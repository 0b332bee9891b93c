#!/usr/bin/env bash
# PostgreSQL benchmarks (issue 5): release build, a throwaway PostgreSQL cluster of its own
# (scripts/pg-test-cluster.sh with a private state file; removed at the end), then
#
#   1. API on an empty database: PATCH, POST and GET (crates/bench, keep-alive, CONNS connections,
#      SECS seconds each after a 3 s warm-up; PATCH replaces all 20 ids of a random one of 1,000
#      enrollments) → throughput and percentiles; serve's peak RSS;
#   2. delivery throughput: target/release/delivery_bench --database-url <empty database>
#      throughput (NOTIFS notifications queued by ingestion, then delivered to a local receiver
#      by the real worker) and latency (commit → receipt at EPS events/s);
#   3. scale: ENROLLMENTS enrollments × 20 prospects loaded straight into the tables with
#      INSERT … SELECT generate_series (rows identical in shape to what the API writes, see the
#      SQL below), VACUUM ANALYZE + CHECKPOINT, then the same PATCH load → p99 vs. the empty database, serve's RSS,
#      the database size.
#
# Usage: bench/postgres.sh     (env: CONNS=32 SECS=20 NOTIFS=100000 EPS=1000 ENROLLMENTS=1000000,
#                               KEEP=1 keeps the cluster running and prints its URL)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-32}
SECS=${SECS:-20}
NOTIFS=${NOTIFS:-100000}
EPS=${EPS:-1000}
ENROLLMENTS=${ENROLLMENTS:-1000000}

cargo build --release -q -p prospect-events -p prospect-events-bench
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
BIN=$TARGET/prospect-events
LOAD=$TARGET/prospect-events-bench
DELIVERY=$TARGET/delivery_bench

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg-bench.XXXXXX")
export PG_TEST_STATE=$WORK/pg-state
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" != 1 ]; then scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"; fi
}
trap cleanup EXIT

eval "$(env -u PG_TEST_PORT -u PG_TEST_CLUSTER_DIR scripts/pg-test-cluster.sh 2>"$WORK/cluster.log")"
BASE=${PROSPECT_EVENTS_TEST_POSTGRES_URL%/*}   # postgres://postgres@127.0.0.1:PORT
PGBIN=$(cat "$PG_TEST_CLUSTER_DIR/bindir")
psql() { "$PGBIN/psql" "$BASE/${DB:-postgres}" -v ON_ERROR_STOP=1 -qAt "$@"; }
createdb() { DB=postgres psql -c "CREATE DATABASE $1"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # URL → SERVER, PORT
  PORT=$(free_port)
  RUST_LOG=warn "$BIN" serve --database-url "$1" --listen "127.0.0.1:$PORT" --rate-limit 0 \
    >"$WORK/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthcheck/http" >/dev/null && return; sleep 0.1; done
  echo "server did not start"; cat "$WORK/serve.log"; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
rss() { awk '/VmRSS|VmHWM/{printf "%s %s %s  ", $1, $2, $3}' "/proc/$SERVER/status"; echo; }
load() { "$LOAD" --addr "127.0.0.1:$PORT" --key "$KEY" --connections "$CONNS" --seconds "$SECS" "$@"; }

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, kernel $(uname -r)"
echo "PostgreSQL: $("$PGBIN/postgres" --version) (cluster settings: scripts/pg-test-cluster.sh; fsync on)"
echo "load: $CONNS keep-alive connections, ${SECS}s measured after a 3s warm-up; serve pool: 16 connections"

echo "== 1. API on an empty database"
createdb bench_empty
URL="$BASE/bench_empty"
KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$URL" 2>/dev/null)
start_server "$URL"
# PATCH first, on a database holding only its own 1,000 enrollments (the POST run that follows
# adds tens of thousands, and its checkpoint/autovacuum work would land in a later run).
DB=bench_empty psql -c "CHECKPOINT"
for op in patch post get; do load --op $op --enrollments 1000; done | tee "$WORK/empty.json"
echo "serve memory: $(rss)"
stop_server

echo "== 2. delivery (delivery_bench on PostgreSQL)"
createdb bench_delivery
"$DELIVERY" --database-url "$BASE/bench_delivery" throughput --notifications "$NOTIFS"
createdb bench_latency
"$DELIVERY" --database-url "$BASE/bench_latency" latency --events-per-second "$EPS" --seconds 10

echo "== 3. scale: $ENROLLMENTS enrollments, $((ENROLLMENTS * 20)) enrolled prospect pairs"
createdb bench_scale
URL="$BASE/bench_scale"
KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$URL" 2>/dev/null)
# Enrollment g (1..N) covers prospects n = (g-1)*20 … (g-1)*20+19; prospect n's id is
# md5(n) (32 hex) followed by n as 8 hex digits: unique, and spread over the key space like real
# ids. Rows are what the API writes: event_types in client order, the role|company mask (3),
# prospect_ids as the concatenated 40-hex ids, one enrollment_prospects row per pair. The primary
# key of enrollment_prospects is dropped during the load and rebuilt after (same definition).
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
# What an operator does after a bulk load: vacuum + analyze (otherwise autovacuum's pass over
# 20M freshly inserted rows lands in the middle of the measurement), then a checkpoint.
DB=bench_scale psql -c "VACUUM ANALYZE"
DB=bench_scale psql -c "CHECKPOINT"

T1=$(date +%s)
echo "loaded in $((T1 - T0))s: $(DB=bench_scale psql -c "SELECT count(*) FROM enrollments") enrollments, $(DB=bench_scale psql -c "SELECT count(*) FROM enrollment_prospects") pairs; database $(DB=bench_scale psql -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
start_server "$URL"
load --op patch --enrollments 1000 | tee "$WORK/scale.json"
# The fan-out lookup and the listing of one of the loaded enrollments, at scale.
P=$(DB=bench_scale psql -c "SELECT md5('12345') || lpad(to_hex(12345), 8, '0')")
curl -s -o /dev/null -w "GET ?prospect_id= (one of the 20M pairs): %{http_code} in %{time_total}s\n" \
  -H "api_key: $KEY" "http://127.0.0.1:$PORT/v1/prospects/events/enrollments?prospect_id=$P"
echo "serve memory: $(rss)"
stop_server

python3 - "$WORK/empty.json" "$WORK/scale.json" <<'EOF'
import json, sys
empty = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
scale = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
e = next(r for r in empty if r["op"] == "Patch")
s = next(r for r in scale if r["op"] == "Patch")
print(f"PATCH p99: empty {e['p99_ms']:.2f} ms, scale {s['p99_ms']:.2f} ms → {s['p99_ms'] / e['p99_ms']:.2f}× (target ≤ 2×); "
      f"throughput {e['rps']:.0f} → {s['rps']:.0f} req/s")
EOF
if [ "${KEEP:-0}" = 1 ]; then echo "cluster kept: $BASE (stop: PG_TEST_STATE=$PG_TEST_STATE scripts/pg-test-cluster.sh stop)"; fi
