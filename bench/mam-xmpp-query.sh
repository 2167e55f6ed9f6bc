#!/bin/bash
# Archive query time (XEP-0313) through parleyd over an archive of
# MAMQ_ROWS (1 million) messages, on SQLite and on PostgreSQL, interleaved
# (rep 1: sqlite, pgsql; rep 2: ...), with bench/mam-xmpp-query.py.
#   bench/mam-xmpp-query.sh [REPS] [STORE ...]      stores: sqlite pgsql (default both), REPS 3
# The archive is filled once per store straight into Parley's archive table
# (a recursive CTE on SQLite, generate_series on PostgreSQL; the schema's
# own indexes, full-text included, in place, then ANALYZE): one owner, u1,
# with MAMQ_ROWS chat messages, 30 s apart (the last one a minute ago), each
# with one of MAMQ_PEERS peers (u2.., about MAMQ_ROWS/MAMQ_PEERS messages
# each), half of them sent by u1 (with every peer), a 60-byte body.  Then
# for each rep and store: a fresh start of parleyd (the mam module on),
# MAMQ_QUERIES pages of 50 filtered by with (the newest page and pages from
# a random start, taking turns: see mam-xmpp-query.py), one at a time; stop.
# env: MAMQ_ROWS (1000000), MAMQ_PEERS (100), MAMQ_QUERIES (1000),
#      MAMQ_PG_PORT (15544), BENCH_PG_DURABLE (0, see bench/mam-pg.sh),
#      BENCH_SRC, BENCH_WORK, PARLEY_TOP as for bench/run.sh
# Runs as root (PostgreSQL runs as postgres).  Results:
# BENCH_WORK/results/mamq-raw-*.jsonl (a JSON line per run and one per fill),
# the .log beside it and the .md table of bench/mam-summary.py --query.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
W=${BENCH_WORK:-/tmp/xmppbench}
REPS=${1:-3}
shift || true
STORES=${*:-sqlite pgsql}
ROWS=${MAMQ_ROWS:-1000000}
PEERS=${MAMQ_PEERS:-100}
QUERIES=${MAMQ_QUERIES:-1000}
PG_PORT=${MAMQ_PG_PORT:-15544}
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}
PGDIR=$PEER_ROOT_DIR/mamq-pg
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
export PARLEY_SQL_DIR=$PARLEY_TOP/sql
export PARLEY_BENCH_MUC=0 PARLEY_BENCH_MAM=1
if [ ! -f "$PARLEY_TOP/modules/mod_mam.c" ] || [ ! -x "$PARLEY_TOP/parleyd" ]; then
    echo "mam-xmpp-query.sh: $PARLEY_TOP has no parleyd built with the mam module" >&2
    exit 1
fi

# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"
suite_copy mamq parley.sh   # and cd there
driver() { echo peers/parley.sh; }
use() {
    case $1 in
    sqlite)
        export PARLEY_NAME=parley-mamq-sqlite PARLEY_PORT=15554
        unset PARLEY_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE
        ;;
    pgsql)
        export PARLEY_NAME=parley-mamq-pg PARLEY_PORT=15555
        export PARLEY_BENCH_DSN=$PG_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE=$PG_BENCH_PASSWORD_FILE
        ;;
    *) echo "mam-xmpp-query.sh: unknown store $1 (sqlite, pgsql)" >&2; exit 2 ;;
    esac
}

# now - 60 s, in microseconds; the messages are 30 s apart before it
END_US=$((($(date +%s) - 60) * 1000000))
STEP=30000000
START_US=$((END_US - (ROWS - 1) * STEP))
peer_list() { seq 2 $((PEERS + 1)) | sed 's/.*/u&@bench.local/' | paste -sd, -; }
# The rows, as one SELECT over a column i (1..ROWS) from the CTE or
# generate_series: owner u1, peer u(2 + i*7919 mod PEERS) (a stride, so
# that the peers interleave), sent by u1 when i/PEERS is odd.
row_select() {
    # (i as a 64-bit integer: generate_series gives PostgreSQL 32-bit ones);
    # the direction changes every PEERS rows, so that each peer has both
    local i="CAST(i AS BIGINT)"
    local peer="'u' || (2 + ($i * 7919) % $PEERS) || '@bench.local'"
    local out="($i / $PEERS) % 2"
    local body="'message ' || i || ' of the benchmark archive, some words to index'"
    cat <<EOS
SELECT 'bench.local', 'u1@bench.local', $START_US + ($i - 1) * $STEP, $peer, 'r', $out, $body,
       CASE WHEN $out = 1
            THEN '<message xmlns=''jabber:client'' from=''u1@bench.local/r'' to=''' || $peer || '/r'' type=''chat'' id=''m' || i || '''><body>' || $body || '</body></message>'
            ELSE '<message xmlns=''jabber:client'' from=''' || $peer || '/r'' to=''u1@bench.local/r'' type=''chat'' id=''m' || i || '''><body>' || $body || '</body></message>'
       END
EOS
}
COLS="server_host, owner, id, peer, resource, outgoing, body, stanza"

fill() {   # STORE
    local t0 t1 n
    t0=$(date +%s.%N)
    case $1 in
    sqlite)
        sqlite3 "$PEER_ROOT_DIR/parley-mamq-sqlite/parley.db" >>"$LOG" <<EOS
PRAGMA journal_mode = WAL;
BEGIN;
DELETE FROM archive;
INSERT INTO archive ($COLS)
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $ROWS)
$(row_select) FROM c;
COMMIT;
ANALYZE;
EOS
        n=$(sqlite3 "$PEER_ROOT_DIR/parley-mamq-sqlite/parley.db" 'SELECT COUNT(*) FROM archive')
        ;;
    pgsql)
        "$PG_BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$PG_BENCH_OWNER_DSN" <<EOS
TRUNCATE archive;
INSERT INTO archive ($COLS)
$(row_select) FROM generate_series(1, $ROWS) AS g(i);
VACUUM ANALYZE archive;
EOS
        n=$("$PG_BENCH_PSQL" -X -Atq -d "$PG_BENCH_OWNER_DSN" -c 'SELECT COUNT(*) FROM archive')
        ;;
    esac
    t1=$(date +%s.%N)
    echo "filled $1: $n rows in $(echo "$t1 - $t0" | bc) s" | tee -a "$LOG"
    printf '{"scenario":"mamq-fill","store":"%s","rows":%s,"seconds":%s}\n' "$1" "$n" "$(echo "$t1 - $t0" | bc)" >>"$OUT"
}

echo "# mam-query suite $(date -Is) reps=$REPS stores=$STORES rows=$ROWS peers=$PEERS queries=$QUERIES parley=$PARLEY_TOP" | tee -a "$LOG"
if git -C "$PARLEY_TOP" rev-parse HEAD >/dev/null 2>&1; then
    echo "# parley commit $(git -C "$PARLEY_TOP" rev-parse --short HEAD)" | tee -a "$LOG"
fi
case " $STORES " in
*" pgsql "*)
    bash "$HERE/mam-pg.sh" stop "$PGDIR"
    bash "$HERE/mam-pg.sh" start "$PGDIR" "$PG_PORT"
    # shellcheck source=/dev/null
    . "$PGDIR/env"
    ;;
esac
for s in $STORES; do   # accounts (the owner and its peers) and the archive
    use "$s"
    echo "## provision and fill $s $(date +%T)" | tee -a "$LOG"
    stop "$s"
    rm -rf "${PEER_ROOT_DIR:?}/$PARLEY_NAME"
    "$(driver)" adduser $((PEERS + 1)) >>"$LOG" 2>&1
    fill "$s"
done
for rep in $(seq "$REPS"); do
    for s in $STORES; do
        use "$s"
        echo "## rep $rep $s $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
        start "$s"
        timeout 900 taskset -c 1 python3 "$HERE/mam-xmpp-query.py" -p "$PARLEY_PORT" -P "$("$(driver)" pids)" \
            -w "$(peer_list)" -s "$START_US" -e "$END_US" -q "$QUERIES" --seed "$rep" \
            -L "store=$s rep=$rep" 2>>"$LOG" >>"$OUT" || echo "mam-xmpp-query.sh: mam-xmpp-query.py exit status $? ($s)" | tee -a "$LOG" >&2
        grep '^\[mamq\]' "$LOG" | tail -1
        suite_server_log "$PEER_ROOT_DIR/$PARLEY_NAME/parleyd.log"
        stop "$s"
    done
done
case " $STORES " in *" pgsql "*) bash "$HERE/mam-pg.sh" stop "$PGDIR" ;; esac
echo "# done $(date -Is) -> $OUT" | tee -a "$LOG"
python3 "$HERE/mam-summary.py" --query "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
