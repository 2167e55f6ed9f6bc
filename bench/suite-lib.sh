# shellcheck shell=bash
# The parts bench/muc.sh and bench/pep.sh share: the harness copy with the
# project's drivers and load generator, and the helpers of an interleaved
# run.  Sourced, not executed.  The caller sets HERE (bench/), SRC (the
# harness), W (its copy), LOG and OUT (paths below W), and defines
# driver SERVER (prints the driver script of a server, relative to W).

# suite_copy NAME SCRIPT...: copy the harness to W and the given scripts
# (paths below bench/) into its peers/; build bench/loadgen as
# W/loadgen-NAME/xmppload (LGBIN), beside the harness's own, which stays as
# it is; make W/results
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
