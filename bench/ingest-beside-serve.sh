#!/usr/bin/env bash
# Bulk ingestion next to a running server (issue 11, item 7): release build; a generated 1M-line
# file (crates/bench gen_snapshots, N prospects × K observations, seed 42); a `serve` on a fresh
# SQLite database; then `prospect-events ingest FILE` into the same database while one client
# alternates PATCH and POST of enrollments over a keep-alive connection until the ingest ends.
# Reports the API writes' latency (p50, p99, max) and 5xx count, with the same load for a few
# seconds before the ingest as the idle baseline, and the ingest's rate beside the server and
# alone (a fresh database, no server) on the same file.
#
# Usage: bench/ingest-beside-serve.sh   (N=200000 K=5; env: N, K, KEEP=1 keeps the dir,
#        INGEST_ARGS="--commit-every 5000" adds arguments to the ingest beside the server)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
K=${K:-5}
cargo build --release -q -p prospect-events -p prospect-events-bench
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
BIN=$TARGET/prospect-events
GEN=$TARGET/gen_snapshots
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ingest-serve-bench.XXXXXX")
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, $(uname -r)"
"$GEN" --prospects "$N" --observations "$K" --out "$DIR/s.ndjson" >/dev/null

# ingest LABEL DB → prints lines/s of one CLI run.
ingest() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" ingest "$DIR/s.ndjson" --database-url "$2" >"$DIR/$1.summary" 2>"$DIR/$1.err" || {
    echo "ingest failed:"; tail -5 "$DIR/$1.err"; exit 1; }
  t1=$(date +%s.%N)
  python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["lines"]; s=float(sys.argv[3])-float(sys.argv[2]); print(f"{sys.argv[4]}: {l:,} lines in {s:.2f}s = {l/s:,.0f} lines/s")' \
    "$DIR/$1.summary" "$t0" "$t1" "$1"
}

ingest alone "sqlite://$DIR/alone.db"

DB="sqlite://$DIR/shared.db"
"$BIN" migrate --database-url "$DB" 2>/dev/null
KEY=$("$BIN" keys create --tenant con_bench --partner bench --database-url "$DB" 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --database-url "$DB" --listen "127.0.0.1:$PORT" --rate-limit 0 \
  >"$DIR/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/healthcheck/http" >/dev/null && break; sleep 0.05; done

# load SECONDS|PID: PATCH + POST until SECONDS pass or process PID ends; prints the figures.
load() {
  python3 - "$PORT" "$KEY" "$1" "$2" <<'PY'
import http.client, json, os, sys, time
port, key, until, label = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", int(port))
h = {"api_key": key, "content-type": "application/json"}
def call(method, body):
    t = time.perf_counter()
    c.request(method, "/v1/prospects/events/enrollments", json.dumps(body), h)
    r = c.getresponse(); data = r.read()
    return r.status, time.perf_counter() - t, data
ids = ["%040x" % i for i in range(1, 21)]
st, _, data = call("POST", {"enrollment_key": "load", "event_types": ["prospect_changed_role"], "prospect_ids": ids})
eid = json.loads(data)["enrollment_id"]
def running():
    if until.startswith("pid:"):
        return os.path.exists(f"/proc/{until[4:]}") and open(f"/proc/{until[4:]}/stat").read().split()[2] != "Z"
    return time.time() < deadline
deadline = time.time() + float(until) if not until.startswith("pid:") else 0
lat, errors, n = [], 0, 0
while running():
    n += 1
    st, dt, _ = call("PATCH", {"enrollment_id": eid, "enrollment_key": f"load{n}", "event_types": ["prospect_changed_company"], "prospect_ids": ids[n % 20:] + ids[:n % 20]})
    lat.append(dt); errors += st >= 500
    st, dt, _ = call("POST", {"enrollment_key": "load", "event_types": ["prospect_changed_role"], "prospect_ids": ids[:5]})
    lat.append(dt); errors += st >= 500
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"{label}: {len(lat):,} writes, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1]*1000:.1f} ms, 5xx {errors}")
PY
}

load 5 "API writes, idle"
# shellcheck disable=SC2086
"$BIN" ingest "$DIR/s.ndjson" --database-url "$DB" ${INGEST_ARGS:-} >"$DIR/shared.summary" 2>"$DIR/shared.err" &
INGEST=$!
T0=$(date +%s.%N)
load "pid:$INGEST" "API writes during the ingest"
wait "$INGEST" || { echo "ingest failed:"; tail -5 "$DIR/shared.err"; exit 1; }
T1=$(date +%s.%N)
python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["lines"]; s=float(sys.argv[3])-float(sys.argv[2]); print(f"beside serve: {l:,} lines in {s:.2f}s = {l/s:,.0f} lines/s")' \
  "$DIR/shared.summary" "$T0" "$T1"
grep -c ' 503 \|database is locked' "$DIR/serve.log" | sed 's/^/server log lines about locks or 503: /' || true
