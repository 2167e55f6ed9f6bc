#!/bin/sh
# The protocol tests of everything stored, with the main test host kept in
# PostgreSQL through the odbc driver: unixODBC with psqlODBC (Debian's
# odbc-postgresql), registered in an odbcinst.ini of a temporary directory
# named by ODBCSYSINI (nothing in /etc is read or touched); run.sh starts
# the throw-away PostgreSQL.  Then the database fault test, on a PostgreSQL
# server of its own.  Skipped (77) only when the build has no
# unixODBC or no libpq (the fixtures make the databases through psql).
here=$(cd "$(dirname "$0")" && pwd)
if [ "${PARLEY_HAVE_ODBC:-}" = no ] || [ "${PARLEY_HAVE_PGSQL:-}" = no ]; then
    echo "SKIP: this build lacks the ODBC or the PostgreSQL driver (apt-get install unixodbc-dev libpq-dev)"
    exit 77
fi
drv=
for f in /usr/lib/*/odbc/psqlodbca.so /usr/lib/odbc/psqlodbca.so /usr/lib64/psqlodbca.so; do
    [ -f "$f" ] && { drv=$f; break; }
done
if [ -z "$drv" ]; then
    echo "ERROR: psqlODBC not found (apt-get install odbc-postgresql)"
    exit 99
fi
dir=$(mktemp -d /tmp/parley-it-odbc-XXXXXX)
chmod 755 "$dir"
PARLEY_TEST_ODBC_DRIVER="Parley PostgreSQL"
cat >"$dir/odbcinst.ini" <<EOC
[$PARLEY_TEST_ODBC_DRIVER]
Description = psqlODBC (ANSI: UTF-8 passes through unchanged)
Driver = $drv
EOC
: >"$dir/odbc.ini"
# psqlODBC keeps a few small allocations of a failed connection; that is the
# driver's, not Parley's (see tests/db/storage-odbc.sh).
printf 'leak:psqlodbca.so\nleak:psqlodbcw.so\n' >"$dir/lsan.supp"
LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$dir/lsan.supp
ODBCSYSINI=$dir
ODBCINI=$dir/odbc.ini
PARLEY_TEST_STORAGE=odbc
PARLEY_TEST_FILES=
for t in login register roster presence offline vcard private last blocking privacy offline_rules shared_roster vjud muc muc_restart pubsub push mam scram_sha512 scram_sha1_only fast_ctl fast fault_commit; do
    PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_$t.py"
done
# the user data commands: paged and counted in SQL
PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_userdata_ctl.py"
export PARLEY_TEST_STORAGE PARLEY_TEST_FILES PARLEY_TEST_ODBC_DRIVER ODBCSYSINI ODBCINI LSAN_OPTIONS
sh "$here/run.sh" "$@"
rc=$?
# test_fault_db kills and freezes the PostgreSQL server behind the driver: on
# one of its own, while no other file runs (a run with pytest arguments
# leaves it out)
if [ $rc -eq 0 ] && [ $# -eq 0 ]; then
    PARLEY_TEST_FILES=$here/test_fault_db.py PARLEY_TEST_WORKERS=1 sh "$here/run.sh"
    rc=$?
fi
rm -rf "$dir"
exit $rc
