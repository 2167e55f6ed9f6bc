#!/bin/sh
# The protocol tests of everything Parley stores, with the main test host
# on MariaDB (PARLEY_TEST_STORAGE=mysql; run.sh starts a throw-away server
# with tests/db/mariadb.sh), then the database fault test on a server of
# its own.  Run by `make check`.  Skipped (77) only when
# the build has no MySQL driver.
here=$(cd "$(dirname "$0")" && pwd)
if [ "${PARLEY_HAVE_MYSQL:-}" = no ]; then
    echo "SKIP: this build has no MySQL driver (configure found no libmariadb: apt-get install libmariadb-dev)"
    exit 77
fi
PARLEY_TEST_STORAGE=mysql
PARLEY_TEST_FILES=
for t in login register roster presence offline vcard private last blocking privacy offline_rules shared_roster vjud muc muc_restart pubsub push mam scram_sha512 scram_sha1_only fast_ctl fast import_prosody_sql fault_commit; do
    PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_$t.py"
done
# the user data commands: paged and counted in SQL
PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_userdata_ctl.py"
export PARLEY_TEST_STORAGE PARLEY_TEST_FILES
sh "$here/run.sh" "$@"
rc=$?
[ $rc -eq 0 ] && [ $# -eq 0 ] || exit $rc
# test_fault_db kills and freezes the MariaDB server: on one of its own,
# while no other file runs (a run with pytest arguments leaves it out)
PARLEY_TEST_FILES=$here/test_fault_db.py PARLEY_TEST_WORKERS=1 exec sh "$here/run.sh" "$@"
