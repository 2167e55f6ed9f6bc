#!/bin/bash
# Every test, in the two builds that matter:
#   1. the checkout itself, built with --enable-werror:  make check
#   2. build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer:  make check
# and, beside the first, each libFuzzer target of tests/fuzz/ for FUZZ_SECONDS
# (default 12; 0 leaves fuzzing out) through scripts/fuzz.sh, in build-fuzz/,
# and the Debian package test (tests/package/run.sh, in build-pkg/).
# Unit tests (cmocka) and the integration tests (tests/integration, slixmpp)
# run in both.  A test that fails, errors or is skipped is a failure here: a
# skip means something the suite needs is missing.
#
#   ./scripts/test-all.sh          (as root: it installs and starts servers,
#                                   and some tests run programs as other users;
#                                   another user's run goes through sudo)
#
# Ends with one line "N passed, N failed" (test programs over both builds) and
# exits non-zero on any failure.  Runs unattended (CI=true, no stdin).
set -uo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
# Not root: the tests that need root would be skipped, and a skip is a
# failure here.  Through sudo when there is one; otherwise say what to do.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "test-all: some tests need root; re-running through sudo"
        exec sudo -- "$TOP/scripts/test-all.sh" "$@"
    fi
    echo "test-all: run this as root (some tests need root, and there is no sudo here):" \
        "log in as root (su -) and run ./scripts/test-all.sh again" >&2
    exit 1
fi
JOBS=${JOBS:-2}
# make check runs this many test programs at once: the protocol runs (one
# per store) mostly wait on sockets and databases, not on the CPU, so more
# of them than cores finish sooner; run.sh splits its own files over two
# pytest workers as well (PARLEY_TEST_WORKERS, see Makefile.am).
CHECK_JOBS=${CHECK_JOBS:-3}
ASAN_DIR=$TOP/build-asan

passed=0
failed=0
failures=()
logs=()

say() { printf '\n==> %s\n' "$*"; }

# Count the results of one build from its .trs files (one per test program);
# $1 = build dir, $2 = label.  Sets counted and build_failures.
count_results() {
    local dir=$1 label=$2 trs res name
    counted=0
    build_failures=0
    while IFS= read -r trs; do
        counted=$((counted + 1))
        res=$(sed -n 's/^:global-test-result: *//p' "$trs" | head -n1)
        [ -n "$res" ] || res=$(sed -n 's/^:test-result: *//p' "$trs" | head -n1)
        name=${trs#"$dir"/}
        name=${name%.trs}
        case "$res" in
        PASS | XFAIL) passed=$((passed + 1)) ;;
        *)
            failed=$((failed + 1))
            build_failures=$((build_failures + 1))
            failures+=("$label: $name: ${res:-no result}")
            ;;
        esac
    done < <(find "$dir" -path "$dir/build-*" -prune -o -name '*.trs' -type f -print | sort)
}

# One build's `make check`; $1 = build dir, $2 = label.
run_check() {
    local dir=$1 label=$2 rc
    find "$dir" -path "$dir/build-*" -prune -o \( -name '*.trs' -o -name 'test-suite.log' \) -type f -print0 |
        xargs -0 rm -f
    say "$label: make check"
    (cd "$dir" && make -j"$CHECK_JOBS" check </dev/null)
    rc=$?
    logs+=("$dir/test-suite.log")
    count_results "$dir" "$label"
    if [ "$counted" -eq 0 ]; then
        failed=$((failed + 1))
        failures+=("$label: no test ran (make check exit $rc)")
    elif [ $rc -ne 0 ] && [ "$build_failures" -eq 0 ]; then
        failed=$((failed + 1))
        failures+=("$label: make check exit $rc with no failed test counted")
    fi
}

build_failed() {
    failed=$((failed + 1))
    failures+=("$1")
}

# ---- fuzzing, in the background -----------------------------------------------
# Each libFuzzer target of tests/fuzz/ runs FUZZ_SECONDS (default 12) from its
# seed corpus (scripts/fuzz.sh, in build-fuzz/), niced, beside the werror
# build's make check, which mostly waits on sockets.  A crash fails the
# suite; its reproducer's path is printed with the summary.
FUZZ_SECONDS=${FUZZ_SECONDS:-12}
FUZZ_LOG=$TOP/build-fuzz.log
fuzz_pid=
start_fuzz() {
    [ "$FUZZ_SECONDS" -gt 0 ] || return 0
    say "fuzz targets, ${FUZZ_SECONDS}s each, in the background (log: $FUZZ_LOG)"
    nice -n 10 bash scripts/fuzz.sh "$FUZZ_SECONDS" >"$FUZZ_LOG" 2>&1 </dev/null &
    fuzz_pid=$!
}
finish_fuzz() {
    [ -n "$fuzz_pid" ] || return 0
    say "fuzz targets"
    wait "$fuzz_pid"
    local rc=$?
    cat "$FUZZ_LOG"
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("fuzz: scripts/fuzz.sh exit $rc (log $FUZZ_LOG)")
        local line
        while IFS= read -r line; do
            failures+=("$line")
        done < <(grep -E '^fuzz: [^ ]+: (reproducer|replay):' "$FUZZ_LOG")
    fi
}

# ---- the Debian package, in the background --------------------------------------
# tests/package/run.sh (build the .deb, install it in a clean Debian 12
# chroot, start parleyd there, log in from here), niced, beside the werror
# build's make check, from when that build is done.  PACKAGE_TEST=0 leaves
# it out.  It needs the Debian mirror.
PACKAGE_TEST=${PACKAGE_TEST:-1}
PKG_LOG=$TOP/build-pkg.log
pkg_pid=
start_pkg() {
    [ "$PACKAGE_TEST" != 0 ] || return 0
    say "Debian package test, in the background (log: $PKG_LOG)"
    nice -n 10 bash tests/package/run.sh >"$PKG_LOG" 2>&1 </dev/null &
    pkg_pid=$!
}
finish_pkg() {
    [ -n "$pkg_pid" ] || return 0
    say "Debian package test"
    wait "$pkg_pid"
    local rc=$?
    grep -E '^(==> package test|package test: FAILED)' "$PKG_LOG"
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
    else
        tail -n 40 "$PKG_LOG"
        failed=$((failed + 1))
        failures+=("package: tests/package/run.sh exit $rc (log $PKG_LOG)")
    fi
}

say "dependencies"
bash scripts/deps.sh build test || build_failed "installing dependencies"

# ---- 1. in the checkout, warnings are errors --------------------------------
say "build (--enable-werror)"
werror_ok=1
if [ ! -x configure ]; then
    ./autogen.sh || werror_ok=0
fi
if [ $werror_ok = 1 ]; then
    if [ ! -f Makefile ] || [ configure -nt Makefile ] ||
        ! ./config.status --config 2>/dev/null | grep -q -- '--enable-werror'; then
        [ -f Makefile ] && make clean >/dev/null 2>&1
        ./configure -q --enable-werror || werror_ok=0
    fi
fi
if [ $werror_ok = 1 ] && make -j"$JOBS" </dev/null; then
    start_fuzz
    start_pkg
    run_check "$TOP" "werror"
else
    build_failed "werror: build failed"
fi

# ---- 2. sanitizers, in build-asan/ ----------------------------------------------
# configure refuses a separate build directory while the checkout itself is
# configured (step 1), so build-asan/ builds from a clean copy of the sources
# in build-asan/src (objects in build-asan/obj).
say "build (AddressSanitizer + UndefinedBehaviorSanitizer) in build-asan/"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan_ok=1
SRC=$ASAN_DIR/src
OBJ=$ASAN_DIR/obj
mkdir -p "$OBJ"
bash scripts/copy-source.sh "$SRC" || asan_ok=0
if [ $asan_ok = 1 ]; then
    if [ ! -f "$OBJ/Makefile" ] || [ "$SRC/configure" -nt "$OBJ/Makefile" ]; then
        (cd "$OBJ" && ../src/configure -q --enable-sanitizers) || asan_ok=0
    fi
fi
if [ $asan_ok = 1 ] && (cd "$OBJ" && make -j"$JOBS" </dev/null); then
    run_check "$OBJ" "asan"
else
    build_failed "asan: build failed"
fi

finish_fuzz
finish_pkg

# ---- summary ----------------------------------------------------------------------
if [ $failed -ne 0 ]; then
    for log in "${logs[@]}"; do
        [ -s "$log" ] || continue
        say "$log"
        cat "$log"
    done
    say "failures"
    printf '  %s\n' "${failures[@]}"
fi
echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
