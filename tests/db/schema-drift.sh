#!/bin/bash
# The schema drift test (tests/db/schema_drift.py) for every dialect this
# build has: SQLite always, PostgreSQL on a throw-away server started here
# (tests/db/pgsql.sh) when the build has the pgsql driver, MariaDB on a
# throw-away server (tests/db/mariadb.sh) when it has the mysql driver.
# Run by make check.
set -uo pipefail
top_srcdir=$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)
SQL_DIR=${PARLEY_SQL_DIR:-$top_srcdir/sql}
PY=/usr/bin/python3
dir= mydir=
cleanup() {
    [ -z "$dir" ] || bash "$top_srcdir/tests/db/pgsql.sh" stop "$dir"
    [ -z "$mydir" ] || bash "$top_srcdir/tests/db/mariadb.sh" stop "$mydir"
}
trap cleanup EXIT
if [ "${PARLEY_HAVE_PGSQL:-yes}" != no ]; then
    dir=$(mktemp -d /tmp/parley-drift-pgsql-XXXXXX)
    bash "$top_srcdir/tests/db/pgsql.sh" start "$dir" || exit 1
    # shellcheck disable=SC1091
    . "$dir/env"
fi
if [ "${PARLEY_HAVE_MYSQL:-yes}" != no ]; then
    mydir=$(mktemp -d /tmp/parley-drift-mysql-XXXXXX)
    bash "$top_srcdir/tests/db/mariadb.sh" start "$mydir" || exit 1
    # shellcheck disable=SC1091
    . "$mydir/env"
fi
"$PY" "$top_srcdir/tests/db/schema_drift.py" "$SQL_DIR"
