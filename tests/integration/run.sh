#!/bin/sh
# Protocol tests: start parleyd and talk to it with slixmpp and raw sockets.
# Run by `make check` (which sets top_builddir and top_srcdir, in-tree or in a
# separate build directory), or by hand from a build directory:
#   tests/integration/run.sh [pytest args, e.g. -k login -x]
# Exit 77 (skipped) when /usr/bin/python3 has no slixmpp or pytest.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

# PARLEY_TEST_STORAGE=pgsql (or odbc: PostgreSQL through unixODBC): the main
# test host keeps its data in PostgreSQL; without PARLEY_TEST_PGSQL_* in the environment a throw-away
# server is started here (tests/db/pgsql.sh) and stopped at the end.
pgdir=
case ${PARLEY_TEST_STORAGE:-sqlite} in pgsql | odbc) want_pg=yes ;; *) want_pg=no ;; esac
if [ $want_pg = yes ] && [ -z "${PARLEY_TEST_PGSQL_DSN:-}" ]; then
    pgdir=$(mktemp -d /tmp/parley-it-pgsql-XXXXXX)
    trap 'bash "$PARLEY_SRCDIR/tests/db/pgsql.sh" stop "$pgdir"' EXIT
    bash "$PARLEY_SRCDIR/tests/db/pgsql.sh" start "$pgdir" || exit 99
    . "$pgdir/env"
fi

# PARLEY_TEST_STORAGE=mysql: the same with a throw-away MariaDB
# (tests/db/mariadb.sh).
mydir=
if [ "${PARLEY_TEST_STORAGE:-sqlite}" = mysql ] && [ -z "${PARLEY_TEST_MYSQL_DSN:-}" ]; then
    mydir=$(mktemp -d /tmp/parley-it-mysql-XXXXXX)
    trap 'bash "$PARLEY_SRCDIR/tests/db/mariadb.sh" stop "$mydir"' EXIT
    bash "$PARLEY_SRCDIR/tests/db/mariadb.sh" start "$mydir" || exit 99
    . "$mydir/env"
fi

# PARLEY_TEST_WORKERS=N (make check sets 2): N test files at a time, each
# with its own parleyd, through pytest-xdist (python3-pytest-xdist); the
# tests mostly wait on the network, so this shortens the run even on a
# machine with few cores.  The database runs (run-pgsql.sh...) keep 1: their
# outage tests halt the database server every file of the run shares.
workers=${PARLEY_TEST_WORKERS:-1}
par=
if [ "$workers" -gt 1 ] 2>/dev/null; then
    if "$PY" -c 'import xdist' >/dev/null 2>&1; then
        par="-n $workers --dist loadfile"
    else
        echo "NOTE: $PY has no pytest-xdist (python3-pytest-xdist): one file at a time"
    fi
fi

# no .pytest_cache or __pycache__ in the source tree (it may be read-only)
export PYTHONDONTWRITEBYTECODE=1
# PARLEY_TEST_FILES: the test files to run (default: all of them)
# shellcheck disable=SC2086
"$PY" -m pytest -q -p no:cacheprovider -o console_output_style=classic $par \
    --rootdir "$here" ${PARLEY_TEST_FILES:-"$here"} "$@" </dev/null
rc=$?
if [ $rc -eq 5 ]; then
    echo "ERROR: pytest collected no tests"
    exit 1
fi
exit $rc
