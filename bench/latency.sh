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
# env: SCENARIOS    the message rates to run (default "1000 10000")
#      PARLEY_BASE  a second Parley build (a directory with parleyd,
#                   parleyctl and sql/), run as server "parley-base" in the
#                   same interleaving, e.g. main before a change
#      PEER_ROOT, PARLEY_PORT, EJABBERD_PORT, EJABBERD_DIST_PORT  as the
#                   peer scripts take them (away from another run's)
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

SCENARIOS=${SCENARIOS:-1000 10000}
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}
SERVERS="parley ejabberd"
[ -z "${PARLEY_BASE:-}" ] || SERVERS="parley parley-base ejabberd"

peer() {   # SERVER ARGS...: the peer script of SERVER
    local s=$1
    shift
    if [ "$s" = parley-base ]; then
        PARLEY_TOP=$PARLEY_BASE PARLEY_NAME=parley-base bash "$W/peers/parley.sh" "$@"
    else
        bash "$W/peers/$s.sh" "$@"
    fi
}
port_of() { peer "$1" info | sed 's/.*port=\([0-9]*\).*/\1/'; }

for p in $SERVERS; do   # accounts u1..u1000, once
    peer "$p" start >/dev/null 2>&1
    peer "$p" adduser 1000 >/dev/null 2>&1
    peer "$p" stop >/dev/null 2>&1
done

ctl() {   # SERVER ARGS...: parleyctl of that Parley run
    local s=$1 top=$PARLEY_TOP
    shift
    [ "$s" = parley ] || top=$PARLEY_BASE
    "$top/parleyctl" -c "$PEER_ROOT_DIR/$s/parley.yml" "$@"
}

run() {   # SERVER REP USERS RATE
    local port pids
    port=$(port_of "$1")
    peer "$1" start >/dev/null 2>&1
    sleep 2
    pids=$(peer "$1" pids)
    echo "## $1 rep $2: $3 users, $4 msgs/s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    case $1 in parley*) ctl "$1" latency --reset >/dev/null ;; esac
    timeout 300 taskset -c 1 "$W/loadgen/xmppload" -s msg -h 127.0.0.1 -p "$port" -D bench.local \
        -u u -k pass -n "$3" -c 50 -r "$4" -W 3 -d "$SECS" -f 1 -P "$pids" \
        -L "server=$1 rep=$2 case=msg-$4 users=$3" | grep '^{' | tee -a "$out" || true
    case $1 in parley*) ctl "$1" latency | sed 's/^/    /' ;; esac
    peer "$1" stop >/dev/null 2>&1
    sleep 1
}

for rep in $(seq "$REPS"); do
    for rate in $SCENARIOS; do
        users=$((rate / 10))
        for p in $SERVERS; do run "$p" "$rep" "$users" "$rate"; done
    done
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
    for p in ('parley', 'parley-base'):
        if (case, p) in med and (case, 'ejabberd') in med and med[(case, p)] > 0:
            print('%s: p99 ejabberd / %s = %.2f' % (case, p, med[(case, 'ejabberd')] / med[(case, p)]))
EOF
