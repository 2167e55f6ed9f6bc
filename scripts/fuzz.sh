#!/bin/bash
# Build the libFuzzer targets of tests/fuzz/ and run each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGET names such as fuzz-xml (default:
# every tests/fuzz/fuzz-*.c).  Builds with ./configure --enable-fuzz CC=clang-14
# in its own directory, build-fuzz/ (from a clean copy of the sources, so
# the checkout's own build is not touched), then runs the targets one after
# the other, each starting from its seed corpus tests/fuzz/corpus/TARGET/.  New
# inputs it finds go to build-fuzz/corpus/TARGET/ (the repository's corpus
# is never written).
#
# Prints one line per target (executions, coverage, corpus size) and exits
# non-zero when a target crashed, leaked, hung or broke one of its checks,
# printing the reproducer (build-fuzz/crashes/TARGET/crash-...) and the top
# of the report; replay one with build-fuzz/obj/tests/fuzz/TARGET FILE.
#
# Environment: FUZZ_DIR (default build-fuzz), JOBS (make -j, default 2),
# CC (default clang-14).  Needs clang-14 and libclang-rt-14-dev (installed
# by scripts/deps.sh test).
set -uo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
SECS=${1:-60}
shift $(($# > 0 ? 1 : 0))
case "$SECS" in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
DIR=${FUZZ_DIR:-$TOP/build-fuzz}
case "$DIR" in /*) ;; *) DIR=$TOP/$DIR ;; esac
CC=${CC:-clang-14}
JOBS=${JOBS:-2}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found: install clang-14 and libclang-rt-14-dev (scripts/deps.sh test)" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz-*.c; do
        t=$(basename "$f" .c)
        [ "$t" = fuzz-util ] || targets+=("$t")
    done
fi

echo "fuzz: building in $DIR"
if ! bash scripts/copy-source.sh "$DIR/src"; then
    echo "fuzz: cannot copy the sources to $DIR/src" >&2
    exit 1
fi
mkdir -p "$DIR/obj"
build_log=$DIR/build.log
(
    set -e
    cd "$DIR/src"
    [ -x configure ] || ./autogen.sh
    cd "$DIR/obj"
    if [ ! -f Makefile ] || [ ../src/configure -nt Makefile ]; then
        ../src/configure -q --enable-fuzz CC="$CC"
    fi
    make -j"$JOBS" "${targets[@]/#/tests/fuzz/}"
) >"$build_log" 2>&1 </dev/null
if [ $? -ne 0 ]; then
    tail -n 40 "$build_log" >&2
    echo "fuzz: build failed (log: $build_log)" >&2
    exit 1
fi

failed=0
for t in "${targets[@]}"; do
    bin=$DIR/obj/tests/fuzz/$t
    seeds=$TOP/tests/fuzz/corpus/$t
    work=$DIR/corpus/$t
    crashes=$DIR/crashes/$t
    log=$DIR/logs/$t.log
    mkdir -p "$work" "$crashes" "$DIR/logs"
    args=(-max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
    [ -f "$TOP/tests/fuzz/$t.dict" ] && args+=(-dict="$TOP/tests/fuzz/$t.dict")
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    # the reproducers of bugs found and fixed run first, as regression tests
    [ -d "$TOP/tests/fuzz/crashes/$t" ] && dirs+=("$TOP/tests/fuzz/crashes/$t")
    # known leaks not fixed yet (each entry says which bug, in tests/fuzz/crashes/)
    lsan=${LSAN_OPTIONS:-}
    [ -f "$TOP/tests/fuzz/$t.supp" ] && lsan="suppressions=$TOP/tests/fuzz/$t.supp:print_suppressions=0${lsan:+:$lsan}"
    LSAN_OPTIONS=$lsan "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 </dev/null
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
    units=$(find "$work" -type f | wc -l)
    printf 'fuzz: %-14s %ss: %s executions, coverage %s edges (%s features), corpus %s inputs' \
        "$t" "$SECS" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$units"
    if [ $rc -eq 0 ]; then
        echo
        continue
    fi
    failed=$((failed + 1))
    echo ": FAILED (exit $rc)"
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    echo "fuzz: $t: reproducer: ${repro:-none written (see $log)}"
    [ -n "$repro" ] && echo "fuzz: $t: replay: $bin $repro"
    grep -m1 -B2 -A25 -E '^==[0-9]+==ERROR|runtime error|^fuzz-|Assertion|ALARM|deadly signal' "$log" | head -n 40 | sed 's/^/    /'
    echo "fuzz: $t: full log: $log"
done
[ $failed -eq 0 ] && echo "fuzz: ${#targets[@]} targets, no crash" || echo "fuzz: $failed of ${#targets[@]} targets failed"
[ $failed -eq 0 ]
