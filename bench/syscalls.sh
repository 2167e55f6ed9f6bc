#!/bin/bash
# System calls, context switches and CPU of parleyd per delivered message,
# at a fixed message rate (the harness's msg scenario: TCP, STARTTLS, one
# message from one user to another, both online), for one or more builds
# measured interleaved (A B A B ...).
#   bench/syscalls.sh [-r REPS] [-u USERS] [-m RATE] [-d SECONDS] TOP...
# TOP is a directory with parleyd, parleyctl and sql/ (a built checkout or a
# copy of one).  After the login wave and 3 s of warm-up, `perf stat` counts
# every syscall tracepoint of parleyd for SECONDS; the load generator's
# delivered count over the same time divides them.  The delivered count is
# the load generator's, for its whole measuring window (SECONDS + 2), scaled
# to the counting window.
# Needs perf (root, or perf_event_paranoid <= 1), and the harness copy
# bench/run.sh makes (BENCH_WORK, /tmp/xmppbench).  Uses its own PEER_ROOT
# (default /tmp/bench-syscalls) and port (PARLEY_PORT, default 15531).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=3 USERS=100 RATE=1000 SECS=8
while getopts r:u:m:d: o; do
    case $o in
    r) REPS=$OPTARG ;; u) USERS=$OPTARG ;; m) RATE=$OPTARG ;; d) SECS=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r REPS] [-u USERS] [-m RATE] [-d SECONDS] TOP..." >&2; exit 2; }
W=${BENCH_WORK:-/tmp/xmppbench}
[ -x "$W/loadgen/xmppload" ] || { echo "syscalls.sh: run bench/run.sh once first (builds $W)" >&2; exit 1; }
export PEER_ROOT=${PEER_ROOT:-/tmp/bench-syscalls}
export PARLEY_PORT=${PARLEY_PORT:-15531}
PEER=$PEER_ROOT/parley.sh
mkdir -p "$PEER_ROOT"
cp "$W/peers/common.sh" "$HERE/parley.sh" "$PEER_ROOT/"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ulimit -n 20000 2>/dev/null || true

for top in "$@"; do   # one database per build, accounts u1..uUSERS
    n=$(basename "$(cd "$top" && pwd)")
    PARLEY_TOP=$top PARLEY_NAME=$n bash "$PEER" adduser "$USERS" >/dev/null
done

i=0
for rep in $(seq "$REPS"); do
    for top in "$@"; do
        i=$((i + 1))
        n=$(basename "$(cd "$top" && pwd)")
        export PARLEY_TOP=$top PARLEY_NAME=$n
        bash "$PEER" start >/dev/null
        pid=$(bash "$PEER" pids)
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        timeout 300 taskset -c 1 "$W/loadgen/xmppload" -s msg -h 127.0.0.1 -p "$PARLEY_PORT" \
            -D bench.local -u u -k pass -n "$USERS" -c 50 -r "$RATE" -W 3 -d "$((SECS + 2))" -f 1 \
            -P "$pid" -L "build=$n rep=$rep" >"$out/$i.json" 2>"$out/$i.err" &
        lg=$!
        # every user online; sending starts 1 s later, measuring after 3 s of warm-up
        for _ in $(seq 600); do grep -q 'login phase done' "$out/$i.err" 2>/dev/null && break; sleep 0.1; done
        sleep 4.5
        perf stat -x, -e 'syscalls:sys_enter_*' -e context-switches -e task-clock -p "$pid" \
            -o "$out/$i.perf" -- sleep "$SECS" >/dev/null 2>&1
        wait "$lg" || true
        bash "$PEER" stop >/dev/null
        echo "$n $rep $load" >"$out/$i.meta"
    done
done

python3 - "$out" "$SECS" <<'PY'
import glob, json, os, statistics, sys
d, secs = sys.argv[1], float(sys.argv[2])
runs = {}
order = []
for meta in sorted(glob.glob(d + '/*.meta'), key=lambda p: int(os.path.basename(p).split('.')[0])):
    i = os.path.basename(meta).split('.')[0]
    name, rep, *load = open(meta).read().split()
    js = [l for l in open('%s/%s.json' % (d, i)) if l.startswith('{')]
    if not js:
        print('run %s (%s rep %s): no result: %s' % (i, name, rep, open('%s/%s.err' % (d, i)).read()[-300:]))
        continue
    r = json.loads(js[0])
    msgs = r['msgs_per_s'] * secs
    counts, cpu_ms = {}, 0.0
    for line in open('%s/%s.perf' % (d, i)):
        f = line.strip().split(',')
        if len(f) < 3 or not f[0].replace('.', '').isdigit():
            continue
        ev = f[2]
        if ev.startswith('syscalls:sys_enter_'):
            counts[ev[len('syscalls:sys_enter_'):]] = float(f[0])
        elif ev == 'context-switches':
            counts['(context switches)'] = float(f[0])
        elif ev == 'task-clock':
            cpu_ms = float(f[0])
    if name not in runs:
        order.append(name)
    runs.setdefault(name, []).append(dict(msgs=msgs, counts=counts, cpu_ms=cpu_ms, load=' '.join(load[:3]),
                                          p99=r['lat_p99_ms'], p50=r['lat_p50_ms'], rate=r['msgs_per_s']))
    print('%s rep %s: load %s, %.0f msgs/s delivered, %d syscalls, p50 %.3f p99 %.3f ms' % (
        name, rep, ' '.join(load[:3]), r['msgs_per_s'],
        sum(v for k, v in counts.items() if not k.startswith('(')), r['lat_p50_ms'], r['lat_p99_ms']))
names = set()
for rs in runs.values():
    for x in rs:
        names |= {k for k, v in x['counts'].items() if v > 0}
def per(rs, k):
    return statistics.median(x['counts'].get(k, 0) / x['msgs'] for x in rs)
print('\n| per delivered message | ' + ' | '.join(order) + ' |')
print('|---|' + '---|' * len(order))
tot = {n: statistics.median(sum(v for k, v in x['counts'].items() if not k.startswith('(')) / x['msgs']
                            for x in runs[n]) for n in order}
for k in sorted(names, key=lambda k: -per(runs[order[0]], k)):
    print('| %s | ' % k + ' | '.join('%.3f' % per(runs[n], k) for n in order) + ' |')
print('| **all syscalls** | ' + ' | '.join('**%.2f**' % tot[n] for n in order) + ' |')
print('| parleyd CPU µs (task-clock) | ' + ' | '.join(
    '%.1f' % statistics.median(x['cpu_ms'] * 1000 / x['msgs'] for x in runs[n]) for n in order) + ' |')
print('| p99 ms (median of reps) | ' + ' | '.join(
    '%.3f' % statistics.median(x['p99'] for x in runs[n]) for n in order) + ' |')
PY
