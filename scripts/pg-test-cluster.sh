#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and prints the URL to use:
#
#   eval "$(scripts/pg-test-cluster.sh)"        # start; exports PROSPECT_EVENTS_TEST_POSTGRES_URL
#   scripts/pg-test-cluster.sh stop [DIR]       # stop it and remove its data directory
#   scripts/pg-test-cluster.sh restart [DIR]    # stop and start the server again (same data, port)
#
# The server binaries come from /usr/lib/postgresql/<version>/bin (Debian's `postgresql` package;
# installing it is the caller's job, e.g. `apt-get install -y postgresql`). As root, the cluster
# runs as the `postgres` user (or `nobody`), since PostgreSQL refuses to run as root. The data
# directory is a fresh temporary directory; the port is a free one (or $PG_TEST_PORT). Only
# `export ...` lines go to stdout; progress goes to stderr. The state of the last cluster started
# is remembered in ${PG_TEST_STATE:-/tmp/prospect-events-pg-test.dir} so `stop` needs no argument.
#
# With PG_TEST_TLS=1 the cluster requires TLS (`hostssl` only) with a certificate for 127.0.0.1
# and localhost from a CA made for it (openssl), and the exported URL connects with
# `sslmode=verify-full&sslrootcert=<that CA>`; PROSPECT_EVENTS_TEST_POSTGRES_CA names the CA file.
#
# PG_TEST_SETTINGS: more postgresql.conf lines (newline-separated), appended after the defaults
# below so they override them, e.g. $'shared_buffers = 1GB' or auto_explain for a benchmark.
set -euo pipefail

STATE_FILE="${PG_TEST_STATE:-/tmp/prospect-events-pg-test.dir}"
DB_NAME="${PG_TEST_DB:-prospect_events_test}"

log() { echo "pg-test-cluster: $*" >&2; }

find_bindir() {
  local d
  if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/initdb" ]]; then
    echo "$PG_BINDIR"
    return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
      echo "$d"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

# The user the server runs as: ourselves unless root.
pick_user() {
  if [[ "$(id -u)" != 0 ]]; then
    id -un
  elif getent passwd postgres >/dev/null; then
    echo postgres
  else
    echo nobody
  fi
}

# run_as USER CMD...: runs CMD as USER (directly when that is us).
run_as() {
  local user="$1"
  shift
  if [[ "$(id -un)" == "$user" ]]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$user" -- "$@"
  else
    su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
  fi
}

free_port() {
  if [[ -n "${PG_TEST_PORT:-}" ]]; then
    echo "$PG_TEST_PORT"
    return
  fi
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  log "no free port found"
  exit 1
}

cmd_start() {
  local bindir user dir port
  if ! bindir="$(find_bindir)"; then
    log "PostgreSQL server binaries not found (install the postgresql package)"
    exit 1
  fi
  user="$(pick_user)"
  dir="$(mktemp -d /tmp/prospect-events-pg.XXXXXX)"
  chmod 755 "$dir"
  mkdir "$dir/data" "$dir/sock"
  chown -R "$user" "$dir" 2>/dev/null || true
  port="$(free_port)"
  log "initdb in $dir/data as $user ($bindir)"
  run_as "$user" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 300
shared_buffers = 128MB
fsync = on
logging_collector = off
EOF
  if [[ -n "${PG_TEST_SETTINGS:-}" ]]; then
    printf '%s\n' "$PG_TEST_SETTINGS" >>"$dir/data/postgresql.conf"
  fi
  local url="postgres://postgres@127.0.0.1:$port/$DB_NAME"
  if [[ "${PG_TEST_TLS:-0}" == 1 ]]; then
    make_tls "$dir" "$user"
    url="$url?sslmode=verify-full&sslrootcert=$dir/tls/ca.crt"
  fi
  echo "$port" >"$dir/port"
  echo "$user" >"$dir/user"
  echo "$bindir" >"$dir/bindir"
  start_server "$dir"
  run_as "$user" "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -qc "CREATE DATABASE $DB_NAME" >&2
  echo "$dir" >"$STATE_FILE"
  log "running on 127.0.0.1:$port (data $dir); stop with: $0 stop $dir"
  echo "export PROSPECT_EVENTS_TEST_POSTGRES_URL='$url'"
  echo "export PG_TEST_CLUSTER_DIR=$dir"
  if [[ "${PG_TEST_TLS:-0}" == 1 ]]; then
    echo "export PROSPECT_EVENTS_TEST_POSTGRES_CA=$dir/tls/ca.crt"
  fi
}

# make_tls DIR USER: a test CA and a server certificate for 127.0.0.1/localhost signed by it;
# the server only accepts TLS connections over TCP.
make_tls() {
  local dir="$1" user="$2" tls="$1/tls"
  if ! command -v openssl >/dev/null; then
    log "PG_TEST_TLS=1 needs openssl (apt-get install -y openssl)"
    exit 1
  fi
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" -subj "/CN=prospect-events test CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
    "basicConstraints=CA:FALSE" >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  chown -R "$user" "$tls" 2>/dev/null || true
  chmod 600 "$tls/server.key" "$tls/ca.key"
  {
    echo "ssl = on"
    echo "ssl_cert_file = '$tls/server.crt'"
    echo "ssl_key_file = '$tls/server.key'"
  } >>"$dir/data/postgresql.conf"
  # TCP connections must use TLS (the Unix socket stays for local administration).
  sed -i -E 's/^host(\s)/hostssl\1/' "$dir/data/pg_hba.conf"
  log "TLS required; CA $tls/ca.crt"
}

start_server() {
  local dir="$1" user bindir
  user="$(cat "$dir/user")"
  bindir="$(cat "$dir/bindir")"
  run_as "$user" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2 || {
    cat "$dir/server.log" >&2
    exit 1
  }
}

stop_server() {
  local dir="$1" user bindir
  user="$(cat "$dir/user")"
  bindir="$(cat "$dir/bindir")"
  run_as "$user" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || true
}

state_dir() {
  local dir="${1:-${PG_TEST_CLUSTER_DIR:-}}"
  if [[ -z "$dir" && -f "$STATE_FILE" ]]; then
    dir="$(cat "$STATE_FILE")"
  fi
  if [[ -z "$dir" || ! -d "$dir/data" ]]; then
    log "no cluster to act on (pass its directory)"
    exit 1
  fi
  echo "$dir"
}

cmd_stop() {
  local dir
  dir="$(state_dir "${1:-}")"
  stop_server "$dir"
  case "$dir" in
    /tmp/prospect-events-pg.*) rm -rf "$dir" ;;
  esac
  if [[ -f "$STATE_FILE" && "$(cat "$STATE_FILE")" == "$dir" ]]; then
    rm -f "$STATE_FILE"
  fi
  log "stopped and removed $dir"
}

cmd_restart() {
  local dir
  dir="$(state_dir "${1:-}")"
  stop_server "$dir"
  start_server "$dir"
  log "restarted $dir"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop "${2:-}" ;;
  restart) cmd_restart "${2:-}" ;;
  pg-stop) stop_server "$(state_dir "${2:-}")" ;;
  pg-start) start_server "$(state_dir "${2:-}")" ;;
  *)
    echo "usage: $0 [start|stop [DIR]|restart [DIR]|pg-stop [DIR]|pg-start [DIR]]" >&2
    exit 2
    ;;
esac
