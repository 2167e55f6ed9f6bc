#!/bin/bash
# PEP notification fan-out: Parley and ejabberd side by side, interleaved
# (rep 1: parley, ejabberd; rep 2: the same; ...), with the pep scenario of
# bench/loadgen.
#   bench/pep.sh [REPS] [SERVER ...]        servers: parley ejabberd (default both), REPS 3
# USERS users, each with CONTACTS mutual contacts (a ring, bench/pep-roster.py),
# are imported once per server from one XEP-0227 file into a folder made
# afresh.  Then for each rep, server and run (RUNS): a fresh start, the users
# log in with the same entity caps (NODE+notify among the features), and once
# every user has its contacts' presence they publish to their PEP node NODE;
# stop.  Runs: "rate" (PEP_RATE publishes/s in all, round robin) and "full"
# (closed loop, PEP_WINDOW notifications expected and not yet received).
# env: USERS (200), CONTACTS (100), RUNS ("rate full"), PEP_RATE (50),
#      PEP_WINDOW (2000), PEP_SECS (8, measured, after 2 s of warm-up)
#      BENCH_SRC, BENCH_WORK, PARLEY_TOP   as for bench/run.sh
# Runs as root (ejabberd's driver switches users).  Results:
# BENCH_WORK/results/pep-raw-*.jsonl (a JSON object per run), the .log
# beside it and the .md table bench/pep-summary.py makes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
W=${BENCH_WORK:-/tmp/xmppbench}
REPS=${1:-3}
shift || true
SERVERS=${*:-parley ejabberd}
USERS=${USERS:-200}
CONTACTS=${CONTACTS:-100}
RUNS=${RUNS-rate full}
PEP_RATE=${PEP_RATE:-50}
PEP_WINDOW=${PEP_WINDOW:-2000}
PEP_SECS=${PEP_SECS:-8}
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
# folders and ports of their own (made afresh here, so the imported accounts
# and rosters are the only ones), apart from the other benchmarks'
export PARLEY_NAME=${PARLEY_NAME:-parley-pep} PARLEY_PORT=${PARLEY_PEP_PORT:-15532}
export PARLEY_BENCH_MUC=0   # ejabberd-pep has no MUC either

# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"
suite_check pubsub "$SERVERS"
# the harness copy, with the project's drivers and its own load generator
suite_copy pep parley.sh peers/ejabberd-pep.sh   # and cd there
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}

driver() { case $1 in parley) echo peers/parley.sh ;; ejabberd) echo peers/ejabberd-pep.sh ;; *) echo "pep.sh: unknown server $1" >&2; exit 2 ;; esac; }
folder() { case $1 in parley) echo "$PEER_ROOT_DIR/$PARLEY_NAME" ;; ejabberd) echo "$PEER_ROOT_DIR/ejabberd-pep" ;; esac; }
LG() { suite_lg pep 600 "$@"; }
server_log() {   # the server's own log after a run (warnings and worse only)
    case $1 in
    parley) suite_server_log "$(folder parley)/parleyd.log" ;;
    ejabberd) suite_server_log "$(folder ejabberd)/log/error.log" ;;
    esac
}
caps_status() {   # Parley's own caps counters (parleyctl status), as a pep-caps JSON line
    local line
    [ "$1" = parley ] || return 0
    line=$("$PARLEY_TOP/parleyctl" -c "$(folder parley)/parley.yml" status 2>>"$LOG" | grep -m1 '^ *caps:' || true)
    [ -n "$line" ] || return 0
    echo "$line" >>"$LOG"
    python3 -c 'import json, re, sys
d = {k.strip().replace(" ", "_"): int(v) for v, k in re.findall(r"(\d+) ([a-z ]+)", sys.argv[2])}
d.update(scenario="pep-caps", label=sys.argv[1])
print(json.dumps(d))' "$2" "$line" >>"$OUT"
}
run_args() {   # the load generator's options for a run
    case $1 in
    rate) echo "-r $PEP_RATE" ;;
    full) echo "-w $PEP_WINDOW" ;;
    *) echo "pep.sh: unknown run $1 (rate, full)" >&2; exit 2 ;;
    esac
}

echo "# pep suite $(date -Is) reps=$REPS servers=$SERVERS users=$USERS contacts=$CONTACTS runs=$RUNS rate=$PEP_RATE window=$PEP_WINDOW parley=$PARLEY_TOP" | tee -a "$LOG"
if git -C "$PARLEY_TOP" rev-parse HEAD >/dev/null 2>&1; then
    echo "# parley commit $(git -C "$PARLEY_TOP" rev-parse --short HEAD)" | tee -a "$LOG"
fi
ROSTER=$W/pep-roster-$USERS-$CONTACTS.xml
python3 "$HERE/pep-roster.py" "$USERS" "$CONTACTS" > "$ROSTER"
for s in $SERVERS; do   # accounts and rosters, afresh
    echo "## provision $s $(date +%T)" | tee -a "$LOG"
    stop "$s"
    rm -rf "$(folder "$s")"
    case $s in
    parley) "$(driver "$s")" import-xep0227 "$ROSTER" >>"$LOG" 2>&1 ;;
    ejabberd) start "$s"; "$(driver "$s")" import-xep0227 "$ROSTER" >>"$LOG" 2>&1; stop "$s" ;;
    esac
done
for rep in $(seq "$REPS"); do
    for s in $SERVERS; do
        port=$(port_of "$s")
        for r in $RUNS; do
            echo "## rep $rep $s $r $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
            start "$s"
            pids=$("$(driver "$s")" pids)
            # shellcheck disable=SC2046
            LG -s pep -p "$port" -n "$USERS" -c 50 $(run_args "$r") -W 2 -d "$PEP_SECS" -l 300 \
                -P "$pids" -L "server=$s rep=$rep case=$r"
            caps_status "$s" "server=$s rep=$rep case=$r"
            server_log "$s"
            stop "$s"
        done
    done
done
echo "# done $(date -Is) -> $OUT" | tee -a "$LOG"
python3 "$HERE/pep-summary.py" "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
