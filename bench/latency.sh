#!/bin/bash
# Delivery latency at a fixed message rate, Parley interleaved with ejabberd
# (rep 1: parley, ejabberd; rep 2: ...), with the harness's msg scenario:
#   msg-1000    100 users, 1000 msgs/s in total
#   msg-10000   1000 users, 10,000 msgs/s in total
# Each run starts the server fresh, logs the users in (the load generator's
# -W warm-up excludes that wave from the figures), then measures -d seconds.
# After each Parley run it prints `parleyctl latency` (the loop monitor's
# histogram, classes and worst iterations for that run).
#   bench/latency.sh [REPS] [SECONDS]      (3 reps, 15 s)
# Needs the harness copy bench/run.sh makes (BENCH_WORK, /tmp/xmppbench),
# ejabberd installed (the harness's peers/ejabberd.sh) and a built checkout.
# Prints one JSON line per run, the latency reports, then per scenario and
# server the median p50/p99 and the ratio ejabberd/Parley of the p99s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
REPS=${1:-3}
SECS=${2:-15}
W=${BENCH_WORK:-/tmp/xmppbench}
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
[ -x "$W/loadgen/xmppload" ] || { echo "latency.sh: run bench/run.sh once first (builds $W)" >&2; exit 1; }
cp "$HERE/parley.sh" "$W/peers/parley.sh"
chmod +x "$W/peers/"*.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ulimit -n 20000 2>/dev/null || true

port_of() { bash "$W/peers/$1.sh" info | sed 's/.*port=\([0-9]*\).*/\1/'; }

for p in parley ejabberd; do   # accounts u1..u1000, once
    bash "$W/peers/$p.sh" start >/dev/null 2>&1
    bash "$W/peers/$p.sh" adduser 1000 >/dev/null 2>&1
    bash "$W/peers/$p.sh" stop >/dev/null 2>&1
done

run() {   # SERVER REP USERS RATE
    local port pids
    port=$(port_of "$1")
    bash "$W/peers/$1.sh" start >/dev/null 2>&1
    sleep 2
    pids=$(bash "$W/peers/$1.sh" pids)
    echo "## $1 rep $2: $3 users, $4 msgs/s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$1" = parley ]; then
        "$PARLEY_TOP/parleyctl" -c /tmp/bench-peers/parley/parley.yml latency --reset >/dev/null
    fi
    timeout 300 taskset -c 1 "$W/loadgen/xmppload" -s msg -h 127.0.0.1 -p "$port" -D bench.local \
        -u u -k pass -n "$3" -c 50 -r "$4" -W 3 -d "$SECS" -f 1 -P "$pids" \
        -L "server=$1 rep=$2 case=msg-$4 users=$3" | grep '^{' | tee -a "$out" || true
    if [ "$1" = parley ]; then
        "$PARLEY_TOP/parleyctl" -c /tmp/bench-peers/parley/parley.yml latency | sed 's/^/    /'
    fi
    bash "$W/peers/$1.sh" stop >/dev/null 2>&1
    sleep 1
}

for rep in $(seq "$REPS"); do
    for p in parley ejabberd; do run "$p" "$rep" 100 1000; done
    for p in parley ejabberd; do run "$p" "$rep" 1000 10000; done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
by = {}
for r in rows:
    lab = dict(kv.split('=', 1) for kv in r['label'].split())
    by.setdefault((lab['case'], lab['server']), []).append(r)
print('\n| scenario | server | reps | msgs/s | p50 ms (median) | p99 ms (median) | p99 per rep | server CPU % |')
print('|---|---|---|---|---|---|---|---|')
med = {}
for (case, srv), rs in sorted(by.items()):
    p50 = statistics.median(r['lat_p50_ms'] for r in rs)
    p99 = statistics.median(r['lat_p99_ms'] for r in rs)
    med[(case, srv)] = p99
    print('| %s | %s | %d | %.0f | %.3f | %.3f | %s | %.1f |' % (
        case, srv, len(rs), statistics.median(r['msgs_per_s'] for r in rs), p50, p99,
        ' '.join('%.2f' % r['lat_p99_ms'] for r in rs),
        statistics.median(r.get('server_cpu_pct', 0) for r in rs)))
print()
for case in sorted({c for c, _ in med}):
    if (case, 'parley') in med and (case, 'ejabberd') in med and med[(case, 'parley')] > 0:
        print('%s: p99 ejabberd / Parley = %.2f' % (case, med[(case, 'ejabberd')] / med[(case, 'parley')]))
EOF
