#!/bin/bash
# ejabberd for bench/mam.sh and bench/sm-resume.sh: the harness's
# peers/ejabberd.sh (mod_stream_mgmt on, as ejabberd has it by default) in a
# folder, Erlang node and ports of its own (ejabberd-mam under PEER_ROOT,
# benchmam@localhost, c2s 15242, distribution 15389), with everything it
# stores in PostgreSQL (default_db: sql, the old schema of
# /usr/share/ejabberd/sql/pg.sql) instead of mnesia, and mod_mam when asked:
#   ejabberd-mam.sh start|stop|adduser N|pids|info
# env: EJABBERD_MAM_SQL_PORT  the PostgreSQL server's port on 127.0.0.1 (required
#                             for start and adduser); database, user and password
#                             "ejabberd" (bench/mam-pg.sh makes them)
#      EJABBERD_MAM           1: load mod_mam (default: always, db_type sql), 0: not (default)
# Needs erlang-p1-pgsql (ejabberd's PostgreSQL driver).  It must sit beside
# the harness's ejabberd.sh and common.sh (bench/mam.sh copies it into the
# harness copy's peers/).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=$HERE/ejabberd.sh
GEN=$HERE/.ejabberd-mam-gen.sh
if [ ! -f "$BASE" ]; then
    echo "ejabberd-mam.sh: no $BASE (run it from the harness copy's peers/)" >&2
    exit 1
fi
case "${1:-}" in
start | adduser)
    if [ -z "${EJABBERD_MAM_SQL_PORT:-}" ]; then
        echo "ejabberd-mam.sh: set EJABBERD_MAM_SQL_PORT (the PostgreSQL port)" >&2
        exit 1
    fi
    ;;
esac
# the lines replacing "default_db: mnesia" and added after "mod_version: {}"
# in the configuration ejabberd.sh writes (expanded there, from the environment)
# shellcheck disable=SC2016
SQL_LINES='default_db: sql
sql_type: pgsql
sql_server: "127.0.0.1"
sql_port: $EJABBERD_MAM_SQL_PORT
sql_database: "ejabberd"
sql_username: "ejabberd"
sql_password: "ejabberd"
new_sql_schema: false'
export EJABBERD_MAM_BLOCK=
if [ "${EJABBERD_MAM:-0}" = 1 ]; then
    EJABBERD_MAM_BLOCK='  mod_mam:
    db_type: sql
    default: always'
fi
SQL_LINES=$SQL_LINES awk '/^default_db: mnesia$/ { print ENVIRON["SQL_LINES"]; n++; next }
     /^  mod_version: \{\}$/ { print; print "$EJABBERD_MAM_BLOCK"; n++; next }
     { print } END { exit n != 2 }' "$BASE" |
    sed -e 's/^NAME=ejabberd$/NAME=ejabberd-mam/' -e 's/^NODE=bench@localhost$/NODE=benchmam@localhost/' \
        -e 's/EJABBERD_PORT:-15222}/EJABBERD_MAM_PORT:-15242}/' \
        -e 's/EJABBERD_DIST_PORT:-15369}/EJABBERD_MAM_DIST_PORT:-15389}/' > "$GEN.tmp"
if [ "${PIPESTATUS[0]}" != 0 ] || ! grep -q '^NAME=ejabberd-mam$' "$GEN.tmp" ||
    ! grep -q '^NODE=benchmam@localhost$' "$GEN.tmp" || ! grep -q 'EJABBERD_MAM_PORT:-15242}' "$GEN.tmp" ||
    ! grep -q 'EJABBERD_MAM_DIST_PORT:-15389}' "$GEN.tmp"; then
    echo "ejabberd-mam.sh: $BASE no longer has the lines this patches (default_db, mod_version, NAME, NODE, ports)" >&2
    exit 1
fi
mv "$GEN.tmp" "$GEN"
exec bash "$GEN" "$@"
