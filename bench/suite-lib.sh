# shellcheck shell=bash
# The parts bench/muc.sh and bench/pep.sh share: the harness copy with the
# project's drivers and load generator, and the helpers of an interleaved
# run.  Sourced, not executed.  The caller sets HERE (bench/), SRC (the
# harness), W (its copy) and PARLEY_TOP, and defines driver SERVER (prints
# the driver script of a server, relative to W).

# suite_check MODULE SERVER...: exit unless the harness is there, ejabberd
# is installed if among the servers, and PARLEY_TOP has parleyd built with
# modules/MODULE if parley is
suite_check() {
    local module=$1 me=${0##*/}
    shift
    [ -d "$SRC" ] || { echo "$me: no benchmark harness at $SRC (set BENCH_SRC)" >&2; exit 1; }
    case " $* " in
    *" ejabberd "*) command -v ejabberdctl >/dev/null || { echo "$me: apt-get install ejabberd" >&2; exit 1; } ;;
    esac
    case " $* " in
    *" parley "*)
        if [ ! -x "$PARLEY_TOP/parleyd" ] || [ ! -d "$PARLEY_TOP/modules/$module" ]; then
            echo "$me: $PARLEY_TOP has no parleyd built with modules/$module (set PARLEY_TOP)" >&2
            exit 1
        fi
        ;;
    esac
}

# suite_copy NAME SCRIPT...: copy the harness to W and the given scripts
# (paths below bench/) into its peers/; build bench/loadgen as
# W/loadgen-NAME/xmppload (LGBIN), beside the harness's own, which stays as
# it is; then cd to W, where OUT (default results/NAME-raw-DATE.jsonl) and
# LOG (beside it) take the results
suite_copy() {
    local name=$1 f
    shift
    mkdir -p "$W"
    cp -r "$SRC/." "$W/"
    chmod -R u+w "$W"
    for f in "$@"; do cp "$HERE/$f" "$W/peers/"; done
    chmod +x "$W/peers/"*.sh
    mkdir -p "$W/loadgen-$name" "$W/results"
    cp "$HERE/loadgen/xmppload.c" "$HERE/loadgen/Makefile" "$W/loadgen-$name/"
    make -s -C "$W/loadgen-$name"
    LGBIN=$W/loadgen-$name/xmppload
    cd "$W" || exit 1
    OUT=${OUT:-results/$name-raw-$(date +%Y%m%d-%H%M%S).jsonl}
    LOG=${OUT%.jsonl}.log
    ulimit -n 20000 2>/dev/null || true
}

port_of() { "$(driver "$1")" info | sed 's/.*port=\([0-9]*\).*/\1/'; }
start() { "$(driver "$1")" start >>"$LOG" 2>&1; sleep 2; }
stop() { "$(driver "$1")" stop >>"$LOG" 2>&1; sleep 1; }

# suite_lg TAG SECONDS ARG...: the load generator (at most SECONDS) on CPU 1,
# its JSON line to OUT and its report to LOG; prints its [TAG] summary line
suite_lg() {
    local tag=$1 secs=$2
    shift 2
    timeout "$secs" taskset -c 1 "$LGBIN" "$@" 2>>"$LOG" >>"$OUT" ||
        echo "${0##*/}: load generator exit status $? for: $*" | tee -a "$LOG" >&2
    grep "^\[$tag\]" "$LOG" | tail -1
}

# suite_server_log FILE: the last lines of a server's own log into LOG
suite_server_log() {
    if [ -s "$1" ]; then
        echo "--- $1 (last 20 lines)" >>"$LOG"
        tail -20 "$1" >>"$LOG"
    fi
}
