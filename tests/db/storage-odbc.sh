#!/bin/bash
# The storage-interface suite (tests/unit/test-storage) through unixODBC:
# the odbc driver with psqlODBC against a throwaway PostgreSQL
# (tests/db/pgsql.sh) and with MariaDB Connector/ODBC against a throwaway
# MariaDB (tests/db/mariadb.sh).  The ODBC configuration (odbcinst.ini with
# the two drivers, odbc.ini with one data source each) is written into the
# temporary directory and named by ODBCSYSINI / ODBCINI: nothing in /etc is
# read or touched.  Skipped (77) only when this build has no unixODBC, or
# neither libpq nor libmariadb (the fixtures reset the databases through
# them); a missing server or ODBC driver is a failure.
set -uo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
top_srcdir=$(cd "$top_srcdir" && pwd)
export PARLEY_SQL_DIR=${PARLEY_SQL_DIR:-$top_srcdir/sql}

if [ "${PARLEY_HAVE_ODBC:-}" = no ]; then
    echo "SKIP: this build has no ODBC driver (configure found no unixODBC: apt-get install unixodbc-dev)"
    exit 77
fi
if [ "${PARLEY_HAVE_PGSQL:-}" = no ] && [ "${PARLEY_HAVE_MYSQL:-}" = no ]; then
    echo "SKIP: the ODBC tests reset their databases through libpq or libmariadb; this build has neither"
    exit 77
fi
prog=$top_builddir/tests/unit/test-storage
[ -x "$prog" ] || { echo "storage-odbc: $prog is not built (cmocka missing?)" >&2; exit 77; }

# An ODBC driver library of the Debian packages (odbc-postgresql, odbc-mariadb).
find_driver() {
    local f
    for f in /usr/lib/*/odbc/"$1" /usr/lib/odbc/"$1" /usr/lib64/"$1"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

dir=$(mktemp -d /tmp/parley-odbc-XXXXXX)
chmod 755 "$dir"
cleanup() {
    [ -d "$dir/pg" ] && bash "$top_srcdir/tests/db/pgsql.sh" stop "$dir/pg"
    [ -d "$dir/my" ] && bash "$top_srcdir/tests/db/mariadb.sh" stop "$dir/my"
    rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/odbc"
: >"$dir/odbc/odbcinst.ini"
: >"$dir/odbc/odbc.ini"
backends=()

if [ "${PARLEY_HAVE_PGSQL:-}" != no ]; then
    drv=$(find_driver psqlodbca.so) ||
        { echo "storage-odbc: psqlODBC not found (apt-get install odbc-postgresql)" >&2; exit 1; }
    bash "$top_srcdir/tests/db/pgsql.sh" start "$dir/pg" || exit 1
    # shellcheck disable=SC1091
    . "$dir/pg/env"
    cat >>"$dir/odbc/odbcinst.ini" <<EOF
[Parley PostgreSQL]
Description = psqlODBC (ANSI: UTF-8 passes through unchanged)
Driver = $drv

EOF
    cat >>"$dir/odbc/odbc.ini" <<EOF
[parley-pgsql]
Driver = Parley PostgreSQL
Servername = 127.0.0.1
Port = $PARLEY_TEST_PGSQL_PORT
Database = parley
SSLmode = disable

EOF
    export PARLEY_TEST_ODBC_PGSQL_DSN="DSN=parley-pgsql;UID=parley"
    backends+=(odbc-pgsql)
fi

if [ "${PARLEY_HAVE_MYSQL:-}" != no ]; then
    drv=$(find_driver libmaodbc.so) ||
        { echo "storage-odbc: MariaDB Connector/ODBC not found (apt-get install odbc-mariadb)" >&2; exit 1; }
    bash "$top_srcdir/tests/db/mariadb.sh" start "$dir/my" || exit 1
    # shellcheck disable=SC1091
    . "$dir/my/env"
    cat >>"$dir/odbc/odbcinst.ini" <<EOF
[Parley MariaDB]
Description = MariaDB Connector/ODBC
Driver = $drv

EOF
    cat >>"$dir/odbc/odbc.ini" <<EOF
[parley-mysql]
Driver = Parley MariaDB
Server = 127.0.0.1
Port = $PARLEY_TEST_MYSQL_PORT
Database = parley
CHARSET = utf8mb4

EOF
    export PARLEY_TEST_ODBC_MYSQL_DSN="DSN=parley-mysql;UID=parley"
    backends+=(odbc-mysql)
fi

export ODBCSYSINI=$dir/odbc ODBCINI=$dir/odbc/odbc.ini
# In the sanitizer build: psqlODBC itself keeps a few small allocations of
# a connection that failed (a wrong password) past SQLFreeHandle; that is
# the driver's, not Parley's, so LeakSanitizer is told to ignore leaks
# whose allocation is inside the ODBC drivers' libraries.
printf 'leak:psqlodbca.so\nleak:psqlodbcw.so\nleak:libmaodbc.so\n' >"$dir/lsan.supp"
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$dir/lsan.supp
PARLEY_TEST_BACKENDS=$(IFS=,; echo "${backends[*]}") "$prog"
