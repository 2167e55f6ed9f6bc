#!/bin/bash
# The protocol tests (tests/integration, the main test host on the internal
# store, SQLite) with every parleyd under valgrind memcheck.  Not part of
# `make check`: it is slow (parleyd runs 20-50 times slower).
#
#   scripts/valgrind.sh [TEST_FILE...] [-- pytest args, e.g. -x]
#
# Without TEST_FILE, every file of tests/integration (that takes hours).
#
# Run from a build without sanitizers (valgrind and ASan do not mix): the
# checkout's own build, or BUILDDIR.  Each parleyd runs as
#   valgrind --error-markers=VALGRIND-ERROR-BEGIN,... --error-exitcode=99 parleyd
# so a memcheck error makes parleyd exit with status 99 at SIGTERM, which
# fails the test that stops it.  The valgrind reports are kept in
# VALGRIND_LOGDIR (default build-valgrind/), one file per parleyd process;
# at the end this script prints how many reports have errors and exits 1
# when any has.
#
# Leaks: "definitely lost" and "indirectly lost" count as errors (parleyd
# frees everything it owns at SIGTERM); "possibly lost" and "still
# reachable" (libraries' static state) do not.  A parleyd a test kills with
# SIGKILL leaves no leak summary, which is expected.
#
# Known to fail under valgrind for reasons of valgrind's own: an in-process
# restart (parleyctl restart, POST /api/restart) re-executes /proc/self/exe,
# which under valgrind is valgrind's tool, not parleyd; and tests with tight
# client timeouts (test_limits.py's slow reader) can time out, parleyd
# running 20-50 times slower.
#
# Environment: BUILDDIR (default: the checkout), VALGRIND_LOGDIR,
# PARLEY_TEST_STORAGE (default sqlite; pgsql or mysql start a throw-away
# database server as in run-pgsql.sh),
# VALGRIND_SUPP (an extra suppressions file), PARLEY_TEST_WORKERS (default 2).
set -uo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILDDIR=$(cd "${BUILDDIR:-$TOP}" && pwd)
LOGDIR=${VALGRIND_LOGDIR:-$TOP/build-valgrind}
if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 77
fi
if [ ! -x "$BUILDDIR/parleyd" ]; then
    echo "valgrind.sh: no $BUILDDIR/parleyd: build first" >&2
    exit 2
fi
if grep -q '__asan_init' "$BUILDDIR/parleyd" 2>/dev/null; then
    echo "valgrind.sh: $BUILDDIR/parleyd is built with sanitizers; use a plain build" >&2
    exit 2
fi
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/vg.*.log

supp=
if [ -n "${VALGRIND_SUPP:-}" ]; then
    supp="--suppressions=$VALGRIND_SUPP"
fi
# no blanks inside one argument: parleytest splits PARLEY_WRAPPER on blanks
PARLEY_WRAPPER="valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full
 --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
 --error-markers=VALGRIND-ERROR-BEGIN,VALGRIND-ERROR-END --track-origins=yes
 --num-callers=30 --trace-children=no --log-file=$LOGDIR/vg.%p.log $supp"
PARLEY_WRAPPER=$(echo $PARLEY_WRAPPER)
export PARLEY_WRAPPER
# The reports go to files, not to parleyd's log: a test sees an error as
# exit status 99 at SIGTERM, and the scan below sees all of them.

export PARLEY_BUILDDIR=$BUILDDIR PARLEY_SRCDIR=$TOP
export PARLEY_TEST_WORKERS=${PARLEY_TEST_WORKERS:-2}
export PARLEY_TEST_STORAGE=${PARLEY_TEST_STORAGE:-sqlite}
files=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    files="$files $(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
    shift
done
[ "${1:-}" = -- ] && shift
if [ -n "$files" ]; then
    export PARLEY_TEST_FILES=$files
fi
start=$(date +%s)
sh "$TOP/tests/integration/run.sh" "$@"
rc=$?
end=$(date +%s)

reports=0
bad=0
for f in "$LOGDIR"/vg.*.log; do
    [ -e "$f" ] || continue
    reports=$((reports + 1))
    if grep -q 'VALGRIND-ERROR-BEGIN' "$f"; then
        bad=$((bad + 1))
        echo "== $f"
        sed -n '1,60p' "$f"
    fi
done
echo "valgrind.sh: tests exit $rc in $((end - start)) s; $reports parleyd processes, $bad with memcheck errors (reports in $LOGDIR)"
if [ $bad -gt 0 ]; then
    exit 1
fi
exit $rc
