#!/bin/bash
# Server CPU of a stream management resume (XEP-0198) against a full login,
# Parley and ejabberd interleaved (rep 1: parley, ejabberd; rep 2: ...), with
# bench/sm-resume.py (see there for what a login and a resume are).
#   bench/sm-resume.sh [REPS] [SERVER ...]    servers: parley ejabberd (default both), REPS 3
# For each rep, server and variant (SM_VARIANTS): a fresh start, SM_USERS
# full logins with resumption enabled, each connection dropped abruptly (RST),
# then SM_ROUNDS resumes of each session, dropped the same way; stop.
# Variants: "full" (every TLS handshake a full one) and "tls-resume" (the
# client offers a TLS session of an earlier connection in every handshake:
# the JSON says how many the server accepted); and, for Parley only,
# "notls" (no STARTTLS: the listener's starttls optional, PARLEY_BENCH_STARTTLS),
# what the XMPP part of a login and of a resume costs without the TLS handshake;
# "sasl2" and "sasl2-tls-resume" (as "full" and "tls-resume", but each resume
# is inline in SASL2: one <authenticate/> with SCRAM-SHA-1 and <resume/>, no
# stream restart; the auth-only phase is SASL2 too): Parley only, the
# harness's ejabberd has no SASL2.  SM_SASL2_MECH picks the SASL2 mechanism
# of those variants (sm-resume.py --sasl2-mech; default SCRAM-SHA-1).
# "fast" and "fast-tls-resume": as the sasl2 ones, but the resume logs in
# with a FAST token (XEP-0484, HT-SHA-256-NONE) each user got, unmeasured,
# in a SASL2 login with <request-token/> before the login phase.
# Parley: parley.sh in a folder of its own (parley-sm, port 15562, SQLite),
# with PARLEY_SM_MODULES added to its modules (YAML lines, two spaces in;
# default none: stream management is part of the c2s stream).  ejabberd: the
# harness's peers/ejabberd.sh as it is (mnesia; mod_stream_mgmt is on there
# with its defaults).  Both pinned to CPU 0, the client to CPU 1.
# env: SM_USERS (200), SM_ROUNDS (2), SM_CONC (8), SM_VARIANTS ("full tls-resume notls"),
#      SM_SASL2_MECH,
#      SM_RECORD (a command run during each resume phase only, stopped with
#      SIGINT; @PIDS@ becomes the server's pids, comma-separated, @TAG@
#      SERVER-VARIANT-REP: 'perf record -g -o /tmp/p-@TAG@.data -p @PIDS@' or
#      'strace -c -f -o /tmp/s-@TAG@.txt -p @PIDS@'; the figures of such a
#      run include the recorder's cost: keep them apart from measured runs),
#      SM_PORT (15562), PEER_ROOT (/tmp/bench-peers), SM_TAG (appended to the
#      server's name in the results: "parley-new"; bench/sm-resume-ab.sh),
#      PARLEY_SM_MODULES, BENCH_SRC, BENCH_WORK, PARLEY_TOP as for bench/run.sh
# Runs as root.  Results: BENCH_WORK/results/sm-raw-*.jsonl (a JSON line per
# run), the .log beside it and the .md table of bench/sm-summary.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
W=${BENCH_WORK:-/tmp/xmppbench}
REPS=${1:-3}
shift || true
SERVERS=${*:-parley ejabberd}
SM_USERS=${SM_USERS:-200}
SM_ROUNDS=${SM_ROUNDS:-2}
SM_CONC=${SM_CONC:-8}
SM_VARIANTS=${SM_VARIANTS:-full tls-resume notls}
export PARLEY_TOP=${PARLEY_TOP:-$TOP}
export PARLEY_NAME=parley-sm PARLEY_PORT=${SM_PORT:-15562} PARLEY_BENCH_MUC=0 PARLEY_BENCH_MAM=0
export PARLEY_BENCH_MODULES=${PARLEY_SM_MODULES:-}
PEER_ROOT_DIR=${PEER_ROOT:-/tmp/bench-peers}

for s in $SERVERS; do
    case $s in
    parley) [ -x "$PARLEY_TOP/parleyd" ] || { echo "sm-resume.sh: no parleyd in $PARLEY_TOP (set PARLEY_TOP)" >&2; exit 1; } ;;
    ejabberd) command -v ejabberdctl >/dev/null || { echo "sm-resume.sh: apt-get install ejabberd" >&2; exit 1; } ;;
    *) echo "sm-resume.sh: unknown server $s" >&2; exit 2 ;;
    esac
done
# shellcheck source=suite-lib.sh
. "$HERE/suite-lib.sh"
suite_copy sm parley.sh   # and cd there

driver() { case $1 in parley) echo peers/parley.sh ;; ejabberd) echo peers/ejabberd.sh ;; esac; }
server_log() {
    case $1 in
    parley) suite_server_log "$PEER_ROOT_DIR/parley-sm/parleyd.log" ;;
    ejabberd) suite_server_log "$PEER_ROOT_DIR/ejabberd/log/error.log" ;;
    esac
}

echo "# sm-resume suite $(date -Is) reps=$REPS servers=$SERVERS users=$SM_USERS rounds=$SM_ROUNDS conc=$SM_CONC variants=$SM_VARIANTS parley=$PARLEY_TOP" | tee -a "$LOG"
if git -C "$PARLEY_TOP" rev-parse HEAD >/dev/null 2>&1; then
    echo "# parley commit $(git -C "$PARLEY_TOP" rev-parse --short HEAD)" | tee -a "$LOG"
fi
for s in $SERVERS; do   # accounts (one more for the probe login)
    echo "## provision $s $(date +%T)" | tee -a "$LOG"
    case $s in
    parley) stop parley; rm -rf "$PEER_ROOT_DIR/parley-sm"; "$(driver parley)" adduser $((SM_USERS + 1)) >>"$LOG" 2>&1 ;;
    ejabberd) start ejabberd; "$(driver ejabberd)" adduser $((SM_USERS + 1)) >>"$LOG" 2>&1; stop ejabberd ;;
    esac
done
for rep in $(seq "$REPS"); do
    for s in $SERVERS; do
        port=$(port_of "$s")
        for v in $SM_VARIANTS; do
            tls=()
            export PARLEY_BENCH_STARTTLS=required
            case $v in
            full) ;;
            tls-resume) tls=(--tls-resume) ;;
            notls)
                [ "$s" = parley ] || continue   # the harness's ejabberd requires STARTTLS
                tls=(--no-tls) PARLEY_BENCH_STARTTLS=optional
                ;;
            sasl2 | sasl2-tls-resume)
                [ "$s" = parley ] || continue   # the harness's ejabberd has no SASL2
                tls=(--resume-via sasl2 --sasl2-mech "${SM_SASL2_MECH:-SCRAM-SHA-1}")
                [ "$v" = sasl2 ] || tls+=(--tls-resume)
                ;;
            fast | fast-tls-resume)
                [ "$s" = parley ] || continue   # the harness's ejabberd has no SASL2
                tls=(--resume-via sasl2 --sasl2-mech HT-SHA-256-NONE)
                [ "$v" = fast ] || tls+=(--tls-resume)
                ;;
            *) echo "sm-resume.sh: unknown variant $v (full, tls-resume, notls, sasl2, sasl2-tls-resume, fast, fast-tls-resume)" >&2; exit 2 ;;
            esac
            echo "## rep $rep $s $v $(date +%T) load $(cut -d" " -f1-3 /proc/loadavg)" | tee -a "$LOG"
            start "$s"
            pids=$("$(driver "$s")" pids)
            rec=()
            if [ -n "${SM_RECORD:-}" ]; then
                r=${SM_RECORD//@PIDS@/${pids// /,}}
                rec=(--record "${r//@TAG@/$s-$v-$rep} 2>>$W/$LOG")
            fi
            timeout 600 taskset -c 1 python3 "$HERE/sm-resume.py" -p "$port" -P "$pids" -n "$SM_USERS" \
                -R "$SM_ROUNDS" -c "$SM_CONC" "${tls[@]}" "${rec[@]}" -L "server=$s${SM_TAG:+-$SM_TAG} variant=$v rep=${SM_REP:-$rep}" \
                2>>"$LOG" >>"$OUT" || echo "sm-resume.sh: sm-resume.py exit status $? ($s $v)" | tee -a "$LOG" >&2
            grep '^\[sm\]' "$LOG" | tail -1
            server_log "$s"
            stop "$s"
        done
    done
done
echo "# done $(date -Is) -> $OUT" | tee -a "$LOG"
python3 "$HERE/sm-summary.py" "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
