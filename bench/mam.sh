#!/bin/bash
# The cost of the message archive: one Parley build with the mam module on
# and off, interleaved (rep 1: on, off; rep 2: the same; ...), on the
# harness's msg-full scenario (users chatting in pairs at full speed; every
# message is archived twice, in the sender's and the recipient's archive,
# on SQLite).  Prints one JSON line per run and the medians of server CPU
# seconds per 100k delivered messages and of messages/s.
#   bench/mam.sh [REPS]        REPS 3
# env: MAM_OPTS   the module's options when on (default {}: its defaults)
# Needs the harness copy bench/run.sh makes (BENCH_WORK, /tmp/xmppbench),
# root and this checkout built.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
REPS=${1:-3}
W=${BENCH_WORK:-/tmp/xmppbench}
[ -x "$W/loadgen/xmppload" ] || { echo "mam.sh: run bench/run.sh once first (builds $W)" >&2; exit 1; }
peers=$(mktemp -d /tmp/parley-mam-bench-XXXXXX)
cp "$HERE/parley.sh" "$W/peers/common.sh" "$peers/"
out=$(mktemp)
trap 'rm -rf "$out" "$peers"' EXIT
export PARLEY_TOP=$TOP PARLEY_BENCH_MUC=0

run() {   # NAME PORT REP MAM(on|off)
    export PARLEY_NAME=$1 PARLEY_PORT=$2
    bash "$peers/parley.sh" adduser 1200 >/dev/null
    local dir=/tmp/bench-peers/$1 pid
    if [ "$4" = on ]; then
        sed "s/^  roster: {}\$/  roster: {}\n  mam: ${MAM_OPTS:-{\}}/" "$dir/parley.yml" > "$dir/mam.yml"
    else
        sed 's/^  roster: {}$/  roster: {}\n  mam: false/' "$dir/parley.yml" > "$dir/mam.yml"
    fi
    (cd "$dir" && taskset -c 0 "$TOP/parleyd" -d -c mam.yml)
    for _ in $(seq 100); do ss -ltn | grep -q ":$2 " && break; sleep 0.1; done
    pid=$(cat "$dir/parleyd.pid")
    taskset -c 1 "$W/loadgen/xmppload" -s msg -h 127.0.0.1 -p "$2" -D bench.local -u u \
        -k pass -n 100 -c 50 -w 10 -W 3 -d 8 -f 1001 -P "$pid" -L "server=$1 rep=$3 case=mam-$4" |
        grep '^{' | tee -a "$out"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

for rep in $(seq "$REPS"); do
    run parley-mam-on 15536 "$rep" on
    run parley-mam-off 15537 "$rep" off
done

/usr/bin/python3 - "$out" <<'EOF'
import json, re, statistics, sys
res = {}
for line in open(sys.argv[1]):
    if not line.startswith('{'):
        continue
    d = json.loads(line)
    lab = dict(kv.split('=', 1) for kv in d['label'].split())
    case = lab.get('case', '?')
    for k in ('msgs_per_s', 'cpu_s_per_100k'):
        if k in d:
            res.setdefault((case, k), []).append(float(d[k]))
for (case, k), v in sorted(res.items()):
    print('%-10s %-16s median %.3f  (runs: %s)' % (case, k, statistics.median(v), ', '.join('%.3f' % x for x in v)))
on = res.get(('mam-on', 'cpu_s_per_100k'))
off = res.get(('mam-off', 'cpu_s_per_100k'))
if on and off:
    print('archiving costs %+.0f%% CPU per message' % (100 * (statistics.median(on) / statistics.median(off) - 1)))
EOF
