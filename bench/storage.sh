#!/bin/bash
# Parley on SQLite against Parley on PostgreSQL, interleaved (rep 1: sqlite,
# pgsql; rep 2: ...): login throughput with the shared harness's load
# generator, and offline-message store throughput with offline-store.py.
#   bench/storage.sh [REPS]
# Needs a built checkout, the harness copied and built by bench/run.sh (or
# BENCH_WORK pointing at such a copy), and root (PostgreSQL runs as the
# postgres user, started by tests/db/pgsql.sh in a folder of its own).
# Prints one JSON line per login run and one line per offline run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
REPS=${1:-3}
B=${BENCH_WORK:-/tmp/xmppbench}
PG=${BENCH_PG_DIR:-/tmp/parley-bench-pg}
[ -x "$B/loadgen/xmppload" ] || { echo "storage.sh: run bench/run.sh once first (builds $B)" >&2; exit 1; }
cp "$HERE/parley.sh" "$B/peers/parley.sh"
export PARLEY_TOP=$TOP
if [ ! -f "$PG/env" ]; then
    bash "$TOP/tests/db/pgsql.sh" start "$PG" >/dev/null
    rm -f /tmp/bench-peers/parley-pgsql/users.count   # a new database has no accounts yet
fi
# shellcheck source=/dev/null
. "$PG/env"
umask 077
echo "$PARLEY_TEST_PGSQL_PASSWORD" > "$PG.password"

use() {   # NAME PORT: the environment parley.sh reads
    export PARLEY_NAME=$1 PARLEY_PORT=$2
    if [ "$1" = parley-pgsql ]; then
        export PARLEY_BENCH_DSN=$PARLEY_TEST_PGSQL_DSN PARLEY_BENCH_DB_PASSWORD_FILE=$PG.password
    else
        unset PARLEY_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE
    fi
}

login() {   # NAME PORT REP
    use "$1" "$2"
    bash "$B/peers/parley.sh" adduser 1200 >/dev/null
    bash "$B/peers/parley.sh" start >/dev/null
    taskset -c 1 "$B/loadgen/xmppload" -s login -h 127.0.0.1 -p "$2" -D bench.local -u u -k pass \
        -c 16 -n 1000 -W 2 -d 8 -P "$(bash "$B/peers/parley.sh" pids)" -L "server=$1 rep=$3" | grep '^{'
    bash "$B/peers/parley.sh" stop >/dev/null
}

offline() {   # NAME PORT REP: the same server with the offline module and a large quota
    use "$1" "$2"
    local dir=/tmp/bench-peers/$1 count
    sed 's/^  roster: {}$/  roster: {}\n  offline: { max_per_user: 1000000 }/' "$dir/parley.yml" > "$dir/offline.yml"
    (cd "$dir" && taskset -c 0 "$TOP/parleyd" -d -c offline.yml)
    for _ in $(seq 100); do ss -ltn | grep -q ":$2 " && break; sleep 0.1; done
    if [ "$1" = parley-pgsql ]; then
        count="psql -Atq '$PARLEY_TEST_PGSQL_OWNER_DSN' -c 'SELECT COUNT(*) FROM offline_messages'"
    else
        count="sqlite3 '$dir/parley.db' 'SELECT COUNT(*) FROM offline_messages'"
    fi
    taskset -c 1 /usr/bin/python3 "$HERE/offline-store.py" "$2" "server=$1 rep=$3" 10 500 "$count"
    kill "$(cat "$dir/parleyd.pid")"
    sleep 1
}

for rep in $(seq "$REPS"); do
    login parley 15522 "$rep"
    login parley-pgsql 15523 "$rep"
done
for rep in $(seq "$REPS"); do
    offline parley 15522 "$rep"
    offline parley-pgsql 15523 "$rep"
done
