#!/bin/bash
# MUC fan-out: Parley and ejabberd side by side, interleaved (rep 1: parley,
# ejabberd; rep 2: the same; ...), with the muc scenario of bench/loadgen.
#   bench/muc.sh [REPS] [SERVER ...]        servers: parley ejabberd (default both), REPS 3
# Each case is RxM (R rooms of M occupants); for each rep, server and case:
# a fresh start, a closed-loop run (full speed; RSS per occupant is read in
# it), a fixed-rate run (latency), stop.  Then the hold test on each server
# of HOLD: 1 room x 1000 occupants, 10 messages/s in all for HOLD_SECS.
# env: CASES       ("1x100 50x10"; empty: none, for the hold test alone)
#      HOLD        servers for the hold test ("parley ejabberd"; empty: none)
#      HOLD_SECS   (60)
#      MUC_WINDOW_<R>x<M>, MUC_RATE_<R>x<M>   override a case's closed-loop
#                  window (messages in flight per room) and fixed rate (posts/s)
#      BENCH_SRC, BENCH_WORK, PARLEY_TOP   as for bench/run.sh
# Runs as root (ejabberd's driver switches users).  Results:
# BENCH_WORK/results/muc-raw-*.jsonl (a JSON object per run), the .log
# beside it and the .md table bench/muc-summary.py makes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
W=${BENCH_WORK:-/tmp/xmppbench}
REPS=${1:-3}
shift || true
SERVERS=${*:-parley ejabberd}
CASES=${CASES-1x100 50x10}
HOLD=${HOLD-parley ejabberd}
HOLD_SECS=${HOLD_SECS:-60}
USERS=1000
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
# Parley's own folder, made afresh each time: its database then has the
# schema of the build under test (an older one would stop parleyd)
export PARLEY_NAME=${PARLEY_NAME:-parley-muc}

# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"
suite_check muc "$SERVERS" "$HOLD"
# the harness copy, with the project's drivers and its own load generator
# (a superset of the harness's, built beside it so the harness's stays as it is)
suite_copy muc parley.sh peers/ejabberd-muc.sh   # and cd there

driver() { case $1 in parley) echo peers/parley.sh ;; ejabberd) echo peers/ejabberd-muc.sh ;; *) echo "muc.sh: unknown server $1" >&2; exit 2 ;; esac; }
LG() { suite_lg muc 900 "$@"; }
knob() { local v="MUC_$1_$2"; echo "${!v:-$3}"; }

# closed-loop window (messages posted and not yet reflected, per room) and fixed
# rate (posts/s in all) of each case: both cases get ~2000 deliveries in flight
# at full speed and 2500 deliveries/s at the fixed rate
window_of() { case $1 in 1x100) knob WINDOW "$1" 20 ;; 50x10) knob WINDOW "$1" 4 ;; *) knob WINDOW "$1" 10 ;; esac; }
rate_of() { case $1 in 1x100) knob RATE "$1" 25 ;; 50x10) knob RATE "$1" 250 ;; *) knob RATE "$1" 100 ;; esac; }
server_log() {   # the server's own log after a run (warnings and worse only)
    case $1 in
    parley) suite_server_log "$PEER_ROOT_DIR/$PARLEY_NAME/parleyd.log" ;;
    ejabberd) suite_server_log "$PEER_ROOT_DIR/ejabberd-muc/log/error.log" ;;
    esac
}
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}

echo "# muc suite $(date -Is) reps=$REPS servers=$SERVERS cases=$CASES hold=$HOLD parley=$PARLEY_TOP" | tee -a "$LOG"
if [ -d "$PARLEY_TOP/.git" ] || git -C "$PARLEY_TOP" rev-parse HEAD >/dev/null 2>&1; then
    echo "# parley commit $(git -C "$PARLEY_TOP" rev-parse --short HEAD)" | tee -a "$LOG"
fi
case " $SERVERS $HOLD " in
*" parley "*) rm -rf "${PEER_ROOT_DIR:?}/$PARLEY_NAME" ;;
esac
for s in $(echo "$SERVERS $HOLD" | tr ' ' '\n' | sort -u); do   # provision once (idempotent)
    start "$s"; "$(driver "$s")" adduser $USERS >>"$LOG" 2>&1; stop "$s"
done
for rep in $(seq "$REPS"); do
    for s in $SERVERS; do
        port=$(port_of "$s")
        for c in $CASES; do
            R=${c%x*} M=${c#*x}
            echo "## rep $rep $s $c $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
            start "$s"
            pids=$("$(driver "$s")" pids)
            LG -s muc -p "$port" -R "$R" -M "$M" -c 50 -w "$(window_of "$c")" -W 2 -d 8 -K "full" \
                -P "$pids" -L "server=$s rep=$rep case=$c-full"
            LG -s muc -p "$port" -R "$R" -M "$M" -c 50 -r "$(rate_of "$c")" -W 2 -d 8 -K "rate" \
                -P "$pids" -L "server=$s rep=$rep case=$c-rate"
            server_log "$s"
            stop "$s"
        done
    done
done
for s in $HOLD; do
    port=$(port_of "$s")
    echo "## hold $s $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
    start "$s"
    pids=$("$(driver "$s")" pids)
    # joining 1000 occupants is quadratic in presence stanzas: allow minutes
    LG -s muc -p "$port" -R 1 -M 1000 -c 50 -r 10 -W 2 -d "$HOLD_SECS" -e 60 -l 600 -K "hold" \
        -P "$pids" -L "server=$s rep=1 case=hold-1x1000"
    server_log "$s"
    stop "$s"
done
echo "# done $(date -Is) -> $OUT" | tee -a "$LOG"
python3 "$HERE/muc-summary.py" "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
