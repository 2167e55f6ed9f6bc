#!/bin/sh
# The protocol tests of everything Parley stores, with the main test host
# on PostgreSQL (PARLEY_TEST_STORAGE=pgsql; run.sh starts a throw-away
# server), plus the database outage and fault tests.  Run by `make check`.  Skipped
# (77) only when the build has no PostgreSQL driver.
here=$(cd "$(dirname "$0")" && pwd)
if [ "${PARLEY_HAVE_PGSQL:-}" = no ]; then
    echo "SKIP: this build has no PostgreSQL driver (configure found no libpq: apt-get install libpq-dev)"
    exit 77
fi
PARLEY_TEST_STORAGE=pgsql
PARLEY_TEST_FILES=
for t in login register roster presence offline in_order vcard private last blocking privacy offline_rules shared_roster vjud muc muc_restart db_ctl db_outage fault_db fault_commit pubsub pep pubsub_outage pubsub_ctl bookmarks avatar_pep push mam sm sasl2_sm scram_sha512 scram_sha1_only fast_ctl fast import_prosody_sql; do
    PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_$t.py"
done
# the user data commands: paged and counted in SQL
PARLEY_TEST_FILES="$PARLEY_TEST_FILES $here/test_userdata_ctl.py"
# one file at a time: test_db_outage, test_fault_db and test_pubsub_outage halt the
# PostgreSQL server that every file of this run shares
PARLEY_TEST_WORKERS=1
export PARLEY_TEST_STORAGE PARLEY_TEST_FILES PARLEY_TEST_WORKERS
exec sh "$here/run.sh" "$@"
