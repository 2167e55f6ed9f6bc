#!/bin/bash
# A throw-away PostgreSQL server for bench/mam.sh and bench/sm-resume.sh, in
# a folder of its own on 127.0.0.1:PORT (a 15xxx port), never a system
# service, with two databases side by side:
#   parley    owned by parley_owner, with Parley's schema (PARLEY_SQL_DIR/pgsql.sql),
#             used by the DML-only role "parley" (password auth), as
#             tests/db/pgsql.sh makes it for the tests
#   ejabberd  owned by the role "ejabberd" (password "ejabberd"), with ejabberd's
#             schema (/usr/share/ejabberd/sql/pg.sql, or EJABBERD_PG_SQL)
#
#   bench/mam-pg.sh start DIR PORT   initdb in DIR, start, create both databases, write DIR/env
#   bench/mam-pg.sh stop DIR         stop the server and remove DIR
#   bench/mam-pg.sh reset DIR        empty both databases' message archives (the
#                                    tables named *archive*, not preferences)
#
# DIR/env sets PG_BENCH_PORT, PG_BENCH_DSN (parleyd's role), PG_BENCH_PASSWORD_FILE,
# PG_BENCH_OWNER_DSN (Parley's database as its owner, over the UNIX socket),
# PG_BENCH_EJABBERD_DSN, PG_BENCH_PSQL (the psql binary), PG_BENCH_POSTMASTER_PID.
# Durability: by default as the tests have it (fsync, synchronous_commit and
# full_page_writes off: the benchmark measures CPU, and the disks of this
# shared machine are busy); BENCH_PG_DURABLE=1 keeps PostgreSQL's defaults
# (every commit flushed).  As root, the server runs as "postgres".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
die() { echo "mam-pg.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $0 start DIR PORT | stop DIR | reset DIR"
cmd=$1 DIR=$2
SQL_DIR=${PARLEY_SQL_DIR:-$TOP/sql}
EJ_SQL=${EJABBERD_PG_SQL:-/usr/share/ejabberd/sql/pg.sql}

bindir() {
    local d
    # shellcheck disable=SC2012
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then die "no PostgreSQL server binaries (apt-get install postgresql)"; fi
    echo "$d"
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $cmd in
start)
    PORT=${3:?PORT}
    BIN=$(bindir)
    [ ! -e "$DIR" ] || die "$DIR exists (bench/mam-pg.sh stop $DIR first)"
    mkdir -p "$DIR/sock"
    DIR=$(cd "$DIR" && pwd)
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$DIR"; chmod 0755 "$DIR"; fi
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    {
        if [ "${BENCH_PG_DURABLE:-0}" != 1 ]; then
            printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
        fi
        printf 'max_connections = 100\npassword_encryption = scram-sha-256\nlog_min_messages = warning\n'
        printf 'unix_socket_permissions = 0777\n'
    } >>"$DIR/data/postgresql.conf"
    printf 'local all all trust\nhost all parley 127.0.0.1/32 scram-sha-256\nhost all ejabberd 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n' \
        >"$DIR/data/pg_hba.conf"
    # pinned with the servers under test (CPU 0), as their own storage would be
    as_pg taskset -c "${SERVER_CPU:-0}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR/sock -c listen_addresses=127.0.0.1" start >/dev/null ||
        { cat "$DIR/server.log" >&2; die "the server did not start"; }
    PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/sock" -p "$PORT")
    PASSWORD="parley-bench-$RANDOM$RANDOM"
    "${PSQL[@]}" -U postgres -d postgres >/dev/null <<EOS
CREATE ROLE parley_owner LOGIN;
CREATE ROLE parley LOGIN PASSWORD '$PASSWORD';
CREATE ROLE ejabberd LOGIN PASSWORD 'ejabberd';
CREATE DATABASE parley OWNER parley_owner ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE ejabberd OWNER ejabberd ENCODING 'UTF8' TEMPLATE template0;
EOS
    "${PSQL[@]}" -U parley_owner -d parley >/dev/null <<EOS
SET client_min_messages = warning;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO parley;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO parley;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public GRANT USAGE ON SEQUENCES TO parley;
EOS
    "${PSQL[@]}" -U parley_owner -d parley -1 -f "$SQL_DIR/pgsql.sql" >/dev/null
    "${PSQL[@]}" -U ejabberd -d ejabberd -c 'SET client_min_messages = warning' -f "$EJ_SQL" >/dev/null
    umask 022
    echo "$PASSWORD" >"$DIR/parley.password"
    chmod 0644 "$DIR/parley.password"
    cat >"$DIR/env" <<EOS
PG_BENCH_PORT='$PORT'
PG_BENCH_DSN='host=127.0.0.1 port=$PORT dbname=parley user=parley sslmode=disable'
PG_BENCH_PASSWORD_FILE='$DIR/parley.password'
PG_BENCH_OWNER_DSN='host=$DIR/sock port=$PORT dbname=parley user=parley_owner'
PG_BENCH_EJABBERD_DSN='host=$DIR/sock port=$PORT dbname=ejabberd user=ejabberd'
PG_BENCH_PSQL='$BIN/psql'
PG_BENCH_POSTMASTER_PID='$(head -1 "$DIR/data/postmaster.pid")'
export PG_BENCH_PORT PG_BENCH_DSN PG_BENCH_PASSWORD_FILE PG_BENCH_OWNER_DSN PG_BENCH_EJABBERD_DSN PG_BENCH_PSQL PG_BENCH_POSTMASTER_PID
EOS
    ;;
stop)
    [ -d "$DIR" ] || exit 0
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_pg "$(bindir)/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    ;;
reset)
    # shellcheck source=/dev/null
    . "$DIR/env"
    for dsn in "$PG_BENCH_OWNER_DSN" "$PG_BENCH_EJABBERD_DSN"; do
        tables=$("$PG_BENCH_PSQL" -X -Atq -d "$dsn" -c \
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
              WHERE schemaname = 'public' AND tablename ~ 'archive' AND tablename !~ 'pref'")
        [ -z "$tables" ] || "$PG_BENCH_PSQL" -X -q -d "$dsn" -c "TRUNCATE $tables"
    done
    ;;
*) die "unknown command $cmd (start, stop, reset)" ;;
esac
