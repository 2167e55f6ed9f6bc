#!/bin/bash
# Two Parley builds side by side on the harness's login scenario,
# interleaved (rep 1: A, B; rep 2: A, B; ...), SQLite storage, settings as
# bench/parley.sh writes them.  For a change on the login path: build the
# old commit in one checkout and the new one in another, then
#   bench/compare-login.sh OLD_TOP NEW_TOP [REPS]
# Needs the harness copy bench/run.sh makes (BENCH_WORK, /tmp/xmppbench) and
# root.  Prints one JSON line per run, then the medians (logins/s, server
# CPU per login).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: bench/compare-login.sh OLD_TOP NEW_TOP [REPS]" >&2; exit 2; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
REPS=${3:-3}
W=${BENCH_WORK:-/tmp/xmppbench}
[ -x "$W/loadgen/xmppload" ] || { echo "compare-login.sh: run bench/run.sh once first (builds $W)" >&2; exit 1; }
cp "$HERE/parley.sh" "$W/peers/parley.sh"
unset PARLEY_BENCH_DSN PARLEY_BENCH_DB_PASSWORD_FILE
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() {   # NAME TOP PORT REP
    export PARLEY_NAME=$1 PARLEY_TOP=$2 PARLEY_PORT=$3
    bash "$W/peers/parley.sh" adduser 1200 >/dev/null
    bash "$W/peers/parley.sh" start >/dev/null
    taskset -c 1 "$W/loadgen/xmppload" -s login -h 127.0.0.1 -p "$3" -D bench.local -u u -k pass \
        -c 16 -n 1000 -W 2 -d 8 -P "$(bash "$W/peers/parley.sh" pids)" -L "server=$1 rep=$4" |
        grep '^{' | tee -a "$out"
    bash "$W/peers/parley.sh" stop >/dev/null
}

for rep in $(seq "$REPS"); do
    run parley-a "$A" 15526 "$rep"
    run parley-b "$B" 15527 "$rep"
done
echo "A = $A"
echo "B = $B"
python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    name = j['label'].split()[0].split('=')[1]
    runs.setdefault(name, []).append(j)
for name, rs in sorted(runs.items()):
    rate = [r['logins_per_s'] for r in rs]
    cpu = [1000.0 * r['server_cpu_s'] / r['logins'] for r in rs if r['logins']]
    print('%s: logins/s median %.1f (%s), server CPU per login median %.2f ms (%s)' % (
        name, statistics.median(rate), ', '.join('%.1f' % x for x in rate),
        statistics.median(cpu), ', '.join('%.2f' % x for x in cpu)))
PY
