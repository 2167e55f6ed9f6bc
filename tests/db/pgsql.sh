#!/bin/bash
# A throw-away PostgreSQL server for the tests, in a directory of its own,
# listening on 127.0.0.1 on a free port (never the default 5432), never a
# system service.
#
#   tests/db/pgsql.sh start DIR    initdb in DIR, start the server, create the
#                                  database "parley" owned by parley_owner,
#                                  apply sql/pgsql.sql as the owner, create
#                                  the DML-only role "parley" (password auth),
#                                  copy it to "parley_template" (left alone by
#                                  the tests) and write DIR/env
#   tests/db/pgsql.sh stop DIR     stop the server and remove DIR
#   tests/db/pgsql.sh halt DIR     stop the server, keep DIR (outage tests)
#   tests/db/pgsql.sh resume DIR   start it again on the same port
#   tests/db/pgsql.sh env DIR      print DIR/env
#
# DIR/env sets PARLEY_TEST_PGSQL_DSN (parleyd's role, no password in it),
# PARLEY_TEST_PGSQL_PASSWORD, PARLEY_TEST_PGSQL_OWNER_DSN (the owner, trust
# auth over the UNIX socket in DIR), PARLEY_TEST_PGSQL_SUPER_DSN (the
# cluster's superuser, same way), PARLEY_TEST_PGSQL_PORT and
# PARLEY_TEST_PGSQL_DIR.
#
# As root (CI), the server runs as the "postgres" user of the Debian
# package (PostgreSQL refuses to run as root); DIR is handed over to it.
# Otherwise it runs as the calling user.  The PostgreSQL binaries are looked
# for in $PG_BINDIR, then /usr/lib/postgresql/<newest>/bin, then PATH.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
SQL_DIR=${PARLEY_SQL_DIR:-$TOP/sql}

die() { echo "pgsql.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop|halt|resume|env DIR"
cmd=$1
DIR=$2

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
    d=$(command -v initdb 2>/dev/null || true)
    [ -n "$d" ] && { dirname "$d"; return; }
    die "no PostgreSQL server binaries (initdb) found: install the postgresql package (scripts/deps.sh test)"
}

# Run a command as the server's user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    /usr/bin/python3 - <<'EOF'
import random, socket
# A port in a range nobody configures by default; check that it is free.
for _ in range(200):
    p = random.randint(20000, 29999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
EOF
}

start_server() {
    local bindir=$1 port=$2
    as_pg "$bindir/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $port -k $DIR/sock -c listen_addresses=127.0.0.1" start >/dev/null ||
        { cat "$DIR/server.log" >&2 || true; die "the server did not start (log above)"; }
}

case "$cmd" in
start)
    BINDIR=$(find_bindir)
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    mkdir -p "$DIR/sock"
    if [ "$(id -u)" -eq 0 ]; then
        getent passwd postgres >/dev/null || die "running as root needs the 'postgres' user (postgresql package)"
        chown -R postgres: "$DIR"
        chmod 0755 "$DIR"
    fi
    as_pg "$BINDIR/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    # Tests need speed, not durability; parleyd's role logs in with a password.
    cat >>"$DIR/data/postgresql.conf" <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
password_encryption = scram-sha-256
log_min_messages = warning
unix_socket_permissions = 0777
EOF
    cat >"$DIR/data/pg_hba.conf" <<EOF
local all all trust
host all parley 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
EOF
    PORT=$(free_port)
    [ -n "$PORT" ] || die "no free port found"
    echo "$PORT" >"$DIR/port"
    start_server "$BINDIR" "$PORT"
    PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/sock" -p "$PORT")
    PASSWORD="parley-test-$RANDOM$RANDOM"
    "${PSQL[@]}" -U postgres -d postgres >/dev/null <<EOF
CREATE ROLE parley_owner LOGIN;
CREATE ROLE parley LOGIN PASSWORD '$PASSWORD';
CREATE DATABASE parley OWNER parley_owner ENCODING 'UTF8' TEMPLATE template0;
EOF
    "${PSQL[@]}" -U parley_owner -d parley >/dev/null <<EOF
SET client_min_messages = warning;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO parley;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO parley;
ALTER DEFAULT PRIVILEGES FOR ROLE parley_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO parley;
EOF
    "${PSQL[@]}" -U parley_owner -d parley -1 -f "$SQL_DIR/pgsql.sql" >/dev/null
    # An untouched copy for tests that want a database of their own
    # (CREATE DATABASE ... TEMPLATE parley_template, as the superuser).
    "${PSQL[@]}" -U postgres -d postgres -c "CREATE DATABASE parley_template OWNER parley_owner TEMPLATE parley" >/dev/null
    cat >"$DIR/env" <<EOF
PARLEY_TEST_PGSQL_DIR='$DIR'
PARLEY_TEST_PGSQL_PORT='$PORT'
PARLEY_TEST_PGSQL_DSN='host=127.0.0.1 port=$PORT dbname=parley user=parley sslmode=disable'
PARLEY_TEST_PGSQL_PASSWORD='$PASSWORD'
PARLEY_TEST_PGSQL_OWNER_DSN='host=$DIR/sock port=$PORT dbname=parley user=parley_owner'
PARLEY_TEST_PGSQL_SUPER_DSN='host=$DIR/sock port=$PORT dbname=parley user=postgres'
PARLEY_TEST_PGSQL_BINDIR='$BINDIR'
export PARLEY_TEST_PGSQL_DIR PARLEY_TEST_PGSQL_PORT PARLEY_TEST_PGSQL_DSN PARLEY_TEST_PGSQL_PASSWORD PARLEY_TEST_PGSQL_OWNER_DSN PARLEY_TEST_PGSQL_SUPER_DSN PARLEY_TEST_PGSQL_BINDIR
EOF
    chmod 0644 "$DIR/env"
    ;;
stop)
    [ -d "$DIR" ] || exit 0
    BINDIR=$(find_bindir)
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_pg "$BINDIR/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    ;;
halt)
    BINDIR=$(find_bindir)
    as_pg "$BINDIR/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null
    ;;
resume)
    BINDIR=$(find_bindir)
    start_server "$BINDIR" "$(cat "$DIR/port")"
    ;;
env)
    cat "$DIR/env"
    ;;
*)
    die "unknown command '$cmd' (start|stop|halt|resume|env)"
    ;;
esac
