#!/bin/bash
# Two Parley builds side by side, interleaved (rep 1: A, B; rep 2: A, B;
# ...), for a change on a hot path.  Cases (default: all of them):
#   login           the harness's login scenario: logins/s, server CPU per login
#   msg             the harness's msg-full scenario: server CPU s per 100k delivered
#   offline-sqlite  offline-store.py, 10 senders x 500 messages to offline
#   offline-pgsql   users: messages/s into the offline store, on SQLite and on
#                   PostgreSQL (a throwaway cluster from tests/db/pgsql.sh)
# Build the old commit in one checkout and the new one in another, then
#   bench/compare.sh OLD_TOP NEW_TOP [REPS] [CASE ...]
# Needs the harness copy bench/run.sh makes (BENCH_WORK, /tmp/xmppbench)
# and root.  Prints one JSON line per harness run and one line per offline
# run, then the medians of each build.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: bench/compare.sh OLD_TOP NEW_TOP [REPS] [CASE ...]" >&2; exit 2; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
REPS=${3:-3}
shift $(($# < 3 ? $# : 3))
CASES=${*:-login msg offline-sqlite offline-pgsql}
W=${BENCH_WORK:-/tmp/xmppbench}
PG=${BENCH_PG_DIR:-/tmp/parley-bench-pg}
[ -x "$W/loadgen/xmppload" ] || { echo "compare.sh: run bench/run.sh once first (builds $W)" >&2; exit 1; }
cp "$HERE/parley.sh" "$W/peers/parley.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

case " $CASES " in
*" offline-pgsql "*)
    if [ ! -f "$PG/env" ]; then
        bash "$HERE/../tests/db/pgsql.sh" start "$PG" >/dev/null
        rm -f /tmp/bench-peers/parley-*-pgsql/users.count   # a new database has no accounts yet
    fi
    # shellcheck source=/dev/null
    . "$PG/env"
    (umask 077 && echo "$PARLEY_TEST_PGSQL_PASSWORD" > "$PG.password")
    ;;
esac

use() {   # NAME TOP PORT STORE: the environment parley.sh reads
    export PARLEY_NAME=$1 PARLEY_TOP=$2 PARLEY_PORT=$3
    if [ "$4" = pgsql ]; then
        export PARLEY_BENCH_DSN=$PARLEY_TEST_PGSQL_DSN PARLEY_BENCH_DB_PASSWORD_FILE=$PG.password
    else
        unset PARLEY_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE
    fi
}

harness() {   # NAME TOP PORT REP CASE
    use "$1" "$2" "$3" sqlite
    bash "$W/peers/parley.sh" adduser 1200 >/dev/null
    bash "$W/peers/parley.sh" start >/dev/null
    local pids
    pids=$(bash "$W/peers/parley.sh" pids)
    if [ "$5" = login ]; then
        taskset -c 1 "$W/loadgen/xmppload" -s login -h 127.0.0.1 -p "$3" -D bench.local -u u \
            -k pass -c 16 -n 1000 -W 2 -d 8 -P "$pids" -L "server=$1 rep=$4 case=login"
    else
        taskset -c 1 "$W/loadgen/xmppload" -s msg -h 127.0.0.1 -p "$3" -D bench.local -u u \
            -k pass -n 100 -c 50 -w 10 -W 3 -d 8 -f 1001 -P "$pids" -L "server=$1 rep=$4 case=msg"
    fi | grep '^{' | tee -a "$out"
    bash "$W/peers/parley.sh" stop >/dev/null
}

offline() {   # NAME TOP PORT REP STORE
    use "$1" "$2" "$3" "$5"
    bash "$W/peers/parley.sh" adduser 1200 >/dev/null
    local dir=/tmp/bench-peers/$1 count
    sed 's/^  roster: {}$/  roster: {}\n  offline: { max_per_user: 1000000 }/' "$dir/parley.yml" > "$dir/offline.yml"
    (cd "$dir" && taskset -c 0 "$2/parleyd" -d -c offline.yml)
    for _ in $(seq 100); do ss -ltn | grep -q ":$3 " && break; sleep 0.1; done
    if [ "$5" = pgsql ]; then
        count="psql -Atq '$PARLEY_TEST_PGSQL_OWNER_DSN' -c 'SELECT COUNT(*) FROM offline_messages'"
    else
        count="sqlite3 '$dir/parley.db' 'SELECT COUNT(*) FROM offline_messages'"
    fi
    taskset -c 1 /usr/bin/python3 "$HERE/offline-store.py" "$3" "server=$1 case=offline-$5 rep=$4" \
        10 500 "$count" | tee -a "$out"
    kill "$(cat "$dir/parleyd.pid")"
    sleep 1
}

for rep in $(seq "$REPS"); do
    for c in $CASES; do
        case $c in
        login | msg)
            harness parley-a "$A" 15526 "$rep" "$c"
            harness parley-b "$B" 15527 "$rep" "$c"
            ;;
        offline-sqlite | offline-pgsql)
            offline "parley-a-${c#offline-}" "$A" 15528 "$rep" "${c#offline-}"
            offline "parley-b-${c#offline-}" "$B" 15529 "$rep" "${c#offline-}"
            ;;
        *) echo "compare.sh: unknown case $c" >&2; exit 2 ;;
        esac
    done
done
echo "A = $A"
echo "B = $B"
python3 - "$out" <<'PY'
import json, re, statistics, sys
res = {}
for line in open(sys.argv[1]):
    if line.startswith('{'):
        j = json.loads(line)
        lab = dict(kv.split('=', 1) for kv in j['label'].split())
        build = lab['server'][len('parley-'):]
        if lab['case'] == 'login' and j.get('logins'):
            res.setdefault((lab['case'], build, 'logins/s'), []).append(j['logins_per_s'])
            res.setdefault((lab['case'], build, 'CPU ms per login'), []).append(
                1000.0 * j['server_cpu_s'] / j['logins'])
        elif lab['case'] == 'msg':
            for k in ('msgs_per_s', 'cpu_s_per_100k'):
                if k in j:
                    res.setdefault((lab['case'], build, k), []).append(j[k])
    else:
        m = re.match(r'server=parley-(\w)-\w+ case=(\S+) rep=\d+: (\d+) of (\d+) stored .* = (\d+) msgs/s', line)
        if m:
            res.setdefault((m.group(2), m.group(1), 'msgs/s stored'), []).append(float(m.group(5)))
for (case, build, what), v in sorted(res.items()):
    print('%-15s %s %-22s median %10.2f  (%s)' % (case, build, what, statistics.median(v),
          ', '.join('%.2f' % x for x in v)))
PY
