#!/bin/bash
# A throwaway MariaDB server for the tests: its own data directory, on
# 127.0.0.1 at a free port that is not 3306, with the Parley schema loaded.
#
#   tests/db/mariadb.sh start DIR    create DIR (must not exist or be empty),
#                                    start the server, print the settings
#   tests/db/mariadb.sh stop DIR     stop it and remove DIR
#   tests/db/mariadb.sh resume DIR   start it again after a kill (same port, data)
#
# After start, DIR/env holds shell assignments (exported) the tests read:
#   PARLEY_TEST_MYSQL_DSN            storage.dsn for parleyd's user "parley"
#                                    (SELECT, INSERT, UPDATE, DELETE on parley.*)
#   PARLEY_TEST_MYSQL_PASSWORD_FILE  its password, for storage.password_file
#   PARLEY_TEST_MYSQL_PORT           the TCP port on 127.0.0.1
#   PARLEY_TEST_MYSQL_SOCKET         the UNIX socket
#   PARLEY_TEST_MYSQL_ADMIN_PASSWORD the password of "root"@"localhost" (all
#                                    rights: the tests' own set-up, triggers, locks)
#   PARLEY_TEST_MYSQL_DIR            DIR
# The database "parley" exists, made from sql/mysql.sql.
# Passwords are random, one per start.  As root the server runs as the
# "mysql" user (mariadbd refuses to run as root); otherwise as the caller.
# Needs mariadb-server (scripts/deps.sh test).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
SQL_DIR=${PARLEY_SQL_DIR:-$TOP/sql}

die() {
    echo "mariadb.sh: $*" >&2
    exit 1
}

find_prog() {
    local p
    for p in "$@"; do
        if command -v "$p" >/dev/null 2>&1; then
            command -v "$p"
            return 0
        fi
        if [ -x "/usr/sbin/$p" ]; then
            echo "/usr/sbin/$p"
            return 0
        fi
    done
    return 1
}

port_free() {
    ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# launch MARIADBD DIR PORT [--user=mysql]: start the server in the
# background, its pid in DIR/server.pid, the port in DIR/port
launch() {
    local mariadbd=$1 dir=$2 port=$3
    shift 3
    # Durability is worth nothing here: no fsync, small buffers.
    "$mariadbd" --no-defaults --datadir="$dir/data" "$@" \
        --bind-address=127.0.0.1 --port="$port" --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --tmpdir="$dir/tmp" \
        --skip-name-resolve --skip-log-bin --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_bin --innodb-buffer-pool-size=32M \
        --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 \
        --innodb-doublewrite=0 --innodb-flush-method=nosync --sync-frm=0 \
        --max-connections=200 >/dev/null 2>&1 &
    echo $! >"$dir/server.pid"
    echo "$port" >"$dir/port"
}

# resume DIR: start a server that was killed again, on the same port and
# with the same data (the fault tests)
resume() {
    local dir=$1
    [ -f "$dir/port" ] || die "usage: $0 resume DIR (of a server started by this script)"
    local mariadbd client run_as=()
    mariadbd=$(find_prog mariadbd mysqld) || die "mariadbd not found"
    client=$(find_prog mariadb mysql) || die "the mariadb client is not found"
    [ "$(id -u)" -ne 0 ] || run_as=(--user=mysql)
    rm -f "$dir/mysqld.sock"
    launch "$mariadbd" "$dir" "$(cat "$dir/port")" "${run_as[@]}"
    local pid i
    pid=$(cat "$dir/server.pid")
    for i in $(seq 1 300); do
        if [ -S "$dir/mysqld.sock" ] && "$client" --no-defaults --socket="$dir/mysqld.sock" -uroot \
            --password="$(cat "$dir/root.pw")" -e 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$dir/error.log" >&2 || true
    die "mariadbd did not start again"
}

start() {
    local dir=$1
    [ -n "$dir" ] || die "usage: $0 start DIR"
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        die "$dir exists and is not empty"
    fi
    local mariadbd install client
    mariadbd=$(find_prog mariadbd mysqld) || die "mariadbd not found (apt-get install mariadb-server)"
    install=$(find_prog mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
    client=$(find_prog mariadb mysql) || die "the mariadb client is not found"

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    local run_as=()
    if [ "$(id -u)" -eq 0 ]; then
        id mysql >/dev/null 2>&1 || die "running as root, and there is no 'mysql' user to run mariadbd as"
        run_as=(--user=mysql)
    fi
    # A temporary directory of this server's own: several servers may be
    # bootstrapped at once (make -j), and nothing of theirs meets in /tmp.
    mkdir -p "$dir/data" "$dir/tmp"
    [ ${#run_as[@]} -eq 0 ] || chown mysql: "$dir" "$dir/data" "$dir/tmp"

    # One more try after a failed bootstrap, from an empty data directory
    # (a bootstrap that lost a race for a shared resource of the machine).
    local attempt
    for attempt in 1 2; do
        if "$install" --no-defaults --datadir="$dir/data" "${run_as[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1; then
            break
        fi
        if [ "$attempt" = 2 ]; then
            cat "$dir/install.log" >&2
            die "mariadb-install-db failed"
        fi
        echo "mariadb.sh: mariadb-install-db failed; trying once more:" >&2
        tail -n 5 "$dir/install.log" >&2
        rm -rf "$dir/data" && mkdir -p "$dir/data"
        [ ${#run_as[@]} -eq 0 ] || chown mysql: "$dir/data"
    done

    local port="" try pid=""
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        port_free "$port" || continue
        launch "$mariadbd" "$dir" "$port" "${run_as[@]}"
        pid=$(cat "$dir/server.pid")
        local i
        for i in $(seq 1 300); do
            if [ -S "$dir/mysqld.sock" ] &&
                "$client" --no-defaults --socket="$dir/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
                break
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null && [ -S "$dir/mysqld.sock" ]; then
            break
        fi
        # Lost a race for the port, or worse: say why if it is not the port.
        wait "$pid" 2>/dev/null || true
        pid=""
        grep -q "Address already in use" "$dir/error.log" 2>/dev/null || {
            cat "$dir/error.log" >&2 2>/dev/null || true
            die "mariadbd did not start"
        }
    done
    [ -n "$pid" ] || die "no free port found for mariadbd"

    local rootpw userpw
    rootpw=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
    userpw=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
    (umask 077 && printf '%s\n' "$rootpw" >"$dir/root.pw" && printf '%s\n' "$userpw" >"$dir/parley.pw")
    "$client" --no-defaults --socket="$dir/mysqld.sock" -uroot <<EOF || die "cannot set up users"
CREATE DATABASE parley CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER 'parley'@'127.0.0.1' IDENTIFIED BY '$userpw';
CREATE USER 'parley'@'localhost' IDENTIFIED BY '$userpw';
GRANT SELECT, INSERT, UPDATE, DELETE ON parley.* TO 'parley'@'127.0.0.1';
GRANT SELECT, INSERT, UPDATE, DELETE ON parley.* TO 'parley'@'localhost';
ALTER USER 'root'@'localhost' IDENTIFIED BY '$rootpw';
FLUSH PRIVILEGES;
EOF
    "$client" --no-defaults --socket="$dir/mysqld.sock" -uroot --password="$rootpw" \
        --default-character-set=utf8mb4 parley <"$SQL_DIR/mysql.sql" || die "cannot apply $SQL_DIR/mysql.sql"

    cat >"$dir/env" <<EOF
PARLEY_TEST_MYSQL_DIR='$dir'
PARLEY_TEST_MYSQL_PORT='$port'
PARLEY_TEST_MYSQL_SOCKET='$dir/mysqld.sock'
PARLEY_TEST_MYSQL_DSN='host=127.0.0.1 port=$port dbname=parley user=parley sslmode=disable'
PARLEY_TEST_MYSQL_PASSWORD_FILE='$dir/parley.pw'
PARLEY_TEST_MYSQL_ADMIN_PASSWORD='$rootpw'
export PARLEY_TEST_MYSQL_DIR PARLEY_TEST_MYSQL_PORT PARLEY_TEST_MYSQL_SOCKET PARLEY_TEST_MYSQL_DSN PARLEY_TEST_MYSQL_PASSWORD_FILE PARLEY_TEST_MYSQL_ADMIN_PASSWORD
EOF
    chmod 0600 "$dir/env"
    echo "mariadb.sh: MariaDB on 127.0.0.1:$port (socket $dir/mysqld.sock, pid $pid)"
}

stop() {
    local dir=$1
    [ -n "$dir" ] || die "usage: $0 stop DIR"
    [ -d "$dir" ] || return 0
    local pid=""
    [ -f "$dir/server.pid" ] && pid=$(cat "$dir/server.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
resume) resume "${2:-}" ;;
*)
    echo "usage: $0 start|stop|resume DIR" >&2
    exit 2
    ;;
esac
