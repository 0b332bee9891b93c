#!/usr/bin/env bash
# Reproducible API benchmark: release build, fresh SQLite database in a temp dir, rate limit off,
# then PATCH, POST and GET loads from crates/bench over keep-alive connections (the load
# generator runs on the same 2 cores as the server).
# Usage: bench/run.sh [connections=32] [seconds=20]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-32}
SECS=${2:-20}
cargo build --release -q -p prospect-events -p prospect-events-bench
BIN=target/release/prospect-events
GEN=target/release/prospect-events-bench
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DB="sqlite://$DIR/bench.db"
KEY=$($BIN keys create --tenant con_bench --partner bench --database-url "$DB" 2>/dev/null)
RUST_LOG=warn $BIN serve --database-url "$DB" --listen "127.0.0.1:$PORT" --rate-limit 0 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthcheck/http" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(uname -r)"
# PATCH first on a fresh database: every request replaces all 20 ids (worst case), then a
# typical edit (2 of 20 ids replaced, key and types rewritten); then POST and GET.
$GEN --addr "127.0.0.1:$PORT" --key "$KEY" --op patch --connections "$CONNS" --seconds "$SECS" --enrollments 1000
$GEN --addr "127.0.0.1:$PORT" --key "$KEY" --op patch --changed-ids 2 --connections "$CONNS" --seconds "$SECS" --enrollments 1000
for op in post get; do
  $GEN --addr "127.0.0.1:$PORT" --key "$KEY" --op $op --connections "$CONNS" --seconds "$SECS" --enrollments 1000
done
echo "server peak RSS: $(awk '/VmHWM/{print $2, $3}' /proc/$PID/status)"
echo "database: $(du -sh "$DIR" | cut -f1)"
