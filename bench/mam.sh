#!/bin/bash
# What archiving every message (XEP-0313) costs at full message speed:
# Parley and ejabberd with their archives off and on, interleaved (rep 1:
# every case in order; rep 2: the same; ...), with the msg scenario of
# bench/loadgen (closed loop) and the CPU of the PostgreSQL server beside
# the XMPP server's.
#   bench/mam.sh [REPS] [CASE ...]      REPS 3; cases (default all, in this order):
#     parley-pg-off parley-pg-on ejabberd-pg-off ejabberd-pg-on parley-sqlite-off parley-sqlite-on
# One PostgreSQL server (bench/mam-pg.sh, made afresh on 127.0.0.1:MAM_PG_PORT,
# pinned to CPU 0 with the XMPP servers) holds both Parley's database
# (accounts, rosters, archive: parley.sh with PARLEY_BENCH_DSN) and
# ejabberd's (everything: default_db sql, peers/ejabberd-mam.sh).  Parley on
# SQLite keeps its database in its own folder.  "on": Parley's mam module with
# default: always, ejabberd's mod_mam with default: always and db_type sql;
# "off": neither module loaded.  Each run: the archives emptied (PostgreSQL:
# TRUNCATE; SQLite: the database file as provisioned put back), a fresh
# start, MAM_USERS users log in (pairs), each keeps MAM_WINDOW chat messages
# in flight to its partner's full JID, MAM_WARM s of warm-up, MAM_SECS s
# measured; then the archive rows are counted (each message should make two:
# the sender's and the recipient's), and the server is stopped.
# MAM_RATE (messages/s, all senders together) runs an open loop at that
# offered rate instead (the load generator's -r): the on and off cases then
# move the same messages per second, so the event loop batches alike in
# both and the difference is the archive's own work; choose a rate every
# case keeps up with (delivered msgs/s = the rate).
# env: MAM_OPTS   Parley's mam options when on (default { default: always },
#                  which is also the module's default), e.g. '{ fulltext: false }'
#      MAM_USERS (100), MAM_WINDOW (10), MAM_WARM (3), MAM_SECS (8), MAM_RATE (unset),
#      MAM_PG_PORT (15543), MAM_PG_DIR (/tmp/bench-peers/mam-pg), BENCH_PG_DURABLE (0;
#      see bench/mam-pg.sh), BENCH_SRC, BENCH_WORK, PARLEY_TOP as for bench/run.sh
# Runs as root (ejabberd's driver and PostgreSQL switch users).  Results:
# BENCH_WORK/results/mam-raw-*.jsonl (a JSON object per run: the load
# generator's msg line, with db_cpu_* from -Q, and a "mam-rows" line per
# run), the .log beside it and the .md table of bench/mam-summary.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
W=${BENCH_WORK:-/tmp/xmppbench}
REPS=${1:-3}
shift || true
CASES=${*:-parley-pg-off parley-pg-on ejabberd-pg-off ejabberd-pg-on parley-sqlite-off parley-sqlite-on}
MAM_USERS=${MAM_USERS:-100}
MAM_WINDOW=${MAM_WINDOW:-10}
MAM_WARM=${MAM_WARM:-3}
MAM_SECS=${MAM_SECS:-8}
MAM_RATE=${MAM_RATE:-}
MAM_PG_PORT=${MAM_PG_PORT:-15543}
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}
PGDIR=${MAM_PG_DIR:-$PEER_ROOT_DIR/mam-pg}
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
export PARLEY_SQL_DIR=$PARLEY_TOP/sql
export PARLEY_BENCH_MUC=0 EJABBERD_MAM_SQL_PORT=$MAM_PG_PORT
export PARLEY_BENCH_MAM_OPTS=${MAM_OPTS:-{ default: always \}}

for c in $CASES; do
    case $c in
    parley-pg-off | parley-sqlite-off | ejabberd-pg-off | ejabberd-pg-on) ;;
    parley-pg-on | parley-sqlite-on)
        [ -f "$PARLEY_TOP/modules/mod_mam.c" ] ||
            { echo "mam.sh: $PARLEY_TOP has no message archive module (modules/mod_mam.c)" >&2; exit 1; } ;;
    *) echo "mam.sh: unknown case $c" >&2; exit 2 ;;
    esac
done
case " $CASES " in
*" ejabberd-"*)
    command -v ejabberdctl >/dev/null || { echo "mam.sh: apt-get install ejabberd" >&2; exit 1; }
    [ -n "$(ls /usr/lib/erlang/lib/p1_pgsql-* -d 2>/dev/null)" ] ||
        { echo "mam.sh: ejabberd needs its PostgreSQL driver: apt-get install erlang-p1-pgsql" >&2; exit 1; } ;;
esac
[ -x "$PARLEY_TOP/parleyd" ] || { echo "mam.sh: no parleyd in $PARLEY_TOP (set PARLEY_TOP)" >&2; exit 1; }

# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"
suite_copy mam parley.sh peers/ejabberd-mam.sh   # and cd there

server_of() { echo "${1%%-*}"; }
driver() { case $(server_of "$1") in parley) echo peers/parley.sh ;; ejabberd) echo peers/ejabberd-mam.sh ;; esac; }
folder() {
    case $1 in
    parley-pg-*) echo "$PEER_ROOT_DIR/parley-mam-pg" ;;
    parley-sqlite-*) echo "$PEER_ROOT_DIR/parley-mam-sqlite" ;;
    ejabberd-*) echo "$PEER_ROOT_DIR/ejabberd-mam" ;;
    esac
}
use() {   # CASE: the environment of the drivers for it
    export PARLEY_BENCH_MAM=0 EJABBERD_MAM=0
    case $1 in *-on) PARLEY_BENCH_MAM=1 EJABBERD_MAM=1 ;; esac
    case $1 in
    parley-pg-*)
        export PARLEY_NAME=parley-mam-pg PARLEY_PORT=15552
        export PARLEY_BENCH_DSN=$PG_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE=$PG_BENCH_PASSWORD_FILE
        ;;
    parley-sqlite-*)
        export PARLEY_NAME=parley-mam-sqlite PARLEY_PORT=15553
        unset PARLEY_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE
        ;;
    esac
}
archive_rows() {   # CASE: rows in the server's message archive ("archive" table), -1 when none
    local n
    case $1 in
    parley-pg-*) n=$("$PG_BENCH_PSQL" -X -Atq -d "$PG_BENCH_OWNER_DSN" -c 'SELECT COUNT(*) FROM archive' 2>>"$LOG" || echo -1) ;;
    ejabberd-*) n=$("$PG_BENCH_PSQL" -X -Atq -d "$PG_BENCH_EJABBERD_DSN" -c 'SELECT COUNT(*) FROM archive' 2>>"$LOG" || echo -1) ;;
    parley-sqlite-*) n=$(sqlite3 "$(folder "$1")/parley.db" 'SELECT COUNT(*) FROM archive' 2>>"$LOG" || echo -1) ;;
    esac
    echo "${n:--1}"
}
server_log() {
    case $1 in
    parley-*) suite_server_log "$(folder "$1")/parleyd.log" ;;
    ejabberd-*) suite_server_log "$(folder "$1")/log/error.log" ;;
    esac
}

echo "# mam suite $(date -Is) reps=$REPS cases=$CASES mam_opts=$PARLEY_BENCH_MAM_OPTS users=$MAM_USERS window=$MAM_WINDOW rate=${MAM_RATE:-closed} secs=$MAM_SECS pg_durable=${BENCH_PG_DURABLE:-0} parley=$PARLEY_TOP" | tee -a "$LOG"
if git -C "$PARLEY_TOP" rev-parse HEAD >/dev/null 2>&1; then
    echo "# parley commit $(git -C "$PARLEY_TOP" rev-parse --short HEAD)" | tee -a "$LOG"
fi
echo "# $(ejabberdctl 2>/dev/null | grep -m1 -i version || dpkg-query -W -f='ejabberd ${Version}' ejabberd 2>/dev/null || true)" >>"$LOG"

# the PostgreSQL server and the accounts, afresh
bash "$HERE/mam-pg.sh" stop "$PGDIR"
bash "$HERE/mam-pg.sh" start "$PGDIR" "$MAM_PG_PORT"
# shellcheck source=/dev/null
. "$PGDIR/env"
echo "# postgresql on 127.0.0.1:$PG_BENCH_PORT, postmaster $PG_BENCH_POSTMASTER_PID, $("$PG_BENCH_PSQL" --version)" | tee -a "$LOG"
provisioned=
for c in $CASES; do
    f=$(folder "$c")
    case " $provisioned " in *" $f "*) continue ;; esac
    provisioned="$provisioned $f"
    echo "## provision $c $(date +%T)" | tee -a "$LOG"
    use "$c"
    stop "$c"
    rm -rf "$f"
    case $c in
    parley-pg-*) "$(driver "$c")" adduser "$MAM_USERS" >>"$LOG" 2>&1 ;;
    parley-sqlite-*)
        "$(driver "$c")" adduser "$MAM_USERS" >>"$LOG" 2>&1
        sqlite3 "$f/parley.db" ".backup '$f/parley.db.clean'"
        ;;
    ejabberd-*) start "$c"; "$(driver "$c")" adduser "$MAM_USERS" >>"$LOG" 2>&1; stop "$c" ;;
    esac
done

for rep in $(seq "$REPS"); do
    for c in $CASES; do
        use "$c"
        s=$(server_of "$c")
        db=${c#*-}
        db=${db%-*}
        mam=${c##*-}
        port=$(port_of "$c")
        label="server=$s db=$db mam=$mam rep=$rep case=$c"
        echo "## rep $rep $c $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
        bash "$HERE/mam-pg.sh" reset "$PGDIR" >>"$LOG" 2>&1
        if [ "$db" = sqlite ]; then   # the database as provisioned, no archive
            f=$(folder "$c")
            rm -f "$f/parley.db-wal" "$f/parley.db-shm"
            cp "$f/parley.db.clean" "$f/parley.db"
        fi
        start "$c"
        pids=$("$(driver "$c")" pids)
        q=()
        [ "$db" = pg ] && q=(-Q "$PG_BENCH_POSTMASTER_PID")
        load=(-w "$MAM_WINDOW")
        [ -n "$MAM_RATE" ] && load=(-r "$MAM_RATE")
        suite_lg msg 300 -s msg -p "$port" -n "$MAM_USERS" -c 50 "${load[@]}" -W "$MAM_WARM" -d "$MAM_SECS" \
            -f 1 -P "$pids" "${q[@]}" -L "$label"
        stop "$c"
        rows=$(archive_rows "$c")
        echo "archive rows after the run: $rows" | tee -a "$LOG"
        printf '{"scenario":"mam-rows","label":"%s","archive_rows":%s}\n' "$label" "$rows" >>"$OUT"
        server_log "$c"
    done
done
bash "$HERE/mam-pg.sh" stop "$PGDIR"
echo "# done $(date -Is) -> $OUT" | tee -a "$LOG"
python3 "$HERE/mam-summary.py" "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
